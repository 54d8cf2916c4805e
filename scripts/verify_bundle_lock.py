"""Check the Lambda bundle lock (src/requirements.txt) against what gets deployed.

    python scripts/verify_bundle_lock.py [BUILD_DIR ...]

1. Hashes for both architectures: pip downloads, in hash-checking mode, the CPython 3.13 manylinux
   wheels the lock pins for aarch64 (the function) and x86_64 (check-template's smoke-test twin).
   Needed because `sam build` on an x86_64 host verifies the hashes only for the host's download;
   it fetches the aarch64 wheels again as plain ``name==version`` (aws-lambda-builders'
   ``download_manylinux_wheels``), so this step is what ties those wheels to the lock. PyPI never
   lets a file name be uploaded twice, so the wheel verified here is the wheel SAM takes.
2. For each BUILD_DIR (a `sam build` output): every installed distribution (``*.dist-info``) is
   in the lock at the locked version. Packages the lock has but the build lacks are allowed (a
   leaner bundle may leave some out); packages or versions the lock does not have are not.

Exit status 0 when every check holds, 1 otherwise. Needs PyPI (or the machine's pip indexes).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "src" / "requirements.txt"
PLATFORMS = {
    "aarch64": ["manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"],
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"],
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalize(name: str) -> str:
    """PEP 503 name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    """Normalized name -> pinned version, from the lock."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[normalize(match[1])] = match[2]
    return pins


def check_hashes(arch: str) -> bool:
    """Download the lock's cp313 manylinux wheels for ``arch`` in hash-checking mode."""
    with tempfile.TemporaryDirectory() as dest:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        command += ["--no-deps", "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.13"]
        command += ["--abi", "cp313", "--abi", "abi3", "--abi", "none"]
        for platform in PLATFORMS[arch]:
            command += ["--platform", platform]
        command += ["--require-hashes", "-r", str(LOCK), "-d", dest]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(p.name for p in Path(dest).glob("*.whl"))
    noise = "WARNING: Location"
    errors = "\n".join(line for line in result.stderr.splitlines() if not line.startswith(noise))
    if result.returncode != 0:
        print(f"FAIL  {arch}: pip download --require-hashes failed:\n{errors}")
        return False
    native = [w for w in wheels if arch in w]
    print(f"ok    {arch}: {len(wheels)} wheels match the lock's hashes ({len(native)} {arch}-specific)")
    return True


def check_build(build_dir: Path, pins: dict[str, str]) -> bool:
    """Every distribution installed in ``build_dir`` is locked at its version."""
    if not build_dir.is_dir():
        print(f"FAIL  {build_dir}: no such directory (did sam build run?)")
        return False
    problems = []
    installed = 0
    for dist_info in sorted(build_dir.glob("*.dist-info")):
        name, _, version = dist_info.name.removesuffix(".dist-info").partition("-")
        installed += 1
        locked = pins.get(normalize(name))
        if locked is None:
            problems.append(f"{name} {version}: not in the lock")
        elif locked != version:
            problems.append(f"{name} {version}: the lock pins {locked}")
    if installed == 0:
        problems.append("no *.dist-info at all: not a sam build output?")
    if problems:
        print(f"FAIL  {build_dir}: " + "; ".join(problems))
        return False
    print(f"ok    {build_dir}: {installed} distributions, each at its locked version")
    return True


def main(argv: list[str]) -> int:
    """Run every check; 0 when all hold."""
    pins = locked_versions()
    if not pins:
        print(f"FAIL  {LOCK}: no pins")
        return 1
    results = [check_hashes(arch) for arch in PLATFORMS]
    results += [check_build(Path(arg), pins) for arg in argv]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
