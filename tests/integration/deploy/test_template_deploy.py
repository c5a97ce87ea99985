"""The template as CloudFormation deploys it: translated by aws-sam-translator (in the SAM CLI's tool
environment, ``scripts/translate-template.py``), then its conditions, rules and intrinsic functions
evaluated for given parameter values, the way CloudFormation does before it calls IAM, SQS or API
Gateway. Each test names the finding of issue 14 it guards."""

from __future__ import annotations

import json
import re
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest

from ragstream.config import IndexName, Settings

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / ".tools" / "sam" / "bin"
SRC = [*sorted((ROOT / "src" / "ragstream").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py"))]
REQUIRED = {
    "QdrantUrl": "https://xyz.cloud.qdrant.io:6333",
    "OpenAIApiKeyParameter": "/ragstream/openai-api-key",
}
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "eu-central-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "ragstream",
    "AWS::StackId": "arn:aws:cloudformation:eu-central-1:123456789012:stack/ragstream/8f2a6e10-0000-0000",
}
NO_VALUE = object()


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    if not (TOOLS / "python").exists():  # scripts/lint-template creates the tool environment
        subprocess.run([str(ROOT / "scripts" / "lint-template")], cwd=ROOT, check=True, timeout=900)
    proc = subprocess.run(
        [str(TOOLS / "python"), "scripts/translate-template.py", "template.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


class Stack:
    """CloudFormation's evaluation of a template for one set of parameter values."""

    def __init__(self, template: dict[str, Any], **values: str) -> None:
        self.template = template
        self.params: dict[str, str] = {}
        for name, spec in template["Parameters"].items():
            value = values.get(name, REQUIRED.get(name, spec.get("Default")))
            assert value is not None, f"parameter {name} needs a value"
            self.params[name] = str(value)
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.eval(self.template["Conditions"][name]))
        return self._conditions[name]

    def eval(self, value: Any) -> Any:
        """The value with every intrinsic resolved; AWS::NoValue leaves it out."""
        if isinstance(value, list):
            return [v for v in (self.eval(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                if arg in self.params:
                    return self.params[arg]
                if arg in PSEUDO:
                    return PSEUDO[arg]
                return f"<{arg}>"  # a resource: its physical id
            if fn == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return f"arn:aws:<{name}.{attr}>"
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::If":
                name, yes, no = arg
                return self.eval(yes if self.condition(name) else no)
            if fn == "Fn::Equals":
                a, b = (self.eval(x) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::And":
                return all(self.eval(x) for x in arg)
            if fn == "Fn::Or":
                return any(self.eval(x) for x in arg)
            if fn == "Fn::Not":
                return not self.eval(arg[0])
            if fn == "Fn::Contains":
                values, item = (self.eval(x) for x in arg)
                return str(item) in [str(v) for v in values]
            if fn == "Fn::Select":
                index, items = (self.eval(x) for x in arg)
                return items[int(index)]
            if fn == "Fn::Split":
                sep, text = (self.eval(x) for x in arg)
                return str(text).split(sep)
            if fn == "Fn::Join":
                sep, items = (self.eval(x) for x in arg)
                return sep.join(str(i) for i in items)
            if fn == "Fn::FindInMap":
                m, k1, k2 = (self.eval(x) for x in arg)
                return self.template["Mappings"][m][str(k1)][k2]
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                names = {k: self.eval(v) for k, v in extra.items()}

                def sub(match: re.Match[str]) -> str:
                    ref = match.group(1)
                    if ref in names:
                        return str(names[ref])
                    if "." in ref:
                        return str(self.eval({"Fn::GetAtt": ref.split(".", 1)}))
                    return str(self.eval({"Ref": ref}))

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
        out = {k: self.eval(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            name: self.eval(r.get("Properties", {}))
            for name, r in self.template["Resources"].items()
            if r["Type"] == kind and ("Condition" not in r or self.condition(r["Condition"]))
        }

    def statements(self, role: str) -> list[dict[str, Any]]:
        props = self.resources("AWS::IAM::Role")[role]
        return [st for policy in props.get("Policies", []) for st in policy["PolicyDocument"]["Statement"]]

    def environment(self, function: str) -> dict[str, str]:
        fn = self.resources("AWS::Lambda::Function")[function]
        return {k: str(v) for k, v in fn.get("Environment", {}).get("Variables", {}).items()}

    def rule_violations(self) -> list[str]:
        failed = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.eval(rule["RuleCondition"]):
                continue
            failed += [a["AssertDescription"] for a in rule["Assertions"] if not self.eval(a["Assert"])]
        return failed


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- finding 1: the defaults deploy --
@pytest.mark.parametrize(
    "values",
    [
        {},  # every optional secret empty: the minimal deploy of docs/deploying-on-aws.md
        {"ApiKeyParameter": "/ragstream/api-key", "QdrantApiKeyParameter": "qdrant-key"},
        {
            "ApiKeyParameter": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:api-AbCdEf",
            "QdrantApiKeyParameter": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:qd-AbCdEf",
            "LangfusePublicKeyParameter": "/lf/public",
            "LangfuseSecretKeyParameter": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:lf-AbCdEf",
        },
    ],
)
def test_every_policy_statement_names_a_real_resource(cfn: dict[str, Any], values: dict[str, str]) -> None:
    # GIVEN the translated template and a set of parameter values
    stack = Stack(cfn, **values)
    for role in ("IngestRole", "QueryRole"):
        for st in stack.statements(role):
            # THEN no statement has an empty Resource (IAM: MalformedPolicyDocument)
            for resource in _as_list(st["Resource"]):
                assert isinstance(resource, str) and resource, f"{role} {st.get('Sid')}: {st}"
            actions = _as_list(st["Action"])
            if "secretsmanager:GetSecretValue" in actions:
                assert all(r.startswith("arn:aws:secretsmanager:") for r in _as_list(st["Resource"])), st
            if "ssm:GetParameter" in actions:
                assert all(
                    re.fullmatch(r"arn:aws:ssm:eu-central-1:123456789012:parameter/[\w/.-]+", r)
                    for r in _as_list(st["Resource"])
                ), st
    granted = {
        r
        for st in stack.statements("QueryRole")
        if st.get("Sid") == "ApiKey"
        for r in _as_list(st["Resource"])
    }
    if values.get("ApiKeyParameter", "").startswith("arn:"):
        assert granted == {values["ApiKeyParameter"]}
    elif values.get("ApiKeyParameter"):
        assert granted == {"arn:aws:ssm:eu-central-1:123456789012:parameter/ragstream/api-key"}
    else:
        assert granted == set()


# -- finding 2: every parameter is used; ChatModel reaches the query function --
def test_every_parameter_is_used_and_chat_model_is_wired(cfn: dict[str, Any]) -> None:
    text = json.dumps({k: v for k, v in cfn.items() if k not in ("Parameters", "Metadata")})
    unused = [p for p in cfn["Parameters"] if f'"Ref": "{p}"' not in text and "${" + p + "}" not in text]
    assert unused == []
    env = Stack(cfn, ChatModel="gpt-4.1-mini").environment("QueryFunction")
    assert env["RAGSTREAM_CHAT_MODEL"] == "gpt-4.1-mini"
    assert Settings.model_validate({"chat_model": env["RAGSTREAM_CHAT_MODEL"]}).chat_model == "gpt-4.1-mini"


# -- finding 7: the query function answers before API Gateway gives up --
def test_query_upstream_timeouts_fit_the_function_timeout(
    cfn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(cfn)
    fn = stack.resources("AWS::Lambda::Function")["QueryFunction"]
    for name, value in stack.environment("QueryFunction").items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    tries = settings.openai_max_retries + 1
    # the OpenAI client backs off 0.5 s, 1 s, 2 s... (at most 8 s) between tries
    backoff = sum(min(0.5 * 2**i, 8.0) for i in range(settings.openai_max_retries))
    openai_call = settings.openai_timeout * tries + backoff
    worst = 2 * openai_call + settings.qdrant_timeout  # embed the question, search, answer
    assert worst + 2 <= int(fn["Timeout"]) <= 29, f"worst case {worst:.0f} s in a {fn['Timeout']} s function"


# -- finding 8: BatchSize above 10 needs a batching window --
@pytest.mark.parametrize(
    ("batch", "window", "ok"),
    [("10", "0", True), ("11", "0", False), ("100", "0", False), ("100", "1", True), ("1", "0", True)],
)
def test_rules_refuse_large_batches_without_a_window(
    cfn: dict[str, Any], batch: str, window: str, ok: bool
) -> None:
    violations = Stack(cfn, BatchSize=batch, MaxBatchingWindow=window).rule_violations()
    assert (violations == []) is ok, violations


# -- finding 9: each queue has its own policy --
def test_each_queue_has_its_own_policy(cfn: dict[str, Any]) -> None:
    stack = Stack(cfn)
    policies = stack.resources("AWS::SQS::QueuePolicy")
    by_queue = {str(p["Queues"][0]): p for p in policies.values() if len(p["Queues"]) == 1}
    assert len(by_queue) == len(policies) == 2, "one policy per queue, naming only its queue"
    for queue, policy in by_queue.items():
        arn = f"arn:aws:<{queue.strip('<>')}.Arn>"
        for st in policy["PolicyDocument"]["Statement"]:
            assert _as_list(st["Resource"]) == [arn], st
    statements = {st["Sid"] for p in policies.values() for st in p["PolicyDocument"]["Statement"]}
    assert "AllowThisStacksBucket" in statements


# -- finding 11: IAM grants what the code calls --
#: IAM actions whose API call has another name in boto3.
_CALLED_AS = {"s3:ListBucket": "list_objects_v2", "s3:GetObject": "get_object"}
#: Actions used by AWS on the function's behalf (the event source mapping polls the queue).
_SERVICE_USED = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_iam_grants_only_what_the_code_calls(cfn: dict[str, Any]) -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in SRC)
    stack = Stack(
        cfn,
        QdrantApiKeyParameter="/q",
        ApiKeyParameter="/a",
        LangfusePublicKeyParameter="/p",
        LangfuseSecretKeyParameter="/s",
        SecretsKmsKeyArn="arn:aws:kms:eu-central-1:123456789012:key/1",
    )
    for role in ("IngestRole", "QueryRole"):
        for st in stack.statements(role):
            for action in _as_list(st["Action"]):
                if action in _SERVICE_USED or action.startswith(("ssm:", "secretsmanager:", "kms:")):
                    continue  # secrets are resolved through Powertools' parameters utility
                call = _CALLED_AS.get(action) or _snake(action.split(":", 1)[1])
                assert re.search(rf"\b{call}\b", code), f"{role} grants {action}; no code calls {call}"


# -- finding 12: CORS at the API and in the app --
def test_cors_origins_reach_the_api_and_the_app(cfn: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    origins = "https://app.example.com,http://localhost:5173"
    stack = Stack(cfn, CorsOrigins=origins)
    env = stack.environment("QueryFunction")
    monkeypatch.setenv("RAGSTREAM_CORS_ORIGINS", env["RAGSTREAM_CORS_ORIGINS"])
    assert Settings().cors_origins == origins.split(",")
    body = stack.resources("AWS::ApiGatewayV2::Api")["HttpApi"]["Body"]
    cors = body["x-amazon-apigateway-cors"]
    assert set(cors["allowMethods"]) >= {"GET", "POST", "OPTIONS"} and "x-api-key" in cors["allowHeaders"]
    # none by default: no CORS configuration, no variable
    default = Stack(cfn)
    assert "x-amazon-apigateway-cors" not in default.resources("AWS::ApiGatewayV2::Api")["HttpApi"]["Body"]
    assert "RAGSTREAM_CORS_ORIGINS" not in default.environment("QueryFunction")


# -- the reconcile: fanned out over the queue, its failures kept and alarmed --
def test_a_failed_reconcile_lands_in_the_dead_letter_queue_and_its_alarm(cfn: dict[str, Any]) -> None:
    stack = Stack(cfn)
    [invoke] = stack.resources("AWS::Lambda::EventInvokeConfig").values()
    dlq = "arn:aws:<IngestDeadLetterQueue.Arn>"
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == dlq
    sends = {
        r
        for st in stack.statements("IngestRole")
        if "sqs:SendMessage" in _as_list(st["Action"])
        for r in _as_list(st["Resource"])
    }
    assert sends == {dlq, "arn:aws:<IngestQueue.Arn>"}  # the destination, and the fan-out's own queue
    [alarm] = stack.resources("AWS::CloudWatch::Alarm").values()
    assert alarm["Dimensions"][0]["Value"] == "arn:aws:<IngestDeadLetterQueue.QueueName>"
    env = stack.environment("IngestFunction")
    assert env["RAGSTREAM_QUEUE_URL"] == "<IngestQueue>"
    assert Settings.model_validate({"queue_url": "https://sqs.eu-central-1.amazonaws.com/1/q"}).queue_url


# -- finding 10: sam local needs --env-vars for what the stack names --
def test_the_env_vars_example_names_every_resource_sam_local_cannot_resolve(cfn: dict[str, Any]) -> None:
    example = json.loads((ROOT / "events" / "env.example.json").read_text(encoding="utf-8"))
    template_text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    stack = Stack(cfn)
    assert set(example) == {"IngestFunction", "QueryFunction"}
    fields = set(Settings.model_fields)
    for function, variables in example.items():
        env = stack.environment(function)
        # every variable the stack sets from one of its own resources: sam local gives the logical id
        from_resources = {name for name, value in env.items() if re.fullmatch(r"<\w+>", value)}
        assert from_resources <= set(variables), f"{function}: add {from_resources - set(variables)}"
        for name, value in variables.items():
            assert name.removeprefix("RAGSTREAM_").lower() in fields, name
            if re.search(r"KEY|SECRET|TOKEN|PASSWORD", name):
                assert name.endswith("_PARAMETER") and value.startswith(("/", "arn:aws:secretsmanager:")), (
                    name
                )
            assert not re.match(r"(sk-|pk-lf-|sk-lf-|AKIA)", value), f"{name} looks like a secret"
    readme = (ROOT / "docs" / "deploying-on-aws.md").read_text(encoding="utf-8")
    section = readme.split("## Invoke the functions locally with SAM", 1)[1].split("\n## ", 1)[0]
    invokes = [line for line in section.splitlines() if line.startswith("sam local ")]
    assert invokes and all("--env-vars" in line for line in invokes)
    assert "events/env.example.json" in section and "IngestFunction" in template_text


# -- issue 12: the VectorStore parameter; only what the chosen store needs reaches the functions --
#: Each store's parameters, as the `sam deploy` examples of docs/deploying-on-aws.md give them.
STORE_VALUES: dict[str, dict[str, str]] = {
    "qdrant": {
        "QdrantUrl": "https://xyz.eu-central-1-0.aws.cloud.qdrant.io:6333",
        "QdrantApiKeyParameter": "/ragstream/qdrant-api-key",
    },
    "pinecone": {
        "QdrantUrl": "",
        "IndexApiKeyParameter": "/ragstream/pinecone-api-key",
        "PineconeRegion": "eu-west-1",
        "PineconeNamespace": "docs",
    },
    "weaviate": {
        "QdrantUrl": "",
        "IndexUrl": "https://abc.c0.europe-west3.gcp.weaviate.cloud",
        "IndexApiKeyParameter": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:weaviate-AbCdEf",
    },
    "milvus": {
        "QdrantUrl": "",
        "IndexUrl": "https://in03-abc.serverless.aws-eu-central-1.cloud.zilliz.com",
        "IndexApiKeyParameter": "zilliz-api-key",
    },
    "chroma": {
        "QdrantUrl": "",
        "IndexUrl": "https://api.trychroma.com",
        "IndexApiKeyParameter": "/ragstream/chroma-api-key",
        "ChromaTenant": "t-1",
        "ChromaDatabase": "docs",
    },
}
#: The variables that name a store, its location or its key.
STORE_VARIABLES = {
    "RAGSTREAM_QDRANT_URL",  # deprecated names: the stack sets none of them
    "RAGSTREAM_QDRANT_API_KEY_PARAMETER",
    "RAGSTREAM_QDRANT_TIMEOUT",
    "RAGSTREAM_INDEX_URL",
    "RAGSTREAM_INDEX_API_KEY_PARAMETER",
    "RAGSTREAM_WEAVIATE_GRPC_URL",
    "RAGSTREAM_PINECONE_CLOUD",
    "RAGSTREAM_PINECONE_REGION",
    "RAGSTREAM_PINECONE_NAMESPACE",
    "RAGSTREAM_CHROMA_TENANT",
    "RAGSTREAM_CHROMA_DATABASE",
}
#: Each store's variables (both functions; the query function also bounds Qdrant's requests).
EXPECTED_VARIABLES = {
    "qdrant": {"RAGSTREAM_INDEX_URL", "RAGSTREAM_INDEX_API_KEY_PARAMETER"},
    "pinecone": {
        "RAGSTREAM_INDEX_API_KEY_PARAMETER",
        "RAGSTREAM_PINECONE_CLOUD",
        "RAGSTREAM_PINECONE_REGION",
        "RAGSTREAM_PINECONE_NAMESPACE",
    },
    "weaviate": {"RAGSTREAM_INDEX_URL", "RAGSTREAM_INDEX_API_KEY_PARAMETER"},
    "milvus": {"RAGSTREAM_INDEX_URL", "RAGSTREAM_INDEX_API_KEY_PARAMETER"},
    "chroma": {
        "RAGSTREAM_INDEX_URL",
        "RAGSTREAM_INDEX_API_KEY_PARAMETER",
        "RAGSTREAM_CHROMA_TENANT",
        "RAGSTREAM_CHROMA_DATABASE",
    },
}
#: What each store's key parameter grants, in both roles.
EXPECTED_KEY_RESOURCE = {
    "qdrant": "arn:aws:ssm:eu-central-1:123456789012:parameter/ragstream/qdrant-api-key",
    "pinecone": "arn:aws:ssm:eu-central-1:123456789012:parameter/ragstream/pinecone-api-key",
    "weaviate": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:weaviate-AbCdEf",
    "milvus": "arn:aws:ssm:eu-central-1:123456789012:parameter/zilliz-api-key",
    "chroma": "arn:aws:ssm:eu-central-1:123456789012:parameter/ragstream/chroma-api-key",
}
#: The stores whose settings (RAGSTREAM_INDEX value, their own fields) are on this branch.
SETTINGS_STORES = set(typing.get_args(IndexName))


def test_store_values_cover_the_template(cfn: dict[str, Any]) -> None:
    assert set(STORE_VALUES) == set(cfn["Parameters"]["VectorStore"]["AllowedValues"])


@pytest.mark.parametrize("store", sorted(STORE_VALUES))
def test_each_store_gets_its_variables_and_its_key_only(
    cfn: dict[str, Any], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN every store's parameters filled in (a user switching stores may leave the old ones set)
    values = {k: v for other in STORE_VALUES.values() for k, v in other.items() if v}
    values.update(STORE_VALUES[store])
    values["WeaviateGrpcUrl"] = "grpc-abc.c0.europe-west3.gcp.weaviate.cloud:443"
    if store != "qdrant":  # QdrantUrl is still allowed to be set, and is then ignored
        values["QdrantUrl"] = "https://old.cloud.qdrant.io:6333"
    stack = Stack(cfn, VectorStore=store, **values)
    assert stack.rule_violations() == []
    expected = EXPECTED_VARIABLES[store] | ({"RAGSTREAM_WEAVIATE_GRPC_URL"} if store == "weaviate" else set())
    for function in ("IngestFunction", "QueryFunction"):
        env = stack.environment(function)
        # THEN each function is told the store, and only the chosen store's variables
        assert env["RAGSTREAM_INDEX"] == store
        own = expected | (
            {"RAGSTREAM_QDRANT_TIMEOUT"} if (store, function) == ("qdrant", "QueryFunction") else set()
        )
        assert STORE_VARIABLES & set(env) == own, function
        for name in own - {"RAGSTREAM_QDRANT_TIMEOUT", "RAGSTREAM_PINECONE_CLOUD"}:
            own_name = "Qdrant" if store == "qdrant" else "Index"  # Qdrant's by the common names
            param = {
                "RAGSTREAM_INDEX_URL": f"{own_name}Url",
                "RAGSTREAM_INDEX_API_KEY_PARAMETER": f"{own_name}ApiKeyParameter",
                "RAGSTREAM_WEAVIATE_GRPC_URL": "WeaviateGrpcUrl",
                "RAGSTREAM_PINECONE_REGION": "PineconeRegion",
                "RAGSTREAM_PINECONE_NAMESPACE": "PineconeNamespace",
                "RAGSTREAM_CHROMA_TENANT": "ChromaTenant",
                "RAGSTREAM_CHROMA_DATABASE": "ChromaDatabase",
            }[name]
            assert env[name] == values[param], name
    # AND both roles may read the chosen store's key, and no other store's
    for role in ("IngestRole", "QueryRole"):
        keys = [st for st in stack.statements(role) if st.get("Sid") in ("QdrantKey", "IndexKey")]
        assert [r for st in keys for r in _as_list(st["Resource"])] == [EXPECTED_KEY_RESOURCE[store]], role
        action = "secretsmanager:GetSecretValue" if store == "weaviate" else "ssm:GetParameter"
        assert [st["Action"] for st in keys] == [action]
    # AND the settings the functions build from that environment open the chosen store, where it is
    if store in SETTINGS_STORES:
        for name in STORE_VARIABLES | {"RAGSTREAM_INDEX", "RAGSTREAM_QDRANT_URL"}:
            monkeypatch.delenv(name, raising=False)
        for name, value in stack.environment("QueryFunction").items():
            if name.startswith("RAGSTREAM_") and name != "RAGSTREAM_LEDGER_TABLE":
                monkeypatch.setenv(name, value)
        settings = Settings()
        assert settings.index_backend == store
        # Pinecone is reached through its public API: the template passes it no URL
        url = {"qdrant": values["QdrantUrl"], "pinecone": None}.get(store, values.get("IndexUrl"))
        if url:
            assert settings.index_location == url
            assert settings.index_identity.startswith(f"{store}:{url}")
        param = "QdrantApiKeyParameter" if store == "qdrant" else "IndexApiKeyParameter"
        assert settings.index_api_key_parameter == values[param]
    else:  # Weaviate and Pinecone bring their settings on their own branches (issue 12)
        assert store in ("weaviate", "pinecone")


@pytest.mark.parametrize(
    ("store", "missing", "violation"),
    [
        ("qdrant", "QdrantUrl", "VectorStore qdrant needs QdrantUrl"),
        ("weaviate", "IndexUrl", "VectorStore weaviate, milvus and chroma need IndexUrl"),
        ("milvus", "IndexUrl", "VectorStore weaviate, milvus and chroma need IndexUrl"),
        ("chroma", "IndexUrl", "VectorStore weaviate, milvus and chroma need IndexUrl"),
        ("pinecone", "IndexApiKeyParameter", "VectorStore pinecone needs IndexApiKeyParameter"),
    ],
)
def test_rules_refuse_a_store_without_its_url_or_key(
    cfn: dict[str, Any], store: str, missing: str, violation: str
) -> None:
    values = {**STORE_VALUES[store], missing: ""}
    violations = Stack(cfn, VectorStore=store, **values).rule_violations()
    assert len(violations) == 1 and violations[0].startswith(violation), violations


@pytest.mark.parametrize("store", sorted(STORE_VALUES))
def test_optional_store_parameters_left_empty_pass_nothing(cfn: dict[str, Any], store: str) -> None:
    # GIVEN only what the store requires (no key where it is optional, no tenant, no namespace)
    required = {
        "qdrant": {"QdrantUrl": "https://xyz.cloud.qdrant.io:6333"},
        "pinecone": {"QdrantUrl": "", "IndexApiKeyParameter": "/pc"},
    }.get(store, {"QdrantUrl": "", "IndexUrl": "http://10.0.0.5:8000"})
    stack = Stack(cfn, VectorStore=store, **required)
    assert stack.rule_violations() == []
    env = stack.environment("IngestFunction")
    # THEN no variable carries an empty value, and no statement a key nobody named
    assert all(value != "" for value in env.values()), env
    got = {name for name in STORE_VARIABLES if name in env}
    assert got == {
        f"RAGSTREAM_{k}"
        for k in {
            "qdrant": ["INDEX_URL"],
            "pinecone": ["INDEX_API_KEY_PARAMETER", "PINECONE_CLOUD", "PINECONE_REGION"],
        }.get(store, ["INDEX_URL"])
    }
    sids = {st.get("Sid") for st in stack.statements("IngestRole")}
    assert ("IndexKey" in sids) is (store == "pinecone") and "QdrantKey" not in sids
