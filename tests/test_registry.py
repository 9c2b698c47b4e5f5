"""The registry lists every variant module, each loads an app, and the README's table is generated from it."""

from pathlib import Path

import pytest

from apps import registry
from scripts.report import readme

APPS_DIR = Path(registry.__file__).parent


def test_every_module_under_apps_is_registered() -> None:
    modules = {path.stem for path in APPS_DIR.glob("*.py")} - registry.SUPPORT_MODULES
    assert modules == set(registry.BY_NAME), "register the module in apps/registry.py (or remove it)"


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
