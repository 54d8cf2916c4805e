"""Build the Lambda artifact of ``MainLambda``: only what the function imports.

``sam build`` runs ``make build-MainLambda`` (``src/Makefile``; the template's ``BuildMethod:
makefile``), which runs this script with the standard library of the function's runtime::

    python3.13 lambda_bundle.py --architecture arm64 --python-version 3.13 \
        --requirements requirements.txt --source . ARTIFACTS_DIR

Steps:

1. ``pip install -r requirements.txt`` into ARTIFACTS_DIR for the function's platform
   (manylinux wheels for the architecture and Python version, never the build host's).
2. Remove the distributions in :data:`EXCLUDED_DISTRIBUTIONS` (file by file, from their RECORD):
   dependencies of dependencies that no route imports, chiefly ``strands-agents`` → ``mcp`` and
   the HTTP server stack ``mcp`` pulls in. ``scripts/smoke_artifact.py`` proves it: it runs every
   kind of route from the built folder and fails if any of their modules was even attempted.
3. Keep only the botocore service models in :data:`BOTOCORE_SERVICES`, the services the code
   creates clients for (``tests/unit/deploy/test_bundle.py`` derives that list from the code).
4. Copy the ``selador`` package without :data:`EXCLUDED_PACKAGE_PATHS` (the local gateway and
   the ``selador`` command: development only, they stay in the source tree and ``.venv``).

Only the standard library is used: this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

EXCLUDED_PACKAGE_PATHS: tuple[str, ...] = ("selador/local",)
"""Parts of the ``selador`` package left out: ``selador.local`` is the local API Gateway and the
``selador`` CLI (uvicorn/starlette based); nothing reachable from ``selador.handler`` imports it."""

EXCLUDED_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    # distribution (normalised name): its top-level import names (checked against its RECORD).
    # strands-agents depends on mcp for MCPClient (strands.tools.mcp), which the function never
    # uses; `from strands import Agent` and strands.models.bedrock do not import it.
    "mcp": ("mcp",),
    "mcp-types": ("mcp_types",),
    # mcp's HTTP client and server stack.
    "uvicorn": ("uvicorn",),
    "starlette": ("starlette",),
    "sse-starlette": ("sse_starlette",),
    "python-multipart": ("multipart", "python_multipart"),
    "httpx": ("httpx",),
    "httpcore": ("httpcore",),
    "httpx2": ("httpx2",),
    "httpcore2": ("httpcore2",),
    "h11": ("h11",),
    "anyio": ("anyio",),
    "click": ("click",),
    "truststore": ("truststore",),
    # cffi's C-declaration parser, used when building bindings; cryptography's are prebuilt
    # (cffi's _cffi_backend stays: the bindings load through it).
    "pycparser": ("pycparser",),
}
"""Installed as dependencies of dependencies, never imported by any route."""

UNIMPORTED_BUT_KEPT: dict[str, str] = {}
"""Distributions shipped although the smoke test's routes import none of their modules, with why."""

BOTOCORE_SERVICES: tuple[str, ...] = (
    "apigatewaymanagementapi",  # selador.websocket.management: PostToConnection, DeleteConnection
    "bedrock-agent-runtime",  # selador.knowledge.factory: the Bedrock knowledge base (retrieve)
    "bedrock-runtime",  # strands.models.BedrockModel (selador.agents.models): converse_stream
    "dynamodb",  # selador.store.factory: connections, claims, counters, runs
    "lambda",  # selador.runs.jobs: the asynchronous hand-off (invoke)
)
"""botocore service models kept. Credentials on Lambda come from the environment, so the STS and
SSO clients of other credential providers are never created."""

PLATFORM_TAGS = {
    # Lambda's python3.13 runtime is Amazon Linux 2023 (glibc 2.34).
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"),
}


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(root: Path) -> dict[str, Path]:
    """Installed distributions under ``root``: normalised name → its ``.dist-info`` directory."""
    found = {}
    for info in sorted(root.glob("*.dist-info")):
        found[normalise(info.name[: -len(".dist-info")].split("-")[0])] = info
    return found


