"""Print what ``sam build`` builds for each image function, per VectorStore value, and which parameter
overrides ``sam build`` and ``sam deploy`` read from samconfig.toml, as JSON on stdout.

Resolves template.yaml with the SAM CLI's own code, the way ``sam build --parameter-overrides
VectorStore=<store>`` does (SamLocalStackProvider resolves Ref and Fn::FindInMap in each function's
Metadata; SamFunctionProvider hands that Metadata to the image build): for each store, each image
function's Dockerfile, DockerContext and DockerBuildArgs. Then samconfig.toml (beside the template) as
SAM's own SamConfig merges it for each command (the command's section over ``global``), its
``parameter_overrides`` parsed as the CLI parses them. Nothing is built and nothing is called.

Runs in the SAM CLI's tool environment (.tools/sam, scripts/sam-tools), never in the project's .venv.
Usage: .tools/sam/bin/python scripts/image-build-args.py [template.yaml] [STORE ...]
(no store: every VectorStore value the template allows, and ``default`` for no override at all).
Output: {"stores": {"<store>": {"<function>": {"Dockerfile": ..., "DockerContext": ...,
"DockerBuildArgs": {...}}}}, "samconfig": {"build": {"<Parameter>": "<value>"}, "deploy": {...}}}
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from samcli.cli.types import CfnParameterOverridesType
from samcli.lib.config.samconfig import SamConfig
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.yamlhelper import yaml_parse

DEFAULT = "default"


def image_functions(template: Path, overrides: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each image function's build Metadata, as ``sam build`` sees it with these parameter overrides."""
    stacks, _ = SamLocalStackProvider.get_stacks(str(template), parameter_overrides=overrides)
    provider = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True)
    found: dict[str, dict[str, Any]] = {}
    for function in provider.get_all():
        if function.packagetype != "Image":
            continue
        meta = function.metadata or {}
        found[function.name] = {
            "Dockerfile": meta.get("Dockerfile"),
            "DockerContext": meta.get("DockerContext"),
            "DockerBuildArgs": meta.get("DockerBuildArgs", {}),
        }
    return found


def samconfig_overrides(folder: Path) -> dict[str, dict[str, str]]:
    """The parameter overrides ``sam build`` and ``sam deploy`` take from samconfig.toml (default env)."""
    config = SamConfig(str(folder))
    found: dict[str, dict[str, str]] = {}
    for command in ("build", "deploy"):
        value = (
            config.get_all([command], "parameters").get("parameter_overrides") if config.exists() else None
        )
        found[command] = dict(CfnParameterOverridesType().convert(value, None, None)) if value else {}
    return found


def main() -> int:
    logging.disable(logging.WARNING)  # the providers warn about things a build would fix (no ImageUri)
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))  # names only
    args = sys.argv[1:]
    template = Path(args.pop(0) if args and args[0].endswith((".yaml", ".yml", ".json")) else "template.yaml")
    if not args:
        parameters = yaml_parse(template.read_text(encoding="utf-8")).get("Parameters", {})
        args = [DEFAULT, *parameters["VectorStore"]["AllowedValues"]]
    result = {
        "stores": {
            store: image_functions(template, {} if store == DEFAULT else {"VectorStore": store})
            for store in args
        },
        "samconfig": samconfig_overrides(template.resolve().parent),
    }
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
