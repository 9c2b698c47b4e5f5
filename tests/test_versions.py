"""The version matrix: locks agree with the stacks, a missing Python is skipped, the orchestration end to end."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pytest

from apps.harness import registry
from scripts.common import results as resultfiles
from scripts.versions import envs, report, stacks, versions
from scripts.versions import in_stack as inside

STAND_IN = stacks.Stack(
    "stand-in",
    f"{sys.version_info.major}.{sys.version_info.minor}",
    stacks.STACKS[0].pins,
    "The project's own virtualenv standing in for a stack: nothing is installed in CI.",
)


@pytest.mark.parametrize("stack", stacks.STACKS, ids=lambda s: s.name)
def test_every_stack_has_a_lock_that_agrees_with_its_declaration(stack: stacks.Stack) -> None:
    assert stacks.lock_problems(stack) == []


def test_a_stale_lock_is_caught() -> None:
    stack = stacks.BY_NAME["uvicorn-0.38"]
    stale = dataclasses.replace(stack, pins=type(stack.pins)({**stack.pins, "uvicorn": "0.37.0"}))
    problems = stacks.lock_problems(stale)
    assert any("differs from the declaration" in p for p in problems)
    assert any("declares uvicorn==0.37.0, lock has 0.38.0" in p for p in problems)


def test_the_declared_stacks_cover_the_issue() -> None:
    uvicorns = {s.pins["uvicorn"] for s in stacks.STACKS if s.pins["fastapi"] == stacks.FASTAPI}
    assert {"0.38.0", "0.44.0", stacks.UVICORN} <= uvicorns
    assert {"0.95.2", "0.110.0"} <= {s.pins["fastapi"] for s in stacks.STACKS}
    assert {"3.11", "3.12", "3.13"} <= {s.python for s in stacks.STACKS if s.name.startswith("current-")}


def test_a_missing_python_is_skipped_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = dataclasses.replace(stacks.STACKS[0], python="3.99")
    assert stacks.find_python("3.99") is None
    with pytest.raises(envs.Unavailable, match=r"no Python 3\.99"):
        envs.ensure(missing, cache=tmp_path / "cache")
    monkeypatch.setattr(versions, "BY_NAME", {missing.name: missing})
    monkeypatch.setattr(versions, "lock_problems", lambda stack: [])
    parser = argparse.ArgumentParser()
    versions.add_arguments(parser)
    args = parser.parse_args(["--stack", missing.name, "--results-dir", str(tmp_path)])
    assert versions.run(args) == 0
    written = resultfiles.read_json(tmp_path / "versions" / f"{missing.name}.json")
    assert written["status"] == "skipped" and "no Python 3.99" in written["note"]
    assert any("skipped: no Python 3.99" in line for line in report.versions_section(tmp_path))
    assert not (tmp_path / "cache").exists()  # nothing was built


def test_a_variant_an_old_stack_cannot_import_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = registry.Variant("no_such_variant_module", registry.APPROACH, "stands for an API a stack lacks")
    monkeypatch.setattr(registry, "get", lambda name: absent)
    found = inside.verdicts("no_such_variant_module", 10)
    assert found["status"] == inside.CANNOT_RUN and "ModuleNotFoundError" in found["reason"]


def test_the_orchestration_end_to_end_on_a_stand_in_stack(tmp_path: Path) -> None:
    """In-process verdicts, matrix and a short real-server hunt in the project's own venv, then the report."""
    env = envs.Env(STAND_IN, Path(sys.prefix))
    options = argparse.Namespace(
        variant=["contextvar_conditional"], requests=30, duration=1.0, warmup=0.2, skip_hunt=False
    )
    path = versions.run_stack(env, options, tmp_path / "versions")
    result = resultfiles.read_json(path)
    assert result["environment"]["packages"]["fastapi"] == stacks.FASTAPI
    measured = result["inprocess"]["variants"]["contextvar_conditional"]
    assert measured["status"] == "ran" and measured["registry_problems"] == []
    assert result["inprocess"]["matrix"]["status"] == "ran"
    row = report.cells(result, "contextvar_conditional")
    # the set-only design leaks on one connection, in-process and on uvicorn's default; the fresh Context fixes it,
    # and hides what the app set at startup
    assert row["keepalive"] == report.LEAK and row["keepalive_fresh_context"] == report.DROPS
    assert row["uvloop-httptools"] == report.LEAK and row["uvloop-httptools-reset"] == report.DROPS
    assert report.verdict(row) == report.WITH_RESET
    for runs in result["hunt"]["runs"].values():
        assert all(cell["left_behind"] == [] for cell in runs.values() if cell["status"] == "ran")
    written = report.render(tmp_path)
    assert (tmp_path / "charts" / report.CHART_NAME) in written
    section = "\n".join(report.versions_section(tmp_path))
    assert "| `contextvar_conditional` | - | stand-in | - | - |" in section