def record_paths(info: Path) -> list[str]:
    """The paths a distribution's RECORD lists, relative to the install root."""
    with (info / "RECORD").open(newline="", encoding="utf-8") as record:
        return [row[0] for row in csv.reader(record) if row]


def _top_level(path: str) -> str | None:
    first = path.split("/", 1)[0]
    if first in ("..", "bin", "__pycache__") or first.endswith((".dist-info", ".data")):
        return None
    if "/" not in path:  # a module file at the root: six.py, _cffi_backend.cpython-313-….so
        return first.split(".", 1)[0] if first.endswith((".py", ".so", ".pyd")) else None
    return first


def top_level_names(root: Path) -> dict[str, set[str]]:
    """Each installed distribution's top-level import names, from its RECORD (``selador`` too)."""
    names = {
        dist: {n for p in record_paths(info) if (n := _top_level(p))}
        for dist, info in distributions(root).items()
    }
    if (root / "selador").is_dir():
        names["selador"] = {"selador"}
    return names


def pip_install(requirements: Path, target: Path, architecture: str, python_version: str) -> None:
    """Install ``requirements`` into ``target`` as wheels for the function's platform."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # as SAM's Python builder: no __pycache__ in the artifact
        "--only-binary=:all:",
        # The lock pins every file's digest: pip refuses anything else (implied by the hashes;
        # explicit so that a lock that lost its hashes fails instead of installing unchecked).
        "--require-hashes",
        "--implementation=cp",
        f"--python-version={python_version}",
        *(f"--platform={tag}" for tag in PLATFORM_TAGS[architecture]),
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def remove_distribution(root: Path, info: Path) -> int:
    """Delete every file a distribution installed (and its now empty folders); return bytes freed."""
    freed = 0
    folders: set[Path] = set()
    for relative in record_paths(info):
        path = (root / relative).resolve()
        if root.resolve() not in path.parents:
            continue  # ../bin and the like: outside the artifact
        if path.is_file() or path.is_symlink():
            freed += path.stat().st_size
            path.unlink()
        folders.update(p for p in path.parents if root.resolve() in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        elif folder.is_dir() and all(c.name == "__pycache__" for c in folder.iterdir()):
            shutil.rmtree(folder)
    if info.exists():
        shutil.rmtree(info)
    return freed


def prune_distributions(root: Path) -> None:
    """Remove :data:`EXCLUDED_DISTRIBUTIONS`; fail if one's import names are not as declared."""
    installed = distributions(root)
    for dist, declared in EXCLUDED_DISTRIBUTIONS.items():
        info = installed.get(dist)
        if info is None:
            print(f"  (not installed: {dist})")
            continue
        actual = {n for p in record_paths(info) if (n := _top_level(p))}
        if not actual <= set(declared):
            raise SystemExit(f"{dist} now installs {sorted(actual)}; update EXCLUDED_DISTRIBUTIONS")
        freed = remove_distribution(root, info)
        print(f"  left out {dist} ({freed / 2**20:.1f} MiB)")
    # Console scripts (uvicorn, httpx, jsonschema, …): nothing runs them on Lambda.
    shutil.rmtree(root / "bin", ignore_errors=True)


def prune_botocore(root: Path) -> None:
    """Keep the models of :data:`BOTOCORE_SERVICES` and botocore's shared data files."""
    data = root / "botocore" / "data"
    missing = [s for s in BOTOCORE_SERVICES if not (data / s).is_dir()]
    if missing:
        raise SystemExit(f"botocore has no model for {missing}")
    removed = 0
    freed = 0
    for entry in sorted(data.iterdir()):
        if entry.is_dir() and entry.name not in BOTOCORE_SERVICES:
            freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            shutil.rmtree(entry)
            removed += 1
    # Keep botocore's RECORD true to what is installed.
    info = distributions(root)["botocore"]
    rows = [row for row in _record_rows(info) if (root / row[0]).exists() or row[0].startswith("..")]
    with (info / "RECORD").open("w", newline="", encoding="utf-8") as record:
        csv.writer(record, lineterminator="\n").writerows(rows)
    kept = len(BOTOCORE_SERVICES)
    print(f"  botocore: kept {kept} service models, removed {removed} ({freed / 2**20:.1f} MiB)")


