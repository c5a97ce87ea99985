"""What ``sam build`` builds, as the SAM CLI's own code resolves template.yaml (scripts/image-build-args.py).

SAM runs from its tool environment (.tools/sam, made by scripts/sam-tools, which scripts/test runs before
pytest): it pins an older boto3, so it is a subprocess here, never an import. Without that environment the
tests that need it are skipped, saying so.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"
#: The key of the resolution without any parameter override (the template's default VectorStore).
DEFAULT = "default"
#: Each image function of the template -> its image (the folder under functions/).
IMAGES = {"QueryFunction": "query", "IngestFunction": "ingest"}


@functools.cache
def resolved() -> dict[str, Any]:
    """``{"stores": {store: {function: {Dockerfile, DockerContext, DockerBuildArgs}}}, "samconfig": ...}``."""
    if not SAM_PYTHON.exists():
        pytest.skip(
            f"the SAM CLI tool environment is missing ({SAM_PYTHON.parent.parent}): run scripts/sam-tools"
        )
    proc = subprocess.run(
        [str(SAM_PYTHON), str(ROOT / "scripts" / "image-build-args.py"), str(ROOT / "template.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def build_args(image: str, store: str = DEFAULT) -> dict[str, str]:
    """The DockerBuildArgs ``sam build`` gives the image's function for this VectorStore (or none given)."""
    [function] = [f for f, i in IMAGES.items() if i == image]
    args: dict[str, str] = resolved()["stores"][store][function]["DockerBuildArgs"]
    return args
