"""The Lambda artifact holds only what the function imports (src/lambda_bundle.py, src/Makefile).

Derived from the code, statically: the ``selador`` modules reachable from ``selador.handler``
(every import, lazy ones inside functions included) and the botocore services the reachable code
and Strands' Bedrock model create clients for. The smoke test of the built folder
(scripts/smoke_artifact.py, ``make check-template``) checks the same at run time. The tests on
``.aws-sam/build/MainLambda`` run when a build exists and are skipped otherwise.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from selador.local.template import load_yaml

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"
BUILD_DIR = ROOT / ".aws-sam" / "build" / "MainLambda"

# Left-out distributions that reachable code imports on a path the function cannot take, with why.
UNREACHABLE_IMPORTS = {
    ("selador.agents.models", "httpx"): (
        "only the ollama/openai providers import it, after importing their client library, which "
        "is not in the artifact (those providers are for local runs)"
    ),
}


def _load_bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lambda_bundle", SRC / "lambda_bundle.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bundle = _load_bundle()


def _module_file(root: Path, name: str) -> Path | None:
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """(modules ``name`` imports anywhere in its file, string constants naming selador modules)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # noqa: SIM102
            # importlib.resources packages: "selador.knowledge.data"
            if re.fullmatch(r"selador(\.\w+)+", node.value):
                named.add(node.value)
    return found, named


def reachable(root: Path, start: str = "selador.handler") -> tuple[set[str], dict[str, set[str]]]:
    """The selador modules reachable from ``start``, and the third-party top-level names each imports."""
    seen: set[str] = set()
    third_party: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(root, name)
        if path is None:
            continue  # a name imported from a module (from x import function)
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        found, named = _imports(name, path)
        todo += [m for m in found | named if m.split(".")[0] == "selador"]
        third_party[name] = {m.split(".")[0] for m in found if m and m.split(".")[0] != "selador"}
    return seen, third_party


def package_modules(root: Path) -> set[str]:
    """Every module of the ``selador`` package under ``root``."""
    return {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in (root / "selador").rglob("*.py")
    }


def test_the_copied_package_is_what_the_handler_reaches(tmp_path: Path) -> None:
    bundle.copy_package(SRC, tmp_path)
    copied = package_modules(tmp_path)
    needed, _ = reachable(SRC)

    assert needed - copied == set(), "modules the handler reaches are missing from the artifact"
    assert copied - needed == set(), "the artifact carries modules no route reaches (development only?)"
    assert not (tmp_path / "selador" / "local").exists()
    # Package data (the bundled knowledge base and zoning table) comes along.
    assert list((tmp_path / "selador" / "knowledge" / "documents").glob("*.md"))
    assert (tmp_path / "selador" / "knowledge" / "data" / "zoning_standards.json").is_file()
    assert not list(tmp_path.rglob("__pycache__"))


def test_nothing_reachable_imports_the_local_gateway() -> None:
    needed, _ = reachable(SRC)
    assert not {m for m in needed if m.startswith("selador.local")}


def test_reachable_code_never_imports_a_left_out_distribution() -> None:
    _, third_party = reachable(SRC)
    left_out = {name: dist for dist, names in bundle.EXCLUDED_DISTRIBUTIONS.items() for name in names}
    found = {(module, name) for module, names in third_party.items() for name in names if name in left_out}
    assert found - set(UNREACHABLE_IMPORTS) == set()


def test_left_out_distributions_are_not_direct_dependencies() -> None:
    # pyproject's [project] dependencies, not src/requirements.txt: a full lock lists the
    # left-out packages too (as dependencies of dependencies), which is what the build prunes.
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    direct = {bundle.normalise(re.split(r"[<>=!~\[ ;@]", d)[0]) for d in dependencies}
    assert direct & set(bundle.EXCLUDED_DISTRIBUTIONS) == set()


def _literal_service(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "service_name" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def client_services(path: Path) -> set[str]:
    """Services of the boto3 clients/resources a file creates (``shared_client``, ``*.client``)."""
    services = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        creates = (isinstance(func, ast.Name) and func.id == "shared_client") or (
            isinstance(func, ast.Attribute) and func.attr in ("client", "resource")
        )
        if creates:
            service = _literal_service(node)
            assert service, f"{path}:{node.lineno}: a client whose service is not a literal"
            services.add(service)
    return services


def services_the_code_calls() -> set[str]:
    """Derived from the reachable code, plus Strands' BedrockModel when the code builds one."""
    needed, _ = reachable(SRC)
    services: set[str] = set()
    for name in needed - {"selador.clients"}:  # shared_client itself: its callers name the service
        path = _module_file(SRC, name)
        assert path is not None
        services |= client_services(path)
        if "BedrockModel" in path.read_text(encoding="utf-8"):
            spec = importlib.util.find_spec("strands.models.bedrock")
            assert spec and spec.origin
            services |= client_services(Path(spec.origin))
    return services


def test_kept_botocore_models_are_the_services_the_code_calls() -> None:
    services = services_the_code_calls()
    assert "bedrock-runtime" in services  # via strands.models.bedrock
    assert services == set(bundle.BOTOCORE_SERVICES)


def test_the_template_builds_with_the_makefile() -> None:
    function = load_yaml(ROOT / "template.yaml")["Resources"]["MainLambda"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    makefile = (ROOT / function["Properties"]["CodeUri"] / "Makefile").read_text()
    assert re.search(r"^build-MainLambda:", makefile, re.M)
    # The Makefile cannot see the template: its defaults must be the template's.
    arch = re.search(r"^LAMBDA_ARCHITECTURE \?= (\S+)$", makefile, re.M)
    version = re.search(r"^LAMBDA_PYTHON_VERSION \?= (\S+)$", makefile, re.M)
    assert arch and [arch.group(1)] == function["Properties"]["Architectures"]
    assert version and f"python{version.group(1)}" == function["Properties"]["Runtime"]


@pytest.mark.skipif(not (BUILD_DIR / "selador" / "handler.py").is_file(), reason="no sam build output")
def test_the_built_artifact() -> None:
    assert bundle.verify(BUILD_DIR, "arm64") == []
    needed, _ = reachable(SRC)
    assert package_modules(BUILD_DIR) == needed
    models = sorted(p.name for p in (BUILD_DIR / "botocore" / "data").iterdir() if p.is_dir())
    assert models == sorted(services_the_code_calls())
