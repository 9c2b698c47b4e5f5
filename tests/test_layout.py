"""The house rules on imports: data flows one way, apps/ stands alone, and no stage imports a later one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Who may import whom. A stage may use the stages before it in the data flow, never one after it.
ALLOWED: dict[str, set[str]] = {
    "apps": set(),
    "loadtests": {"apps"},
    "microbench": {"apps"},
    "scripts.common": set(),
    "scripts.bench": {"apps", "microbench", "scripts.common"},
    "scripts.load": {"apps", "loadtests", "scripts.common"},
    "scripts.matrix": {"apps", "scripts.common"},
    "scripts.report": {
        "apps",
        "scripts.common",
        "scripts.bench",
        "scripts.load",
        "scripts.matrix",
        "scripts.soak",
        "scripts.versions",
    },
    "scripts.probe": {"loadtests", "scripts.common", "scripts.load"},
    # the version matrix drives apps/ in other interpreters (subprocesses); it imports only read-only data from them
    "scripts.versions": {"apps", "loadtests", "scripts.common", "scripts.load"},
    "scripts.soak": {"apps", "loadtests", "scripts.common", "scripts.load"},
}
PROJECT = ("apps", "loadtests", "microbench", "scripts")


def _owner(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] not in PROJECT:
        return None
    if parts[0] == "scripts" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _layer_modules() -> list[tuple[str, Path]]:
    pairs = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT)
        module = ".".join(relative.with_suffix("").parts)
        owner = _owner(module)
        if owner in ALLOWED:
            pairs.append((owner, path))
    return pairs


@pytest.mark.parametrize(("owner", "path"), _layer_modules(), ids=lambda value: str(value))
def test_no_import_runs_back_up_a_layer(owner: str, path: Path) -> None:
    used = {_owner(name) for name in _imports(path)} - {None, owner}
    # `from scripts import x` names the package itself; resolve it through the imported name
    used.discard("scripts")
    forbidden = used - ALLOWED[owner]
    assert not forbidden, f"{path.relative_to(ROOT)} ({owner}) imports {sorted(forbidden)}"


def test_every_scripts_subpackage_has_a_rule_and_a_role() -> None:
    for init in sorted((ROOT / "scripts").glob("*/__init__.py")):
        package = f"scripts.{init.parent.name}"
        assert package in ALLOWED, f"{package} has no layering rule in this test"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.splitlines()) == 1, f"{init.relative_to(ROOT)} needs a one-line docstring"


def test_readme_layout_table_lists_every_scripts_subpackage() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `scripts/")}
    packages = {f"scripts/{init.parent.name}/" for init in (ROOT / "scripts").glob("*/__init__.py")}
    assert packages | {"scripts/cli.py"} == rows


def test_ctxbench_console_script_is_the_cli() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["ctxbench"] == "scripts.cli:main"