def _record_rows(info: Path) -> list[list[str]]:
    with (info / "RECORD").open(newline="", encoding="utf-8") as record:
        return [row for row in csv.reader(record) if row]


def copy_package(source: Path, target: Path) -> None:
    """Copy ``selador`` without :data:`EXCLUDED_PACKAGE_PATHS`, caches or compiled files."""
    excluded = {(source / p).resolve() for p in EXCLUDED_PACKAGE_PATHS}

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {
            n
            for n in names
            if n == "__pycache__"
            or n.endswith((".pyc", ".pyo"))
            or (Path(directory, n).resolve() in excluded)
        }

    shutil.copytree(source / "selador", target / "selador", ignore=ignore)


ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64


def verify(root: Path, architecture: str) -> list[str]:
    """What is wrong with a built artifact (empty when nothing is)."""
    problems = []
    for path in EXCLUDED_PACKAGE_PATHS:
        if (root / path).exists():
            problems.append(f"{path} is in the artifact")
    installed = distributions(root)
    for dist, names in EXCLUDED_DISTRIBUTIONS.items():
        present = [n for n in names if (root / n).exists() or (root / f"{n}.py").exists()]
        if dist in installed or present:
            problems.append(f"left-out distribution {dist} is in the artifact ({present})")
    data = root / "botocore" / "data"
    models = sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
    if models != sorted(BOTOCORE_SERVICES):
        problems.append(f"botocore models {models} != {sorted(BOTOCORE_SERVICES)}")
    for name in ("bin", "requirements.txt", "Makefile", "lambda_bundle.py"):
        if (root / name).exists():
            problems.append(f"{name} is in the artifact")
    problems += [f"{p.relative_to(root)} in the artifact" for p in root.rglob("__pycache__")]
    for library in root.rglob("*.so*"):
        with library.open("rb") as elf:
            header = elf.read(20)
        machine = int.from_bytes(header[18:20], "little") if header[:4] == b"\x7fELF" else None
        if machine != ELF_MACHINES[architecture]:
            problems.append(
                f"{library.relative_to(root)} is not an {architecture} library (e_machine {machine})"
            )
    return problems


def main(argv: list[str] | None = None) -> None:
    """Build the artifact into the given directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, help="ARTIFACTS_DIR (sam build)")
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument(
        "--requirements", type=Path, default=Path(__file__).resolve().parent / "requirements.txt"
    )
    parser.add_argument("--architecture", choices=sorted(PLATFORM_TAGS), default="arm64")
    parser.add_argument("--python-version", default="3.13")
    parser.add_argument("--verify", action="store_true", help="check a built artifact instead of building")
    args = parser.parse_args(argv)
    target: Path = args.artifacts.resolve()
    if args.verify:
        problems = verify(target, args.architecture)
        print(
            "\n".join(problems)
            or f"{target}: only the runtime package, no left-out distribution, "
            f"botocore models {', '.join(BOTOCORE_SERVICES)}, {args.architecture} native code"
        )
        raise SystemExit(1 if problems else 0)
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise SystemExit(f"{target} is not empty")
    print(f"building the {args.architecture} artifact (Python {args.python_version}) in {target}")
    pip_install(args.requirements, target, args.architecture, args.python_version)
    prune_distributions(target)
    prune_botocore(target)
    copy_package(args.source, target)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"artifact: {size / 2**20:.1f} MiB unzipped, {len(distributions(target))} distributions + selador")


if __name__ == "__main__":
    main()
