"""LOAD.md's one statement of what judging responses costs the load client: CPU of this round, beside its counts.

Two measurements say it: the client sweep (`make sweep MODE=client`: CPU per request with and without judging,
interleaved rounds on a real server) and the client's instruction count (loadtests/client_cost.py under callgrind).
A round is the reference runs' instruction counts: the CPU figure is shown only when the newest client sweep is no
older than both the bench's instruction-count run and the client's count; an older sweep is named as such, and its
figure is not shown (a figure from another round beside this round's count said two different things).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyperf

from loadtests import client_cost
from scripts.common import results as resultfiles
from scripts.common.environment import ROOT

COUNT_FILE = resultfiles.BENCH_DIR / "client_judging" / "instructions.json"  # client_cost.py --output
SWEEP = "make sweep MODE=client"
LEAD = "Judging responses, the load client's cost"
COUNT_COMMAND = f"python -m loadtests.client_cost --output {COUNT_FILE.relative_to(ROOT).as_posix()}"


def _utc(text: str | None) -> dt.datetime | None:
    """An ISO time (environment's `created_utc`) or pyperf's local `date` (this machine keeps UTC), as UTC."""
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def client_count(path: Path = COUNT_FILE) -> dict | None:
    """The client's instruction figures (client_cost.summarize) and when they were counted, or None."""
    if not path.exists():
        return None
    suite = pyperf.BenchmarkSuite.load(str(path))
    found = {bench.get_name(): list(bench.get_values()) for bench in suite.get_benchmarks()}
    dates = [bench.get_metadata().get("date") for bench in suite.get_benchmarks()]
    return {**client_cost.summarize(found), "counted_utc": _utc(max(str(d) for d in dates if d))}


def round_start(bench: dict | None, count: dict | None) -> dt.datetime | None:
    """When this round's instruction counts were made: the later of the bench's count run and the client's count."""
    run = (((bench or {}).get("instructions") or {}).get("run") or {}).get("environment") or {}
    moments = [moment for moment in (_utc(run.get("created_utc")), (count or {}).get("counted_utc")) if moment]
    return max(moments, default=None)


def judging_lines(load: dict | None, bench: dict | None, count: dict | None) -> list[str]:
    """The sentence: CPU of this round's client sweep (or why it is not shown), and the instruction count."""
    client = (load or {}).get("client_cpu")
    start = round_start(bench, count)
    swept = _utc((client or {}).get("last_utc"))
    if client and swept and (start is None or swept >= start):
        runs = client["runs"]
        cpu = (
            f"{LEAD}: CPU per request {client['validated_us_per_request_median']:.1f} µs judging, "
            f"{client['unvalidated_us_per_request_median']:.1f} µs not "
            f"({100 * client['validation_overhead']:+.1f}%; `{SWEEP}`, {runs['validated']} + {runs['unvalidated']} "
            f"interleaved runs, {client['first_utc']} to {client['last_utc']})"
        )
    elif client:
        when = client.get("last_utc") or "at a time it did not record"
        cpu = (
            f"{LEAD}: CPU per request not measured this round (the newest client sweep ran {when}, before this "
            f"round's instruction counts of {start.isoformat(timespec='seconds') if start else '?'}; run `{SWEEP}`)"
        )
    else:
        cpu = f"{LEAD}: CPU per request not measured (run `{SWEEP}`)"
    if count is None:
        return [f"{cpu}; instructions not counted (run `{COUNT_COMMAND}`)."]
    return [
        f"{cpu}; instructions (callgrind, {count['counted_utc'].isoformat(timespec='seconds')}): "
        f"{count['client_judged']:,.0f} per request judging, {count['client_not_judged']:,.0f} not "
        f"({count['difference_pct']:+.2f}%), the judge alone {count['judge_alone_per_response']:,.0f} per response, "
        f"{count['judge_share_of_client_pct']:.2f}% of the judging client."
    ]
