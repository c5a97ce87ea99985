"""template.yaml says what matters: images built from the repo root, least privilege, the queue's
visibility rule, no secret values in any environment, the ledger table as the code creates it, and the
routes of the API. ``scripts/lint-template`` (sam validate --lint, cfn-lint) runs here too."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragstream.config import Settings
from ragstream.events import is_reconcile_event
from ragstream.index.registry import IMAGE_CLIENTS
from ragstream.ledger.dynamodb import table_definition
from tests.support.sam_build import DEFAULT, IMAGES, build_args, resolved

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
#: Actions whose API has no resource-level permissions: the only place a "*" resource is allowed.
WILDCARD_ONLY_ACTIONS = {
    "textract:DetectDocumentText",
    "textract:StartDocumentTextDetection",
    "textract:GetDocumentTextDetection",
}
API_ROUTES = {
    "GET /health",
    "GET /openapi.json",
    "POST /search",
    "POST /ask",
    "GET /documents",
    "GET /documents/{source+}",
    "POST /feedback",
    "GET /",
    "GET /ui/{name}",
}
#: Settings another change adds (the template names them already).
PENDING_SETTINGS = {"langfuse_public_key_parameter", "langfuse_secret_key_parameter", "langfuse_host"}
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.I)


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: ``!Ref X`` -> {"Ref": X}, ``!Sub s`` -> {"Fn::Sub": s}."""


def _tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    data: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), _CfnLoader)
    return data


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _leaves(value: Any) -> list[Any]:
    """Every alternative of a value through Fn::If (both branches), flattened; AWS::NoValue dropped."""
    if isinstance(value, dict) and "Fn::If" in value:
        _, yes, no = value["Fn::If"]
        return _leaves(yes) + _leaves(no)
    if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return []
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, role in _resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in _leaves(policy["PolicyDocument"]["Statement"]):
                found.append((name, statement))
    return found


