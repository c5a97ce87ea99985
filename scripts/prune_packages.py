"""Remove from a Lambda image's package folder the files ragstream never runs (standard library only).

Each image's Dockerfile runs it in its build stage on the folder ``uv pip install --target`` filled;
``tests/integration/deploy/test_images.py`` and ``bench/cold_start.py`` run it the same way. It removes:

- the test suites that packages ship inside themselves (``pandas/tests``, ``numpy/_core/tests``,
  ``chromadb/test``...): folders named ``tests`` below a package, which no package imports;
- type stubs (``*.pyi``, ``*-stubs`` folders), read by type checkers only;
- botocore's API models of the AWS services ragstream never calls: it keeps :data:`AWS_SERVICES`
  (test_template.py checks that every service the code names is kept), and the shared files
  (endpoints, partitions, retry and default configuration);
- the console scripts (``bin/``), which Lambda never runs.

    python3 scripts/prune_packages.py /asset
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

#: The AWS services ragstream calls (boto3 clients in src/ and functions/, plus SSM and Secrets Manager
#: through Powertools' parameters utility), and STS, which botocore's credential providers may call.
AWS_SERVICES = frozenset({"s3", "sqs", "dynamodb", "textract", "ssm", "secretsmanager", "sts"})
#: Test folders that a package ships under another name than ``tests``.
TEST_FOLDERS = ("chromadb/test",)


def prune(root: Path) -> int:
    """Remove the dead files under ``root``; the number of bytes removed."""
    removed = 0

    def drop(path: Path) -> None:
        nonlocal removed
        if path.is_dir() and not path.is_symlink():
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            removed += path.lstat().st_size
            path.unlink()

    drop(root / "bin")
    for package in [p for p in root.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", ".libs"))]:
        if package.name.endswith("-stubs"):
            drop(package)
            continue
        for folder in sorted(package.rglob("tests"), key=lambda p: len(p.parts)):
            if folder.is_dir() and folder.exists():
                drop(folder)
        for stub in package.rglob("*.pyi"):
            drop(stub)
    for name in TEST_FOLDERS:
        drop(root / name)
    data = root / "botocore" / "data"
    if data.is_dir():
        for service in data.iterdir():
            if service.is_dir() and service.name not in AWS_SERVICES:
                drop(service)
    return removed


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: prune_packages.py FOLDER", file=sys.stderr)
        return 2
    removed = prune(Path(argv[0]))
    print(f"prune_packages: removed {removed / 2**20:.1f} MiB from {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
