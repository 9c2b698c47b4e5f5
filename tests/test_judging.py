"""LOAD.md's judging line: the client sweep's CPU only from this round, always beside the client's instruction count."""

import datetime as dt

from scripts.report import judging

COUNT = {
    "client_judged": 861_986.0,
    "client_not_judged": 830_578.0,
    "difference_pct": 3.78,
    "judge_alone_per_response": 31_482.0,
    "judge_share_of_client_pct": 3.65,
    "counted_utc": dt.datetime(2026, 11, 26, 2, 52, 59, tzinfo=dt.UTC),
}
BENCH = {"instructions": {"run": {"environment": {"created_utc": "2026-11-26T06:24:11+00:00"}}}}


def sweep(last_utc: str) -> dict:
    client = {"validated_us_per_request_median": 567.8, "unvalidated_us_per_request_median": 504.8}
    client |= {"validation_overhead": 0.1248, "runs": {"validated": 3, "unvalidated": 3}}
    return {"client_cpu": client | {"first_utc": "2026-11-22T06:12:00+00:00", "last_utc": last_utc}}


def test_a_sweep_older_than_the_rounds_counts_is_not_shown() -> None:
    (line,) = judging.judging_lines(sweep("2026-11-22T06:13:39+00:00"), BENCH, COUNT)
    assert "not measured this round" in line and "2026-11-26T06:24:11+00:00" in line
    assert "567.8" not in line and "+12" not in line  # the old figure is gone
    assert "3.65% of the judging client" in line and "+3.78%" in line  # the count stays, with its date


def test_a_sweep_of_this_round_is_shown_beside_the_count() -> None:
    (line,) = judging.judging_lines(sweep("2026-11-27T10:00:00+00:00"), BENCH, COUNT)
    assert "567.8 µs judging, 504.8 µs not (+12.5%" in line and "make sweep MODE=client" in line
    assert "3.65% of the judging client" in line


def test_the_round_starts_at_the_later_count() -> None:
    later = COUNT | {"counted_utc": dt.datetime(2026, 11, 28, tzinfo=dt.UTC)}
    assert judging.round_start(BENCH, later) == later["counted_utc"]
    (line,) = judging.judging_lines(sweep("2026-11-27T10:00:00+00:00"), BENCH, later)
    assert "not measured this round" in line


def test_missing_sweep_and_count_say_what_to_run() -> None:
    (line,) = judging.judging_lines(None, None, None)
    assert "not measured (run `make sweep MODE=client`)" in line and "loadtests.client_cost" in line


def test_the_stored_count_reads() -> None:
    count = judging.client_count()
    assert count is not None and count["counted_utc"].tzinfo is not None
    assert 0 < count["judge_share_of_client_pct"] < 100


def test_the_client_count_takes_every_option_the_locustfile_defines() -> None:
    """In a process of its own: importing locust patches the interpreter with gevent (it stalled this suite)."""
    import subprocess
    import sys

    check = (
        "import argparse\n"
        "from loadtests import client_cost, locustfile\n"
        "parser = argparse.ArgumentParser()\n"
        "locustfile.add_options(parser)\n"
        "defined = {a.dest for a in parser._actions if a.dest.startswith('ctx_')}\n"
        "assert defined and defined <= set(vars(client_cost.locust_options())), defined\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
