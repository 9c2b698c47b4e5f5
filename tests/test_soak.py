"""The soak: its plan is the report's per-server verdicts, its memory figures are sound, and a short soak runs clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.common.environment import ROOT
from scripts.common.results import LOAD_DIR, read_json
from scripts.load import servers, verdicts
from scripts.report import decision
from scripts.soak import memory, plan
from scripts.soak.report import soak_section

SHORT_BUDGET = 3000  # a few seconds of traffic: the whole path, not a figure
LOCK_WAIT_S = 280.0  # the soak waits for the machine lock like every run (within pytest-timeout)


def cell(variant: str, server: str, scenario: str, failures: dict[str, int]) -> dict:
    leak = sum(n for name, n in failures.items() if name.endswith(":leak"))
    lost = sum(n for name, n in failures.items() if name.endswith(":lost"))
    return {"variant": variant, "server": server, "scenario": scenario, "failures": failures, "leak": leak,
            "lost": lost, "requests": 100, "category": "x"}  # fmt: skip


GRID = {
    "leak_grid": [
        cell("contextvar_asgi", "uvloop-httptools", "pipeline", {"entry.request_id:leak": 3}),
        cell("contextvar_asgi", "uvloop-httptools-reset", "pipeline", {}),
        cell("contextvar_asgi", "gunicorn-uvicorn", "pipeline", {"entry.request_id:leak": 1}),
        cell("contextvar_asgi", "gunicorn-uvicorn-reset", "pipeline", {}),
        cell("contextvar_asgi", "daphne", "pipeline", {}),
        cell("explicit", "uvloop-httptools", "pipeline", {}),
        cell("explicit", "uvloop-httptools-reset", "pipeline", {}),
        cell("contextvar_conditional", "granian", "pipeline", {"middleware.user_id:leak": 2}),
        cell("baseline", "daphne", "get", {"middleware.user_id:lost": 5}),
        cell("global_state", "hypercorn-asyncio", "get", {}),  # a control is never soaked, even when clean
    ]
}


@pytest.mark.parametrize("source", ["synthetic", "committed"])
def test_the_shared_rule_is_the_reports_rule(source: str) -> None:
    path = LOAD_DIR / "summary.json"
    load = GRID if source == "synthetic" else (read_json(path) if path.exists() else GRID)
    ours, report = verdicts.per_server(load), decision.per_server(load)
    assert {key: (v.verdict, v.setting, v.leak, v.lost) for key, v in ours.items()} == {
        key: (v.verdict, v.setting, v.leak, v.lost) for key, v in report.items()
    }


def test_the_soak_runs_what_the_report_calls_correct_with_the_fix_where_needed() -> None:
    pairs = [(variant, config.label) for variant, config in verdicts.correct_pairs(GRID)]
    assert pairs == [
        ("contextvar_asgi", "daphne"),
        ("contextvar_asgi", "gunicorn-uvicorn-reset"),
        ("contextvar_asgi", "uvloop-httptools-reset"),
        ("explicit", "uvloop-httptools"),
    ]


def test_budget_shares_and_explicit_pairs() -> None:
    assert plan.share(1_000_000, 16) == 62_500 and plan.share(1_000_000, 100) == 10_000
    assert plan.share(1_000, 3) == 334 and plan.share(1, 2) == 1
    assert plan.parse_pair("explicit:daphne") == ("explicit", servers.DAPHNE)
    with pytest.raises(ValueError):
        plan.parse_pair("explicit")


def test_growth_is_the_slope_after_the_warm_up_and_judged_only_on_enough_requests() -> None:
    mib = memory.MIB
    warm = [(x * 1000.0, 50 * mib + (10 * mib if x < 20 else 0) * x / 20) for x in range(0, 20)]
    leaking = warm + [(x * 1000.0, 60 * mib + (x - 20) * 1000 * 100) for x in range(20, 100)]  # 100 B per request
    found = memory.growth(leaking, 100_000)
    assert found["judged"] and not found["passed"]
    assert found["mib_per_100k_requests"] == pytest.approx(100 * 100_000 / mib)
    flat = warm + [(x * 1000.0, 60 * mib + (x % 3) * 4096) for x in range(20, 100)]
    assert memory.growth(flat, 100_000)["passed"] is True
    # noisy and short: a slope above the bound that the noise explains is not a failure; far above it is
    noisy = [(x * 500.0, 60 * mib + (mib if x % 2 else 0) + x * 500 * 25) for x in range(40)]  # 2.4 MiB/100k
    found = memory.growth(noisy, 20_000)
    assert found["judged"] and found["mib_per_100k_requests"] > memory.BOUND_MIB_PER_100K and found["passed"]
    retained = [(x, y + x * 1000) for x, y in noisy]  # 1 KB kept per request: ~95 MiB per 100k
    assert memory.growth(retained, 20_000)["passed"] is False
    # a healthy server at the soak's size: RSS rising ~1 MiB by allocator steps through most of the run, then flat (as
    # explicit on daphne did); significant by least squares, but below the noise floor, so not a failure
    stepped = [(x * 300.0, 80 * mib + min(x, 25) * mib / 25 + (x % 2) * 8192) for x in range(34)]
    step = memory.growth(stepped, 10_000)
    assert step["judged"] and step["mib_per_100k_requests"] - 3 * step["standard_error_mib"] > memory.BOUND_MIB_PER_100K
    assert step["passed"] is True and step["resolution_bytes_per_request"] < 300
    kept = [(x, y + x * 300) for x, y in stepped]  # a context kept per request (300 B) at the same size is caught
    assert memory.growth(kept, 10_000)["passed"] is False
    short = memory.growth(flat[:5], 5_000)
    assert short["judged"] is False and short["passed"] is None and short["why_not_judged"]
    assert memory.requests_at(5.0, 100, 50, (0.0, 10.0)) == 125 and memory.requests_at(99.0, 100, 50, (0, 10)) == 150


def summary(**changes: object) -> dict:
    pair = {"variant": "explicit", "server": {"label": "uvloop-httptools"}, "requests": 3100, "leak": 0, "lost": 0,
            "other": 0, "passed": True, "error": None, "fds_last": 12, "complete": True,
            "growth": memory.growth([(x * 500.0, memory.MIB) for x in range(40)], 20_000)}  # fmt: skip
    base = {"passed": True, "complete": True, "budget": 3000, "requests": 3100, "leak": 0, "lost": 0, "other": 0,
            "plan": [{}], "pairs": [pair], "growth_bound_mib_per_100k_requests": 2.0, "growth_warmup_share": 0.2,
            "growth_min_fit_requests": 5000, "elapsed_s": 60.0,
            "environment": {"cpu": "x", "cpu_count": 2}}  # fmt: skip
    return base | changes


def test_the_report_section_says_passed_failed_or_incomplete(tmp_path: Path) -> None:
    assert soak_section(tmp_path) == []
    (tmp_path / "summary.json").write_text(json.dumps(summary()))
    text = "\n".join(soak_section(tmp_path))
    assert "## Soak" in text and ": passed." in text and "| `explicit` | uvloop-httptools | 3,100 |" in text
    (tmp_path / "summary.json").write_text(json.dumps(summary(passed=False, complete=False)))
    assert "**incomplete**" in "\n".join(soak_section(tmp_path))


def test_a_follow_up_soak_is_shown_under_the_soak(tmp_path: Path) -> None:
    soak, followup = tmp_path / "soak", tmp_path / "soak_followup"
    soak.mkdir()
    failing = summary(passed=False)
    failing["pairs"] = [failing["pairs"][0] | {"passed": False, "leak": 2}]
    (soak / "summary.json").write_text(json.dumps(failing))
    assert "Follow-up" not in "\n".join(soak_section(soak, followup))  # none yet
    followup.mkdir()
    (followup / "summary.json").write_text(json.dumps(summary()))
    text = "\n".join(soak_section(soak, followup))
    assert "**failed**" in text and "Follow-up (`results/soak_followup/`)" in text
    assert "- `explicit` on uvloop-httptools, alone: 3,100 requests" in text and "): passed; commit" in text


def test_a_short_soak_runs_clean_and_writes_its_results(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "scripts.cli", "soak", "--requests", str(SHORT_BUDGET), "--segment", "3"]
    command += ["--pair", "contextvar_snapshot:uvloop-httptools", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=LOCK_WAIT_S)
    # one 3 s segment holds too few memory samples to judge growth: clean traffic, but no memory verdict -> not PASSED
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[soak] INCONCLUSIVE" in done.stdout and "req/s" in done.stdout and "ETA" in done.stdout
    result = read_json(tmp_path / "summary.json")
    assert result["complete"] and not result["passed"] and result["requests"] >= SHORT_BUDGET
    assert result["verdict"] == "INCONCLUSIVE" and result["pairs"][0]["verdict"] == "inconclusive"
    assert "growth not judged" in result["pairs"][0]["why"]
    assert (result["leak"], result["lost"], result["other"]) == (0, 0, 0)
    pair = read_json(tmp_path / "contextvar_snapshot--uvloop-httptools.json")
    assert set(pair["by_scenario"]) == {"get", "post", "stream", "mix", "pipeline"}  # every scenario, mixed
    assert len(pair["samples"]) >= 3 and all(sample["rss"] > 0 for sample in pair["samples"])
    assert pair["samples"][-1]["requests"] == pair["requests"]
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left: every write is a rename"
