"""The registry lists every variant module, each loads an app, and the README's table is generated from it."""

import ast
from pathlib import Path

import pytest

from apps.harness import registry
from scripts.report import readme

APPS_DIR = Path(registry.__file__).parents[1]


def defines_app(path: Path) -> bool:
    """A variant is what it is: a module that binds `app` at its top level."""
    for node in ast.parse(path.read_text()).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(target, ast.Name) and target.id == "app" for target in targets):
            return True
    return False


def test_every_variant_module_under_apps_is_registered() -> None:
    variants = {path.stem for path in APPS_DIR.glob("*.py") if defines_app(path)}
    assert variants == set(registry.BY_NAME), "register the module in apps/harness/registry.py (or remove it)"


def test_apps_top_level_holds_only_variants_and_the_reset_worker() -> None:
    others = {path.stem for path in APPS_DIR.glob("*.py") if not defines_app(path)} - {"__init__"}
    assert others == {"workers"}, "harness code belongs in apps/harness/, variants are registered"


def test_every_group_a_command_takes_is_in_the_registry() -> None:
    assert registry.reference() == "baseline"
    for tag in (registry.SERVER_COST, registry.CLIENT_LOAD, registry.VERSION_MATRIX, registry.OBSERVABILITY):
        assert registry.tagged(tag), f"no variant carries {tag!r}"
    assert len(registry.tagged(registry.COST_TARGET)) == 1
    assert len(registry.tagged(registry.FIX)) == len(registry.tagged(registry.FIX_REFERENCE)) == 1


@pytest.mark.parametrize("variant", registry.VARIANTS, ids=lambda v: v.name)
def test_variant_exports_an_app_and_declares_both_scenarios(variant: registry.Variant) -> None:
    assert callable(variant.load())
    assert set(variant.expected) == set(registry.SCENARIOS)
    assert variant.category in registry.CATEGORIES
    assert variant.summary.strip()


def test_there_is_a_negative_control() -> None:
    controls = [v for v in registry.VARIANTS if v.category == registry.CONTROL and v.expected_in(registry.CONCURRENT)]
    assert any("leak" in failure for v in controls for failure in v.expected_in(registry.CONCURRENT))


def test_readme_variant_table_is_generated_from_the_registry() -> None:
    assert readme.current_block() == readme.render_block(), "run `make readme`"
