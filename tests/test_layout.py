"""The house rules on imports: data flows one way, apps/ stands alone, and no stage imports a later one.

ctxbench/ (the installed package: the probe and what it needs) is the layer under all of them: any may import it,
and it imports nothing of the suite's folders, which a wheel does not hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Who may import whom. A stage may use the stages before it in the data flow, never one after it.
ALLOWED: dict[str, set[str]] = {
    "ctxbench": set(),
    "apps": set(),
    "loadtests": {"apps"},
    "microbench": {"apps"},
    "scripts.common": set(),
    "scripts.bench": {"apps", "microbench", "scripts.common"},
    "scripts.load": {"apps", "loadtests", "scripts.common"},
    "scripts.matrix": {"apps", "scripts.common"},
    "scripts.report": {
        "apps",
        "loadtests",
        "scripts.common",
        "scripts.bench",
        "scripts.load",
        "scripts.matrix",
        "scripts.soak",
        "scripts.versions",
    },
    "scripts.probe": set(),  # the command's entry in the index; its code is ctxbench's
    # the version matrix drives apps/ in other interpreters (subprocesses); it imports only read-only data from them
    "scripts.versions": {"apps", "loadtests", "scripts.common", "scripts.load"},
    "scripts.soak": {"apps", "loadtests", "scripts.common", "scripts.load"},
}
PROJECT = ("ctxbench", "apps", "loadtests", "microbench", "scripts")
UNDER_ALL = {"ctxbench"}  # every layer may import it


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
    if owner != "ctxbench":
        used -= UNDER_ALL
    # `from scripts import x` names the package itself; resolve it through the imported name
    used.discard("scripts")
    forbidden = used - ALLOWED[owner]
    if path == ROOT / "ctxbench" / "cli.py":
        forbidden.discard("scripts.cli")  # in the clone only (ctxbench.cli.clone_root), the command hands over to it
    assert not forbidden, f"{path.relative_to(ROOT)} ({owner}) imports {sorted(forbidden)}"


def test_every_scripts_subpackage_has_a_rule_and_a_role() -> None:
    for init in sorted((ROOT / "scripts").glob("*/__init__.py")):
        package = f"scripts.{init.parent.name}"
        assert package in ALLOWED, f"{package} has no layering rule in this test"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.splitlines()) == 1, f"{init.relative_to(ROOT)} needs a one-line docstring"


def test_the_layout_table_lists_every_scripts_subpackage() -> None:
    readme = (ROOT / "docs" / "extending.md").read_text()
    rows = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `scripts/")}
    packages = {f"scripts/{init.parent.name}/" for init in (ROOT / "scripts").glob("*/__init__.py")}
    assert packages | {"scripts/cli.py"} == rows


def test_ctxbench_console_script_is_the_cli() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # ctxbench.cli hands the clone's command line to scripts.cli (the one index of commands)
    assert project["scripts"]["ctxbench"] == "ctxbench.cli:main"
    from ctxbench import cli

    assert cli.clone_root() == ROOT


def _constants(path: Path) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


HARNESS_MODULES = [
    path for _, path in _layer_modules() if not (path.parent == ROOT / "apps" and path.stem != "__init__")
]


@pytest.mark.parametrize("path", HARNESS_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_variant_list_outside_the_registry(path: Path) -> None:
    """Which variants a command takes is a tag in the registry; a module that uses apps/ never spells a variant."""
    from apps.harness import registry

    if path.name == "registry.py" or not any(name.split(".")[0] == "apps" for name in _imports(path)):
        return
    named = sorted(set(_constants(path)) & set(registry.BY_NAME))
    assert not named, f"{path.relative_to(ROOT)} names variants {named}: tag them in apps/harness/registry.py"


@pytest.mark.parametrize("path", HARNESS_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_harness_never_imports_a_variant_by_name(path: Path) -> None:
    from apps.harness import registry

    variants = {f"apps.{name}" for name in registry.BY_NAME}
    assert not (_imports(path) & variants), f"{path.relative_to(ROOT)} imports a variant: load it through the registry"


@pytest.mark.parametrize(("owner", "path"), _layer_modules(), ids=lambda value: str(value))
def test_failure_names_are_read_only_through_the_failure_type(owner: str, path: Path) -> None:
    """`checkpoint.field:verdict` is taken apart in one place (apps.harness.checker.Failure), never by string tests."""
    if path == ROOT / "apps" / "harness" / "checker.py":
        return
    suffixes = [value for value in _constants(path) if value in (":leak", ":lost", ":ok")]
    assert not suffixes, f"{path.relative_to(ROOT)} tests failure names by string: use Failure.parse"
    assert '.split(":")' not in path.read_text(), f"{path.relative_to(ROOT)} splits a name on ':': use Failure.parse"
