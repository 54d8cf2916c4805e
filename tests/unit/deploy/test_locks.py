"""The dependency locks agree with pyproject.toml (`make lock` writes them; docs/deploy.md).

- src/requirements.txt: the Lambda bundle (`sam build` installs it from CodeUri), [project] only;
- requirements-dev.txt: .venv (`make install`), [project] plus the dev extra.

Each is complete and hashed (pip then runs in hash-checking mode), satisfies every direct
requirement it is responsible for, and the dev lock holds every bundle package at the same
version with the same hashes, so what is tested in .venv is what ships.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
BUNDLE_LOCK = ROOT / "src" / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*\\?$")
# Direct requirements of the dev extra that must never reach the Lambda bundle.
DEV_ONLY = {
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "moto",
    "hypothesis",
    "ruff",
    "mypy",
    "types-pyyaml",
}
DEV_ONLY |= {"ollama", "openai", "websockets"}
# The API documents' validator (jsonschema is not here: the bundle lock has it, through mcp).
DEV_ONLY |= {"openapi-spec-validator"}


@dataclass
class Pin:
    version: str
    marker: str | None
    hashes: set[str] = field(default_factory=set)


def parse_lock(path: Path) -> dict[str, Pin]:
    """Parse a `uv pip compile --generate-hashes` file; fail on any line that is not a hashed pin."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            current = None if not line.startswith("    #") else current
            continue
        if HASH.match(line):
            assert current is not None, f"{path.name}:{number}: a hash without a pin"
            current.hashes.add(line.split("=", 1)[1].rstrip(" \\"))
            continue
        match = PIN.match(line)
        assert match, f"{path.name}:{number}: not an exact, hashed pin: {line!r}"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        current = pins[name] = Pin(match["version"], match["marker"])
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def direct_requirements(extras: tuple[str, ...] = ()) -> list[Requirement]:
    """[project] dependencies plus the given extras, self-references (selador[...]) expanded."""
    project = pyproject()["project"]
    optional = project["optional-dependencies"]
    result = [Requirement(r) for r in project["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in optional[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
                pending.extend(requirement.extras)
            else:
                result.append(requirement)
    return result


@pytest.fixture(scope="module")
def bundle() -> dict[str, Pin]:
    return parse_lock(BUNDLE_LOCK)


@pytest.fixture(scope="module")
def dev() -> dict[str, Pin]:
    return parse_lock(DEV_LOCK)


def assert_satisfies(lock: dict[str, Pin], requirements: list[Requirement], lock_name: str) -> None:
    problems = []
    for requirement in requirements:
        pin = lock.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is missing")
        elif not requirement.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(f"{requirement} is not satisfied by the locked {pin.version}")
        elif pin.marker:
            problems.append(f"{requirement} is locked only for `{pin.marker}`")
    assert not problems, f"{lock_name} disagrees with pyproject.toml (run `make lock`): " + "; ".join(
        problems
    )


def test_locks_are_complete_and_hashed(bundle: dict[str, Pin], dev: dict[str, Pin]) -> None:
    for name, lock in (("src/requirements.txt", bundle), ("requirements-dev.txt", dev)):
        assert len(lock) > 10, f"{name}: suspiciously few pins"
        unhashed = sorted(package for package, pin in lock.items() if not pin.hashes)
        assert not unhashed, f"{name}: pins without hashes (pip would refuse the file): {unhashed}"


def test_locks_say_how_they_are_made() -> None:
    for path in (BUNDLE_LOCK, DEV_LOCK):
        assert "make lock" in path.read_text().split("\n", 3)[1], (
            f"{path.name}: header should name `make lock`"
        )


def test_bundle_lock_satisfies_project_dependencies(bundle: dict[str, Pin]) -> None:
    assert_satisfies(bundle, direct_requirements(), "src/requirements.txt")


def test_dev_lock_satisfies_project_and_dev_dependencies(dev: dict[str, Pin]) -> None:
    requirements = direct_requirements(("dev",))
    assert {"pytest", "moto", "uvicorn", "ollama", "openai"} <= {
        canonicalize_name(r.name) for r in requirements
    }
    assert_satisfies(dev, requirements, "requirements-dev.txt")


def test_dev_lock_holds_the_bundle_at_the_same_versions(bundle: dict[str, Pin], dev: dict[str, Pin]) -> None:
    missing = sorted(set(bundle) - set(dev))
    assert not missing, f"bundle packages absent from the dev lock: {missing}"
    differ = {
        name: (pin.version, dev[name].version)
        for name, pin in bundle.items()
        if dev[name].version != pin.version
    }
    assert not differ, f"bundle vs dev versions differ (run `make lock`): {differ}"
    rehashed = sorted(name for name, pin in bundle.items() if not pin.hashes <= dev[name].hashes)
    assert not rehashed, f"bundle hashes the dev lock does not have: {rehashed}"


def test_no_development_package_in_the_bundle(bundle: dict[str, Pin]) -> None:
    assert not DEV_ONLY & set(bundle), f"development packages in the bundle lock: {DEV_ONLY & set(bundle)}"
    project = {canonicalize_name(r.name) for r in direct_requirements()}
    assert not project & {"uvicorn", "starlette", "websockets", "pyyaml"}, (
        "local-only packages are [project] deps"
    )


def test_pyjwt_has_the_issuer_fix(bundle: dict[str, Pin], dev: dict[str, Pin]) -> None:
    # CVE-2024-53861: PyJWT 2.10.0 checks `iss` as a substring; selador.auth passes issuer=.
    requirement = next(r for r in direct_requirements() if canonicalize_name(r.name) == "pyjwt")
    assert not requirement.specifier.contains("2.10.0"), "pyproject.toml must exclude pyjwt 2.10.0"
    assert "crypto" in requirement.extras
    for lock in (bundle, dev):
        assert Version(lock["pyjwt"].version) >= Version("2.10.1")
        assert "cryptography" in lock, "pyjwt[crypto] needs cryptography in the lock"


def test_parse_lock_rejects_unhashed_or_ranged_lines(tmp_path: Path) -> None:
    ranged = tmp_path / "ranged.txt"
    ranged.write_text("boto3>=1.40\n")
    with pytest.raises(AssertionError, match="not an exact, hashed pin"):
        parse_lock(ranged)
    unhashed = tmp_path / "unhashed.txt"
    unhashed.write_text("boto3==1.44.8\n")
    assert parse_lock(unhashed)["boto3"].hashes == set()


def test_the_bundle_lock_has_no_machine_specific_requirement() -> None:
    # lambda_bundle.py installs with --platform, but pip evaluates platform_machine markers against
    # the build host: an aarch64-only requirement would be left out of the arm64 artifact silently
    # (and the x86_64 twin's smoke test could not notice).
    lines = (ROOT / "src" / "requirements.txt").read_text().splitlines()
    assert not [line for line in lines if "platform_machine" in line]
