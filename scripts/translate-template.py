"""Translate template.yaml (SAM) to plain CloudFormation JSON on stdout, offline.

Runs in the SAM CLI's tool environment (.tools/sam, which carries aws-sam-translator), never in the
project's .venv. Image functions get a placeholder ImageUri (``sam build`` fills the real one);
nothing is called: the template uses no AWS managed policy, so no policy list is fetched.
Usage: .tools/sam/bin/python scripts/translate-template.py [template.yaml]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

PLACEHOLDER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ragstream:{tag}"


class _NoManagedPolicies:
    """The policy loader SAM asks for AWS managed policy ARNs; the template names none."""

    def load(self) -> dict[str, str]:
        return {}


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))  # names only
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
    template = yaml_parse(path.read_text(encoding="utf-8"))
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            props = resource.setdefault("Properties", {})
            if props.get("PackageType") == "Image" and "ImageUri" not in props:
                tag = resource.get("Metadata", {}).get("DockerTag", "latest")
                props["ImageUri"] = PLACEHOLDER_IMAGE.format(tag=tag)
    try:
        translated = transform(template, {}, _NoManagedPolicies())  # type: ignore[arg-type]
    except InvalidDocumentException as exc:
        for cause in exc.causes:
            print(f"[translate-template] {cause.message}", file=sys.stderr)
        return 1
    json.dump(translated, sys.stdout, indent=1, sort_keys=False, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
