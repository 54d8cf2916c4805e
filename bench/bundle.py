"""Target 8: the zipped size of the ``sam build`` artifact (at most 15 MiB).

The artifact is built by ``src/Makefile`` → ``src/lambda_bundle.py`` (only what the function
imports: no ``selador.local``, no ``mcp`` HTTP stack, five botocore service models).

Measured from ``.aws-sam/build/MainLambda`` when it exists, zipped file by file with
ZIP_DEFLATED at the default level (as ``sam deploy`` and ``scripts/check-template.sh`` zip it) into
a temporary file. Without a build directory the bundle is built with the project's pinned SAM CLI
(``.sam-venv/bin/sam``, python3.13 from pyenv) when ``--build`` is given; otherwise it is a SKIP,
never a PASS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from bench.common import REPO, child_environment, temp_dir
from bench.results import Result, judged, skipped

TARGET_MIB = 15.0
BUILD_DIR = REPO / ".aws-sam" / "build" / "MainLambda"
SAM = REPO / ".sam-venv" / "bin" / "sam"


def zipped_size(root: Path, target: Path) -> tuple[int, int]:
    """Zip ``root`` into ``target``; return (zipped bytes, unzipped bytes)."""
    unzipped = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(directory, name)
                unzipped += os.path.getsize(path)
                bundle.write(path, os.path.relpath(path, root))
    return target.stat().st_size, unzipped


def _build() -> str | None:
    """Run ``sam build`` with python3.13 on PATH; return why it could not, or None."""
    if not SAM.exists():
        return "no build dir and no .sam-venv/bin/sam (run make check-template)"
    pyenv = shutil.which("pyenv")
    path = os.environ.get("PATH", "")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
        versions = sorted(Path(root, "versions").glob("3.13.*"), reverse=True)
        if versions:
            path = f"{versions[0] / 'bin'}:{path}"
    env = child_environment({"PATH": path, "SAM_CLI_TELEMETRY": "0"})
    completed = subprocess.run(
        [str(SAM), "build", "--region", "us-west-2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return "sam build failed: " + completed.stderr.strip().splitlines()[-1][:200]
    return None


def run(build: bool) -> list[Result]:
    """Target 8."""
    name = "bundle.zipped"
    if not (BUILD_DIR / "selador" / "handler.py").exists():
        if not build:
            return [
                skipped(
                    name,
                    "MiB",
                    TARGET_MIB,
                    "not measured: no .aws-sam build (run make check-template or --build)",
                )
            ]
        reason = _build()
        if reason:
            return [skipped(name, "MiB", TARGET_MIB, reason)]
    with temp_dir() as tmp:
        size, unzipped = zipped_size(BUILD_DIR, tmp / "bundle.zip")
    mib = size / 2**20
    built = (BUILD_DIR / "selador" / "handler.py").stat().st_mtime
    return [
        judged(
            name,
            round(mib, 2),
            "MiB",
            TARGET_MIB,
            detail={
                "zipped_bytes": size,
                "unzipped_mib": round(unzipped / 2**20, 1),
                "build_dir": str(BUILD_DIR),
                "built_at": built,
            },
            note=f"{unzipped / 2**20:.0f} MiB unzipped, from {BUILD_DIR.relative_to(REPO)}",
        )
    ]