# -- images ------------------------------------------------------------------------------------------------
def test_functions_are_images_built_from_the_repo_root(template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Serverless::Function")
    assert set(functions) == {"IngestFunction", "QueryFunction"}
    for name, fn in functions.items():
        meta = fn["Metadata"]
        assert fn["Properties"]["PackageType"] == "Image"
        assert meta["DockerContext"] == ".", "the images install src/ragstream: the context is the repo root"
        dockerfile = ROOT / meta["DockerContext"] / meta["Dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        assert meta["DockerTag"]
        text = dockerfile.read_text(encoding="utf-8")
        assert re.search(r"^FROM public\.ecr\.aws/lambda/python:", text, re.M), "the Lambda Python base image"
        for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
            for src in copied.split():
                assert (ROOT / src).exists(), f"{dockerfile.name} copies {src}, which does not exist"


def test_dockerfiles_install_only_their_own_extra_from_the_pinned_set() -> None:
    for image in ("ingest", "query"):
        text = (ROOT / "functions" / image / "Dockerfile").read_text(encoding="utf-8")
        installs = [line for line in text.splitlines() if line.startswith("RUN uv pip install ")]
        assert len(installs) == 1
        args = shlex.split(installs[0])
        # its own extra and the thin client of one server store (the STORE_CLIENTS build argument, which
        # sam build sets from VectorStore; a plain docker build gets the template's default store's)
        assert [a for a in args if a.startswith(".[")] == [f".[{image},${{STORE_CLIENTS}}]"]
        assert f"\nARG STORE_CLIENTS={build_args(image)['STORE_CLIENTS']}\n" in text
        assert "--constraint" in args and "constraints.txt" in args
        assert args[args.index("--override") + 1] == "overrides.txt"
        assert "ENV HOME=/tmp" in text and "DO_NOT_TRACK=1" in text
        assert not re.search(r"torch|cuda|onnxruntime", text.split("# -- run")[0].split("FROM")[-1], re.I)


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "**" in lines and "!src/" in lines and "!constraints.txt" in lines and "!overrides.txt" in lines


# -- IAM ---------------------------------------------------------------------------------------------------
def test_no_wildcard_resource_but_where_the_api_demands_one(template: dict[str, Any]) -> None:
    statements = _statements(template)
    assert statements
    for role, st in statements:
        assert st["Effect"] == "Allow", f"{role}: {st}"
        actions = {a for a in _leaves(st["Action"])}
        for resource in _leaves(st["Resource"]):
            if isinstance(resource, str) and "*" in resource:
                assert actions <= WILDCARD_ONLY_ACTIONS, f"{role} {st.get('Sid')}: '*' for {actions}"
        assert not any(a.endswith(":*") or a == "*" for a in actions), f"{role}: wildcard action {actions}"
    for name, role in _resources(template, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], f"{name}: AWS managed policies grant '*'"
    for name, fn in _resources(template, "AWS::Serverless::Function").items():
        assert "Role" in fn["Properties"] and "Policies" not in fn["Properties"], name


def test_query_cannot_write_and_ingest_reads_only_its_bucket(template: dict[str, Any]) -> None:
    by_role: dict[str, set[str]] = {}
    for role, st in _statements(template):
        by_role.setdefault(role, set()).update(_leaves(st["Action"]))
    assert not {
        a
        for a in by_role["QueryRole"]
        if not a.startswith("logs:") and re.search(r"Put|Update|Delete|Write|s3:", a)
    }
    assert not {
        a for a in by_role["IngestRole"] if a.startswith("s3:") and not a.startswith(("s3:Get", "s3:List"))
    }


# -- queue -------------------------------------------------------------------------------------------------
def test_visibility_timeout_is_at_least_six_times_the_ingest_timeout(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    queue = template["Resources"]["IngestQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {
        "Fn::FindInMap": ["VisibilityTimeout", {"Ref": "IngestTimeout"}, "Seconds"]
    }
    assert template["Resources"]["IngestFunction"]["Properties"]["Timeout"] == {"Ref": "IngestTimeout"}
    mapping = template["Mappings"]["VisibilityTimeout"]
    window = int(params["MaxBatchingWindow"]["MaxValue"])
    for timeout in params["IngestTimeout"]["AllowedValues"]:
        seconds = int(mapping[str(timeout)]["Seconds"])
        assert seconds >= 6 * int(timeout) + window, f"timeout {timeout}: visibility {seconds}"
        assert seconds <= 43_200  # SQS's maximum
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert queue["SqsManagedSseEnabled"] is True
    assert template["Resources"]["IngestDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True


def test_sqs_event_reports_batch_item_failures_and_caps_concurrency(template: dict[str, Any]) -> None:
    events = template["Resources"]["IngestFunction"]["Properties"]["Events"]
    sqs = next(e["Properties"] for e in events.values() if e["Type"] == "SQS")
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConcurrency"}
    assert sqs["BatchSize"] == {"Ref": "BatchSize"}
    assert sqs["MaximumBatchingWindowInSeconds"] == {"Ref": "MaxBatchingWindow"}
    assert int(template["Parameters"]["MaxConcurrency"]["MinValue"]) >= 2  # Lambda's minimum


def test_schedule_sends_the_reconcile_event(template: dict[str, Any]) -> None:
    events = template["Resources"]["IngestFunction"]["Properties"]["Events"]
    schedule = next(e["Properties"] for e in events.values() if e["Type"] == "Schedule")
    assert schedule["Schedule"] == {"Ref": "ReconcileSchedule"}
    assert template["Parameters"]["ReconcileSchedule"]["Default"] == "rate(1 day)"
    payload = json.loads(schedule["Input"])
    assert is_reconcile_event(payload)
    assert payload == json.loads((EVENTS / "schedule-reconcile.json").read_text())


def test_bucket_is_private_encrypted_tls_only_and_notifies_the_queue(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["DocumentsBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    events = {q["Event"] for q in bucket["NotificationConfiguration"]["QueueConfigurations"]}
    assert events == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    policy = template["Resources"]["DocumentsBucketPolicy"]["Properties"]["PolicyDocument"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        for s in policy["Statement"]
    )


def test_dlq_depth_has_an_alarm(template: dict[str, Any]) -> None:
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()
    assert any(
        a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Properties"]["Dimensions"][0]["Value"]
        == {"Fn::GetAtt": ["IngestDeadLetterQueue", "QueueName"]}
        for a in alarms
    )


# -- environment ---------------------------------------------------------------------------------------------
def _environments(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base = template["Globals"]["Function"]["Environment"]["Variables"]
    envs = {}
    for name, fn in _resources(template, "AWS::Serverless::Function").items():
        own = fn["Properties"].get("Environment", {}).get("Variables", {})
        envs[name] = {**base, **own}
    return envs


def test_no_function_environment_holds_a_secret_value(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    for fn, env in _environments(template).items():
        for name, value in env.items():
            leaves = _leaves(value)
            if SECRET_NAME.search(name):
                assert name.endswith("_PARAMETER"), f"{fn}: {name} would carry a secret value"
                for leaf in leaves:  # only the *name* of a parameter or secret, from a template parameter
                    assert isinstance(leaf, dict) and set(leaf) == {"Ref"}, f"{fn}: {name}={leaf!r}"
                    assert leaf["Ref"].endswith("Parameter") and "NoEcho" not in params[leaf["Ref"]]
            for leaf in leaves:
                if isinstance(leaf, str):
                    assert not re.match(r"(sk-|pk-lf-|sk-lf-|AKIA)", leaf), (
                        f"{fn}: {name} looks like a secret"
                    )
    for name in params:
        if SECRET_NAME.search(name):
            assert name.endswith(("Parameter", "Arn")), f"parameter {name} should name a secret, not hold one"


def test_environment_names_are_settings(template: dict[str, Any]) -> None:
    fields = set(Settings.model_fields) | PENDING_SETTINGS
    for fn, env in _environments(template).items():
        for name in env:
            if name.startswith("RAGSTREAM_"):
                assert name.removeprefix("RAGSTREAM_").lower() in fields, f"{fn}: {name} is no setting"
        assert env["RAGSTREAM_HOME"] == "/tmp/ragstream"
        assert env["RAGSTREAM_LEDGER_TABLE"] == {"Ref": "LedgerTable"}
        assert env["RAGSTREAM_BUCKET"] == {"Ref": "DocumentsBucket"}
        assert env["RAGSTREAM_EMBEDDING_PROVIDER"] == "openai"
        for pending in ("LANGFUSE_PUBLIC_KEY_PARAMETER", "LANGFUSE_SECRET_KEY_PARAMETER", "LANGFUSE_HOST"):
            assert f"RAGSTREAM_{pending}" in env


# -- ledger table and API ------------------------------------------------------------------------------------
def test_ledger_table_mirrors_the_code(template: dict[str, Any]) -> None:
    table = template["Resources"]["LedgerTable"]["Properties"]
    want = table_definition("ignored")
    for key in ("BillingMode", "KeySchema", "GlobalSecondaryIndexes"):
        assert table[key] == want[key], key
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(want["AttributeDefinitions"], key=str)
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_http_api_routes_are_the_query_routes(template: dict[str, Any]) -> None:
    events = template["Resources"]["QueryFunction"]["Properties"]["Events"].values()
    routes = {
        f"{e['Properties']['Method']} {e['Properties']['Path']}" for e in events if e["Type"] == "HttpApi"
    }
    assert routes == API_ROUTES
    assert all(e["Properties"]["ApiId"] == {"Ref": "HttpApi"} for e in events)
    sampled = {json.loads(p.read_text())["routeKey"] for p in EVENTS.glob("http-*.json")}
    assert sampled == API_ROUTES, "events/ should hold one sample per route"


def test_outputs(template: dict[str, Any]) -> None:
    assert {"ApiUrl", "BucketName", "QueueUrl", "LedgerTableName"} <= set(template["Outputs"])


def test_sample_events_are_json() -> None:
    names = {p.name for p in EVENTS.glob("*.json")}
    for name in names:
        json.loads((EVENTS / name).read_text(encoding="utf-8"))
    assert {"s3-put.json", "s3-delete.json", "sqs-s3-put.json", "sqs-s3-delete.json"} <= names
    assert {"eventbridge-object-created.json", "schedule-reconcile.json", "sqs-s3-test-event.json"} <= names


def test_samconfig_has_no_secrets() -> None:
    text = (ROOT / "samconfig.toml").read_text(encoding="utf-8")
    assert not re.search(r"sk-|AKIA|aws_secret|password", text, re.I)
    assert "confirm_changeset = true" in text


def test_lint_template() -> None:
    """sam validate --lint and cfn-lint, from the SAM CLI's tool environment (created when missing)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "lint-template")], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is a valid SAM Template" in proc.stdout + proc.stderr
    # and the translated template once per vector store, its conditions resolved for that store
    stores = template_stores()
    for store in stores:
        assert f"cfn-lint: translated template passed with VectorStore={store}" in proc.stdout, store


def template_stores() -> list[str]:
    """The VectorStore values template.yaml offers."""
    data: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), _CfnLoader)
    stores: list[str] = data["Parameters"]["VectorStore"]["AllowedValues"]
    return stores


def test_vector_store_offers_every_server_store_and_defaults_to_qdrant(template: dict[str, Any]) -> None:
    param = template["Parameters"]["VectorStore"]
    assert param["Default"] == "qdrant"
    assert sorted(param["AllowedValues"]) == ["chroma", "milvus", "pinecone", "qdrant", "weaviate"]
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["RAGSTREAM_INDEX"] == {"Ref": "VectorStore"}


def test_each_image_is_built_with_the_client_of_the_chosen_store_alone(template: dict[str, Any]) -> None:
    # GIVEN template.yaml resolved by the SAM CLI's own code, as `sam build --parameter-overrides
    # VectorStore=<store>` resolves it, for every VectorStore value and for none given
    stores = resolved()["stores"]
    assert set(stores) == {DEFAULT, *template["Parameters"]["VectorStore"]["AllowedValues"]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    for store, functions in stores.items():
        chosen = template["Parameters"]["VectorStore"]["Default"] if store == DEFAULT else store
        # THEN both image functions are built from their own Dockerfile with one build argument: the extra
        # of the chosen store's client, the one ragstream names when that client is missing in a Lambda
        assert set(functions) == set(IMAGES), store
        for function, image in IMAGES.items():
            assert functions[function]["Dockerfile"] == f"functions/{image}/Dockerfile"
            assert functions[function]["DockerBuildArgs"] == {"STORE_CLIENTS": IMAGE_CLIENTS[chosen]}, store
        # AND that extra exists, and holds no embedded engine (qdrant's client is in the core)
        extra = extras[IMAGE_CLIENTS[chosen]]
        assert not [r for r in extra if re.match(r"chromadb[<>=]|milvus-lite|faiss|qdrant-edge", r)], extra
    assert extras["qdrant"] == [] and "servers" not in extras
    assert set(IMAGE_CLIENTS) == set(template["Parameters"]["VectorStore"]["AllowedValues"])


def test_build_and_deploy_read_the_same_vector_store_from_samconfig() -> None:
    # GIVEN samconfig.toml as the SAM CLI's own SamConfig merges it for `sam build` and `sam deploy`
    overrides = resolved()["samconfig"]
    # THEN both commands get the same non-secret parameters, VectorStore among them (a store built into the
    # images is the store the functions open), and no secret value
    assert overrides["build"] == overrides["deploy"]
    assert overrides["build"]["VectorStore"] == "qdrant"
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))["default"]
    assert "parameter_overrides" in config["global"]["parameters"]
    assert all("parameter_overrides" not in config[c]["parameters"] for c in ("build", "deploy"))
    assert not [k for k in overrides["build"] if SECRET_NAME.search(k) and not k.endswith("Parameter")]


def test_the_ingest_image_carries_catdoc_for_legacy_office_files() -> None:
    # extract/unstructured.py runs catdoc / catppt for .doc / .ppt; Amazon Linux 2023 has no package
    dockerfile = (ROOT / "functions" / "ingest" / "Dockerfile").read_text()
    assert "apt-get install -y --no-install-recommends catdoc" in dockerfile
    assert "COPY --from=catdoc /usr/bin/catdoc /usr/bin/catppt /usr/bin/" in dockerfile
    assert "COPY --from=catdoc /usr/share/catdoc /usr/share/catdoc" in dockerfile


def test_jwt_authorizer_is_off_by_default_and_guards_the_document_routes(template: dict[str, Any]) -> None:
    # GIVEN the JWT parameters: off by default, and an audience is required with an issuer
    params = template["Parameters"]
    assert params["JwtIssuer"]["Default"] == "" and params["JwtAudience"]["Default"] == ""
    assert template["Conditions"]["HasJwt"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]}
    assert template["Rules"]["JwtNeedsAudience"]["Assertions"]
    # THEN the OpenAPI body puts every route that reads documents behind the authorizer, when on
    body = template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]
    guarded = {
        f"{m.upper()} {p}" for p, ops in body["paths"].items() for m, op in ops.items() if "security" in op
    }
    # the web page and its assets stay open, like /health: they hold no data
    assert guarded == API_ROUTES - {"GET /health", "GET /openapi.json", "GET /", "GET /ui/{name}"}
    for ops in body["paths"].values():
        for op in ops.values():
            assert op["security"] == {"Fn::If": ["HasJwt", [{"OidcAuthorizer": []}], {"Ref": "AWS::NoValue"}]}
    scheme = body["components"]["Fn::If"][1]["securitySchemes"]["OidcAuthorizer"]
    assert scheme["x-amazon-apigateway-authorizer"]["jwtConfiguration"] == {
        "issuer": {"Ref": "JwtIssuer"},
        "audience": [{"Ref": "JwtAudience"}],
    }
    assert body["components"]["Fn::If"][0] == "HasJwt"
    # AND the function reads the claims only when the authorizer is there
    env = template["Resources"]["QueryFunction"]["Properties"]["Environment"]["Variables"]
    assert env["RAGSTREAM_AUTH"] == {"Fn::If": ["HasJwt", "jwt", "api-key"]}
    assert {"RAGSTREAM_JWT_PREFIXES_CLAIM", "RAGSTREAM_JWT_GROUP_PREFIXES"} <= set(env)


def test_the_images_keep_the_models_of_every_aws_service_the_code_calls() -> None:
    """scripts/prune_packages.py removes botocore's models of the services ragstream never calls: every
    service named by a boto3 client in the code (and SSM / Secrets Manager, read through Powertools'
    parameters utility in config.py) must be among those it keeps."""
    import runpy

    kept = runpy.run_path(str(ROOT / "scripts" / "prune_packages.py"))["AWS_SERVICES"]
    code = "\n".join(
        p.read_text(encoding="utf-8")
        for p in [*(ROOT / "src" / "ragstream").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    )
    named = set(re.findall(r"""\bclient\(\s*["']([a-z0-9-]+)["']""", code))
    assert {"s3", "sqs", "dynamodb", "textract"} <= named  # the pattern still finds the calls
    assert "parameters.get_parameter(" in code and "parameters.get_secret(" in code
    assert named | {"ssm", "secretsmanager"} <= kept, named - kept
