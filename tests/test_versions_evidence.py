"""The version matrix judges its evidence (issue 26, cases 6-7): a harness failure is `cannot run: reason`, never a
leak and never correct; --skip-hunt is no verdict; a leak seen anywhere is reported; a timeout marks one stack only."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
from pathlib import Path

import pytest

from apps.harness import registry
from scripts.common import results as resultfiles
from scripts.versions import envs, report, stacks
from scripts.versions import in_stack as inside
from scripts.versions import versions as versions

CLEAN = {path: {} for path in report.INPROCESS}
PLAIN = ("uvloop-httptools", "asyncio-h11")
CONFIGS = [label for plain in PLAIN for label in (plain, f"{plain}-reset")]


def scenarios(leak: int = 0, requests: int = 100) -> dict:
    return {"get": {"requests": requests, "leak": leak, "lost": 0, "other": 0, "failures": {}}}


def hunt_cell(leak: int = 0, requests: int = 100, died: int | None = None) -> dict:
    return {"status": "ran", "scenarios": scenarios(leak, requests), "server_died": died}


def result(failures: dict | None = None, hunt: dict | None = None, inprocess: dict | None = None) -> dict:
    measured = {"status": "ran", "failures": {**CLEAN, **(failures or {})}, "registry_problems": []}
    return {
        "stack": {"name": "s", "python": "3.11", "why": "fixture"},
        "status": "ran",
        "environment": {"packages": {}},
        "inprocess": inprocess or {"variants": {"v": measured}},
        "hunt": hunt if hunt is not None else {"configs": CONFIGS, "runs": {"v": {c: hunt_cell() for c in CONFIGS}}},
    }


def judged(data: dict) -> tuple[str, str]:
    row, why = report.cells_and_reasons(data, "v")
    return report.verdict(row), report.inconclusive_reason(row, why)


def test_the_control_is_correct() -> None:
    assert judged(result())[0] == report.CORRECT


def test_case_6_skip_hunt_is_inconclusive_not_correct(tmp_path: Path) -> None:
    skipped = result(hunt={"status": "skipped", "reason": "--skip-hunt"})
    found, why = judged(skipped)
    assert found == report.INCONCLUSIVE and "leak hunt not run (--skip-hunt)" in why
    lines = "\n".join(report.approach_lines([skipped]) + report.grid_lines([skipped]))
    assert "| `v` | - | - | - | s (leak hunt not run (--skip-hunt)) |" in lines
    assert "inconclusive: leak hunt not run" in lines and "| ok |" not in lines


def test_case_7_a_failed_in_stack_subprocess_is_cannot_run_not_a_leak() -> None:
    failed = result(inprocess={"status": "error", "reason": "exited with 1: pydantic.errors.ConfigError: x"})
    row, _ = report.cells_and_reasons(failed, "v")
    assert all(row[path] == report.CANNOT for path in report.INPROCESS)
    found, why = judged(failed)
    assert found == report.INCONCLUSIVE and "ConfigError" in why


def test_case_7_an_in_process_error_string_is_a_harness_error_not_a_leak() -> None:
    broken = result({"concurrent": "error: AssertionError: boom (x.py:1)"})
    assert report.cells(broken, "v")["concurrent"] == report.CANNOT
    found, why = judged(broken)
    assert found == report.INCONCLUSIVE and "AssertionError: boom" in why


def test_case_7_a_leak_outranks_cannot_run_elsewhere() -> None:
    runs = {c: hunt_cell() for c in CONFIGS} | {"uvloop-httptools": hunt_cell(leak=5)}
    leaking = result({"concurrent": "error: RuntimeError: x"}, hunt={"configs": CONFIGS, "runs": {"v": runs}})
    assert judged(leaking)[0] == report.INCORRECT
    runs["uvloop-httptools-reset"] = {"status": "cannot run", "reason": "did not start"}
    assert judged(leaking)[0] == report.INCORRECT  # the reset runs could not be judged: the default still leaks


def test_case_7_a_server_that_died_is_cannot_run_unless_it_leaked_first() -> None:
    runs = {c: hunt_cell() for c in CONFIGS} | {"asyncio-h11": hunt_cell(died=-9)}
    died = result(hunt={"configs": CONFIGS, "runs": {"v": runs}})
    assert report.cells(died, "v")["asyncio-h11"] == report.CANNOT
    found, why = judged(died)
    assert found == report.INCONCLUSIVE and "died" in why
    runs["asyncio-h11"] = hunt_cell(leak=3, died=-9)
    assert report.cells(died, "v")["asyncio-h11"] == report.LEAK  # a leak seen before the server died still counts
    assert judged(died)[0] == report.WITH_RESET  # (its reset twin ran clean)
    runs["asyncio-h11"] = hunt_cell(requests=0)
    assert judged(died)[0] == report.INCONCLUSIVE  # nothing answered: no verdict


def test_case_7_any_exception_loading_a_variant_is_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    variant = registry.Variant("contextvar_asgi", registry.APPROACH, "fixture")

    def broken() -> None:
        raise AssertionError("an old stack's library asserts at import")

    monkeypatch.setattr(registry, "get", lambda name: variant)
    monkeypatch.setattr(registry.Variant, "load", lambda self: broken())
    found = inside.verdicts("contextvar_asgi", 5)
    assert found["status"] == inside.CANNOT_RUN and "AssertionError" in found["reason"]


def fake_env(tmp_path: Path, script: str) -> envs.Env:
    (tmp_path / "bin").mkdir(parents=True)
    python = tmp_path / "bin" / "python"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    return envs.Env(stacks.STACKS[0], tmp_path)


def test_case_7_the_in_stack_subprocess_failing_or_timing_out_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed = versions.inside(fake_env(tmp_path / "a", 'echo "AssertionError: boom" >&2; exit 1'), 5, ("v",))
    assert crashed["status"] == "error" and "AssertionError: boom" in crashed["reason"]
    monkeypatch.setattr(versions, "INSIDE_TIMEOUT_S", 0.5)
    slow = versions.inside(fake_env(tmp_path / "b", "sleep 5"), 5, ("v",))
    assert slow["status"] == "error" and "longer than" in slow["reason"]


def test_case_7_a_timeout_of_one_stack_marks_it_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = (dataclasses.replace(stacks.STACKS[0], name=name) for name in ("first", "second"))
    monkeypatch.setattr(versions, "BY_NAME", {"first": first, "second": second})
    monkeypatch.setattr(versions, "lock_problems", lambda stack: [])
    monkeypatch.setattr(versions.envs, "ensure", lambda stack: envs.Env(stack, tmp_path))

    def run_stack(env: envs.Env, options: argparse.Namespace, out: Path) -> Path:
        if env.stack.name == "first":
            raise subprocess.TimeoutExpired(["uvicorn", "--help"], 60)
        data = result() | {"stack": versions.stack_record(env.stack)}
        return resultfiles.write_json(out / "second.json", data)

    monkeypatch.setattr(versions, "run_stack", run_stack)
    parser = argparse.ArgumentParser()
    versions.add_arguments(parser)
    args = parser.parse_args(["--stack", "first", "--stack", "second", "--results-dir", str(tmp_path)])
    assert versions.run(args) == 0
    marked = resultfiles.read_json(tmp_path / "versions" / "first.json")
    assert marked["status"] == "cannot run" and "TimeoutExpired" in marked["note"]
    assert resultfiles.read_json(tmp_path / "versions" / "second.json")["status"] == "ran"
    text = (tmp_path / "versions" / report.VERSIONS_MD).read_text()
    assert "cannot run: TimeoutExpired" in text
