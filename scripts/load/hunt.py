"""The leak hunt's execution: runs that stop when every cell's verdict is settled, timed, with a plan estimate."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

from loadtests import scenarios
from scripts.common.environment import describe
from scripts.common.lock import exclusive_run
from scripts.common.results import LOAD_DIR, read_json, write_json
from scripts.common.staged import MERGE, staged_run
from scripts.load import bounded_run, bounds
from scripts.load.fronts import DIRECT_FRONT
from scripts.load.settings import HUNT_RUN_ESTIMATE_S

RECORD = Path("hunt") / "run.json"  # under a folder of results/load/: loadstats reads only its top-level *.json
# a hunt over part of the plan (`ctxbench variant`, a filtered sweep) records here: run.json stays the whole hunt's
PARTIAL_RECORD = Path("hunt") / "partial.json"
HUNT_RUN_JSON = LOAD_DIR / RECORD


def with_pair_targets(specs: list[bounded_run.RunSpec]) -> list[bounded_run.RunSpec]:
    """Each hunt run given its share of bounds.CORRECT_PAIR_TARGET (stop_total) when its cells' own targets do not
    add up to it: an (approach, server kind) pair that stays clean then reaches the pair target over its runs. A kind
    hunted on one configuration only (daphne) needs more per run than uvicorn's many. Every cell keeps its own target
    (stop_at); the cheap cells carry the rest. A run with a failure of any kind needs no share: its pair is not clean
    (loadtests.recorder.Recorder.settled)."""
    runs: dict[tuple[str, str], int] = {}
    for spec in specs:
        key = (spec.variant, spec.config.kind)
        runs[key] = runs.get(key, 0) + 1
    return [
        dataclasses.replace(spec, stop_total=share)
        if spec.stop_at > 0 and (share := pair_share(spec, runs[(spec.variant, spec.config.kind)])) > 0
        else spec
        for spec in specs
    ]


def pair_share(spec: bounded_run.RunSpec, runs_of_pair: int) -> int:
    """The requests one of a pair's `runs_of_pair` runs needs beyond its cells' own targets (0: none)."""
    share = math.ceil(bounds.CORRECT_PAIR_TARGET / runs_of_pair)
    return share if share > spec.stop_at * cells_per_run(spec) else 0


def cells_per_run(spec: bounded_run.RunSpec) -> int:
    return len(scenarios.SCENARIOS) if spec.scenario == scenarios.EACH else 1


def estimate_s(specs: list[bounded_run.RunSpec], per_run_s: float = HUNT_RUN_ESTIMATE_S) -> float:
    """Wall time of a plan: per run, start-ups included; a run stops at its settled verdict or its bound."""
    return len(specs) * per_run_s


def dry_run_lines(specs: list[bounded_run.RunSpec]) -> list[str]:
    lines = [
        f"{s.variant} {s.scenario} {s.config.label} front={s.front.label} u={s.users} at most {s.duration_s}s, "
        f"stop at {s.stop_at} per cell" + (f", {s.stop_total} in all" if s.stop_total else "")
        for s in specs
    ]
    variants = len({s.variant for s in specs})
    configs = len({s.config.label for s in specs})
    proxied = sum(not s.front.is_direct for s in specs)
    lines.append(
        f"{len(specs)} runs ({variants} variants x {configs} configurations, {proxied} of them behind a proxy, every "
        "scenario in each run): "
        f"~{estimate_s(specs) / 60:.1f} min at {HUNT_RUN_ESTIMATE_S:.1f} s per run (settings.HUNT_RUN_ESTIMATE_S)"
    )
    return lines


def previous_files(specs: list[bounded_run.RunSpec], directory: Path = LOAD_DIR) -> list[Path]:
    """Result files of earlier runs of the same tag, variant, configuration and front as `specs` (what they replace)."""
    planned = {(s.tag, s.variant, s.config.label, s.front.label) for s in specs}
    found = []
    for path in sorted(directory.glob("*.json")):
        run = read_json(path).get("run") or {}
        key = (run.get("tag"), run.get("variant"), (run.get("config") or {}).get("label"))
        if (*key, (run.get("front") or {}).get("label", DIRECT_FRONT.label)) in planned:
            found.append(path)
    return found


def execute_all(
    specs: Iterable[bounded_run.RunSpec], dry_run: bool, out: Path = LOAD_DIR, record: Path = HUNT_RUN_JSON
) -> int:
    """Every run under the machine lock (run by run), every cell saved into `out`; the whole hunt's timing to
    `record` (into the staging directory with the cells: it lands only with them)."""
    specs = list(specs)
    if dry_run:
        print("\n".join(dry_run_lines(specs)))
        return 0
    started = time.monotonic()
    errors, timings = [], []
    for done, spec in enumerate(specs, 1):
        try:
            with exclusive_run():
                result = bounded_run.execute(spec)
            timings.append(result["timing"])
            for cell in bounded_run.cells_of(result):
                bounded_run.save(cell, out)
            print(f"[{done:>3}/{len(specs)}] {time.monotonic() - started:6.1f}s {summary_line(result)}", flush=True)
        except RuntimeError as error:  # one broken run must not lose the rest of the hunt
            errors.append(f"{spec.variant} {spec.config.label}: {error}")
            print(f"[{done:>3}/{len(specs)}] ERROR {errors[-1]}", flush=True)
    seconds = time.monotonic() - started
    summary = timing_record(specs, timings, seconds, errors)
    write_json(record, {**summary, "environment": describe(summary["plan"])})
    print(
        f"hunt: {len(specs)} runs in {seconds:.1f}s ({seconds / 60:.1f} min), median run "
        f"{summary['per_run_s']['median']}s, stopped early {summary['stopped_early']}/{len(timings)} -> {record}"
    )
    return 1 if errors else 0


def replace_all(
    specs: Iterable[bounded_run.RunSpec], dry_run: bool, directory: Path = LOAD_DIR, record: Path = RECORD
) -> int:
    """A hunt that supersedes the previous one for its variants and configurations: staged (merge) into `directory`,
    and only once it succeeded are their previous hunt files removed, so the leak grid (a sum over files) holds this
    hunt's counts alone for them; a failed hunt adds nothing and removes nothing. `record`: where its timing goes,
    relative to `directory` (RECORD for the whole hunt, PARTIAL_RECORD for part of it)."""
    specs = list(specs)
    if dry_run or not specs:
        return execute_all(specs, dry_run)
    previous = previous_files(specs, directory)
    with staged_run(directory, mode=MERGE) as stage:
        if status := execute_all(specs, dry_run, stage.dir, stage.dir / record):
            stage.fail(f"had errors (exit code {status}): none of its runs are added")
    if status == 0:
        for path in previous:
            path.unlink(missing_ok=True)
        print(f"hunt: replaced {len(previous)} result files of the previous hunt", flush=True)
    return status


def summary_line(result: dict) -> str:
    timing = result["timing"]
    cells = " ".join(
        f"{c['run']['scenario']}={c['failures_total']['requests']}"
        + (f"(leak {c['failures_total']['leak']})" if c["failures_total"]["leak"] else "")
        for c in bounded_run.cells_of(result)
    )
    return (
        f"{result['run']['variant']:<22} {result['run']['config']['label']:<24} {timing['total_s']:5.2f}s "
        f"(server {timing['server_start_s']:.2f}, users at {timing['until_users_s']}, load {timing['load_s']}, "
        f"stop {timing['stop_s']:.2f}{', early' if timing['stopped_early'] else ''}) {cells}"
    )


def timing_record(specs: list[bounded_run.RunSpec], timings: list[dict], seconds: float, errors: list[str]) -> dict:
    def spread(key: str) -> dict[str, float | None]:
        values = [t[key] for t in timings if t.get(key) is not None]
        if not values:
            return {"median": None, "min": None, "max": None, "sum": None}
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
            "sum": round(sum(values), 1),
        }

    return {
        "plan": {
            "runs": len(specs),
            "variants": sorted({s.variant for s in specs}),
            "configs": sorted({s.config.label for s in specs}),
            "stop_at": specs[0].stop_at if specs else None,
            "stop_totals": sorted({s.stop_total for s in specs if s.stop_total}),  # pairs' shares carried by one run
            "max_duration_s": specs[0].duration_s if specs else None,
        },
        "seconds": round(seconds, 1),
        "per_run_s": spread("total_s"),
        "server_start_s": spread("server_start_s"),
        "until_users_s": spread("until_users_s"),
        "load_s": spread("load_s"),
        "stop_s": spread("stop_s"),
        "stopped_early": sum(1 for t in timings if t["stopped_early"]),
        "errors": errors,
    }
