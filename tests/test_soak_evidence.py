"""The soak judges its evidence (issue 26, case 8): an unjudged pair is inconclusive, a dead server fails, the
resolution is what the rule can catch, the error allows for autocorrelated samples, a restarted worker is noticed."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import psutil

from scripts.common.results import write_json
from scripts.soak import memory
from scripts.soak.report import soak_section
from scripts.soak.soak import replaced_processes
from scripts.soak.verdict import FAILED, INCONCLUSIVE, PASSED, headline, pair_verdict

MIB = memory.MIB
FLAT = memory.growth([(x * 500.0, 60 * MIB) for x in range(40)], 20_000)


def pair(**changes: object) -> dict:
    base = {"variant": "explicit", "server": {"label": "uvloop-httptools"}, "requests": 20_000, "leak": 0, "lost": 0,
            "other": 0, "error": None, "complete": True, "fds_last": 12, "growth": FLAT}  # fmt: skip
    return base | changes


def summary(*pairs: dict, complete: bool = True) -> dict:
    return {"passed": False, "complete": complete, "budget": 20_000 * len(pairs), "requests": 20_000 * len(pairs),
            "leak": 0, "lost": 0, "other": 0, "plan": [{}] * len(pairs), "pairs": list(pairs),
            "growth_bound_mib_per_100k_requests": 2.0, "growth_warmup_share": 0.2, "growth_min_fit_requests": 5000,
            "elapsed_s": 60.0, "environment": {"cpu": "x", "cpu_count": 2}}  # fmt: skip


def test_case_8_an_unjudged_pair_is_inconclusive_not_passed(tmp_path: Path) -> None:
    short = pair(requests=3000, growth=memory.growth([(0, MIB), (3000, MIB)], 3000))
    assert short["growth"]["judged"] is False
    verdict, why = pair_verdict(short)
    assert verdict == "inconclusive" and "fewer than 5000 requests" in why
    assert pair_verdict(pair()) == ("passed", None)  # the control
    assert headline(summary(pair(), short)) == INCONCLUSIVE and headline(summary(pair())) == PASSED
    write_json(tmp_path / "summary.json", summary(pair(), short))
    text = "\n".join(soak_section(tmp_path))
    assert "**inconclusive**" in text and "inconclusive: growth not judged" in text
    assert "| ok |" in text and text.count("| ok |") == 1  # only the judged pair


def test_case_8_a_pair_whose_server_died_is_a_failure_not_incomplete(tmp_path: Path) -> None:
    died = pair(complete=False, error="the server exited with -9:\nKilled", server_died=True)
    assert pair_verdict(died)[0] == "failed"
    # the soak goes on after a broken pair, so it is complete; interrupted or not, a failure is FAILED
    assert headline(summary(pair(), died)) == FAILED and headline(summary(died, complete=False)) == FAILED
    old = pair(complete=False, error="the server exited with 1:\nTraceback")  # written before `server_died`
    assert pair_verdict(old)[0] == "failed"
    harness = pair(complete=False, error="the generator wrote no record (exit code 1)")
    assert pair_verdict(harness)[0] == "inconclusive" and headline(summary(pair(), harness)) == INCONCLUSIVE
    write_json(tmp_path / "summary.json", summary(pair(), died))
    assert ": **failed**." in "\n".join(soak_section(tmp_path))


def test_case_8_the_resolution_is_what_the_rule_can_catch() -> None:
    # 1M requests keeping 15 B each, quiet samples: below the 2 MiB/100k bound (~21 B/request), so it passes; the
    # resolution must not claim the pair would catch 3 B/request (the noise floor over the fitted requests alone)
    points = [(x * 1000.0, 80 * MIB + x * 1000 * 15 + (x % 2) * 4096) for x in range(1000)]
    found = memory.growth(points, 1_000_000)
    assert found["judged"] and found["passed"] is True
    bound_bytes = memory.BOUND_MIB_PER_100K * MIB / memory.PER_REQUESTS
    assert found["resolution_bytes_per_request"] >= math.ceil(bound_bytes) > 15
    expected = (memory.BOUND_MIB_PER_100K + memory.SIGMAS * found["standard_error_mib"]) * MIB / memory.PER_REQUESTS
    assert found["resolution_bytes_per_request"] == math.ceil(max(expected, memory.NOISE_FLOOR_BYTES / 799_000))
    kept = [(x, y + x * (found["resolution_bytes_per_request"] + 1 - 15)) for x, y in points]
    assert memory.growth(kept, 1_000_000)["passed"] is False  # just above the stated resolution is caught


def independent_error(points: list[tuple[float, float]]) -> float:
    """The least-squares error as if the samples were independent (what the soak used before)."""
    fitted = memory.slope(points) or 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    residual = sum((y - mean_y - fitted * (x - mean_x)) ** 2 for x, y in points)
    return math.sqrt(residual / (len(points) - 2) / spread)


def test_case_8_the_standard_error_allows_for_autocorrelated_samples() -> None:
    # RSS noise that persists from one second to the next (AR(1), phi 0.95): the independent error is far too small
    rng = random.Random(26)
    noise, points = 0.0, []
    for x in range(200):
        noise = 0.95 * noise + rng.gauss(0, 64 * 1024)
        points.append((x * 300.0, 80 * MIB + noise))
    corrected = memory.standard_error(points, memory.slope(points) or 0.0)
    assert corrected is not None and corrected > 2 * independent_error(points)
    # independent noise: never smaller than the independent error
    alternating = [(x * 300.0, 80 * MIB + (x % 2) * MIB) for x in range(100)]
    assert memory.standard_error(alternating, memory.slope(alternating) or 0.0) >= independent_error(alternating)


def test_case_8_a_restarted_worker_is_noticed_and_in_the_sum() -> None:
    assert replaced_processes([10, 11, 12], [{"pids": [10, 11, 12]}, {"pids": [10, 11, 13]}]) == [12]
    assert replaced_processes([10, 11], [{"pids": [10, 11]}]) == []
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = memory.MemorySampler(psutil.Process(os.getpid()))
        sampler.sample()  # a process started after the sampler was made is in the sum
        assert child.pid in sampler.samples[-1]["pids"] and sampler.samples[-1]["processes"] >= 2
    finally:
        child.kill()
        child.wait()


def test_a_committed_soak_is_rejudged_from_its_samples(tmp_path: Path) -> None:
    """`ctxbench soak --rejudge`: today's rule over the samples the pair files kept; a flat pair passes, a pair that
    grows 300 bytes per request fails, and what was stored before is not trusted."""
    from scripts.soak import rejudge

    flat = [{"requests": 1000 * i, "rss": 50 * 2**20} for i in range(60)]
    growing = [{"requests": 1000 * i, "rss": 50 * 2**20 + 300 * 1000 * i} for i in range(60)]
    directory = tmp_path / "soak"
    directory.mkdir()
    entries = []
    for name, series in (("flat", flat), ("growing", growing)):
        stored = {"judged": True, "passed": True}  # the old verdict, not trusted
        pair = {"variant": name, "server": {"label": "x"}, "requests": 59_000, "complete": True, "error": None}
        pair |= {"leak": 0, "lost": 0, "other": 0, "samples": series, "growth": stored}
        (directory / f"{name}.json").write_text(json.dumps(pair))
        entries.append({k: v for k, v in pair.items() if k != "samples"} | {"file": f"{name}.json", "passed": True})
    summary = {"pairs": entries, "complete": True, "requests": 118_000, "budget": 100_000, "passed": True}
    (directory / "summary.json").write_text(json.dumps(summary))
    again = rejudge.rejudge(directory)
    verdicts = {pair["variant"]: pair["verdict"] for pair in again["pairs"]}
    assert verdicts == {"flat": "passed", "growing": "failed"} and again["passed"] is False
    assert json.loads((directory / "summary.json").read_text())["verdict"] == "FAILED"
