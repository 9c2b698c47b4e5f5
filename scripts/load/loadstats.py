"""Summarise every load result under results/load/ into results/load/summary.json, then draw the charts.

summary.json (schema 1), everything derived from the per-run JSON files alone:

- `schema`, `files`: how many result files were read (`runs`: single runs, `side_rounds`).
- `leak_grid`: one row per (variant, scenario, server) over every single run (any mode; warm-up included, since a
  leak there is a leak too): `variant`, `category`, `scenario`, `server` (server configuration label, e.g.
  `uvloop-httptools-reset`, `daphne`), `runs`, `requests`, `failed_requests` (responses with any failure), `leak`,
  `lost`, `other`, `dropped` (counts of failing checkpoint.field values: one response can add several), `failures`
  (name -> count, names as `checkpoint.field:verdict`, or `status:N`, `body:not-json`, `transport:Error`).
- `front_grid`: the leak grid over every front (`front`: `direct`, `nginx`, `haproxy-always`, ... of
  scripts.load.fronts), one row per (variant, scenario, server, front), with `cross_client` (responses that carried a
  value another client connection sent) and `origins` (other_client / same_client / unknown -> responses). Every other
  section, `leak_grid` included, reads only the runs without a front, as before fronts existed.
- `h2`: the HTTP/2 cells under `h2/` (`make sweep MODE=h2`), one row per (variant, target) summed over runs:
  `variant`, `target`, `transport`, `front`, `runs`, `requests`, `leak`, `lost`, `other`, `cross_stream` (responses
  that carried another stream's identity), `http_versions`.
- `clean_cells`: `cells`, `clean` (no failure of any kind), `min_requests` and `median_requests` behind a clean cell,
  `total_requests`, `below_target` (clean cells under scripts.load.bounds.CLEAN_CELL_TARGET validated requests),
  `worst_bound` (the largest 95% bound on the failure share of a clean cell; scripts.load.bounds.clean_bound).
- `server_cost`: the `servers` side-by-side rounds, or null: per (server label, variant) `server_us_per_request_median`,
  `ratio_vs_baseline_median` [`ratio_min`–`ratio_max`] (baseline on the same server), `ratio_vs_default_baseline_median`
  (baseline on uvicorn's default: the price of switching server), `rps_median`, with the A/A ratio.
- `throughput`: closed-loop runs (`latency_model` == "closed-loop", tags quick/full/load), one row per (variant,
  scenario, server, users): `runs`, `rps_median`, `p50_ms_median`, `p99_ms_median`, `server_us_per_request_median`,
  `generator_bound_runs`. These runs ran one after another: their figures are not comparable between variants.
- `cost`: the `variants` side-by-side rounds (`scripts.load.side_by_side`), or null if none: `rounds`, `scenario`,
  `server`, `aa_ratio` {median, min, max} (baseline's second copy / baseline: the noise floor), `variants`: variant ->
  {`server_us_per_request_median`, `min`, `max`, `ratio_vs_baseline_median`, `ratio_min`, `ratio_max`}.
- `latency`: fixed-rate runs (tag "latency"), per variant: `runs`, `rate_per_s`, `p50_ms`, `p90_ms`, `p99_ms`,
  `max_ms` (medians over runs of each run's exact percentile), `model` "fixed-rate".
- `curves`: tag "curves" runs (`make sweep MODE=curves`: baseline and the approaches, closed-loop GETs at
  several user counts, interleaved), or null: `scenario`, `server`, `users` (levels), `rows`, one per (variant, users):
  `variant`, `category`, `users`, `runs`, `rps_median`/`rps_min`/`rps_max`, `p50_ms_median`/`_min`/`_max`,
  `p99_ms_median`/`_min`/`_max` (each run's exact percentile; min-max over rounds), `server_us_per_request_median`,
  `generator_bound_runs` (runs whose generator saturated its core: the point measured the client, not the server).
- `client_cpu`: tag "client" runs: `first_utc`, `last_utc`, `commits`, `validated_us_per_request_median`,
  `unvalidated_us_per_request_median`,
  `validation_overhead` (ratio - 1), `runs` per side; null if none.
- `hunt_time`: where the leak hunt's (tag "quick") time went, from the timing each of its runs recorded (one entry
  per run, not per scenario cell), or null: `direct` and `proxied`, each `runs`, `variants`, `configs`, `seconds` (the
  runs' own time summed: start-ups, load and stop, not the orchestrator's between runs), `median_run_s`, `capped`
  (runs that reached the time bound before their verdicts settled), `first_utc`/`last_utc`; `record`: the last
  whole hunt's own record (`hunt/run.json`: its `runs`, wall `seconds`, `created_utc`); a hunt over part of the plan
  (`ctxbench variant`, a filtered sweep) writes `hunt/partial.json` instead.
- `generator_bound`: result file names whose generator used >= GENERATOR_BOUND_SHARE of its cores.
- `environment`: the newest run's environment (cpu, python, packages, git commit), `commits`: every commit seen.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from scripts.common.results import LOAD_DIR, read_json, write_json
from scripts.load import bounds, hunt
from scripts.load.fronts import DIRECT_FRONT
from scripts.load.sweep import QUICK as HUNT_TAG  # a run's tag is the sweep mode that made it

SUMMARY_NAME = "summary.json"
SIDE_KIND = "side-by-side"


def median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def load_results(directory: Path = LOAD_DIR) -> tuple[list[tuple[str, dict]], list[dict]]:
    runs, side = [], []
    for path in sorted(directory.glob("*.json")):
        if path.name == SUMMARY_NAME:
            continue
        data = read_json(path)
        if data.get("kind") == SIDE_KIND:
            side.append(data)
        elif "run" in data:
            runs.append((path.name, data))
    return runs, side


def front_of(data: dict) -> str:
    """The run's front label; runs written before fronts existed were direct."""
    return data["run"].get("front", {}).get("label", DIRECT_FRONT.label)


H2_DIR = "h2"  # scripts.load.h2 writes its cells there (kind "h2")


def h2_cells(directory: Path) -> list[dict]:
    rows: dict[tuple[str, str], dict] = {}
    for path in sorted((directory / H2_DIR).glob("*.json")):
        data = read_json(path)
        run = data["run"]
        row = rows.setdefault(
            (run["variant"], run["target"]),
            {"variant": run["variant"], "target": run["target"], "transport": run["transport"]}
            | {"front": run["front"]["label"], "server": run["server"]["label"], "runs": 0, "requests": 0}
            | {"leak": 0, "lost": 0, "other": 0, "dropped": 0, "cross_stream": 0, "http_versions": {}},
        )
        row["runs"] += 1
        for field in ("requests", "leak", "lost", "other", "cross_stream"):
            row[field] += data[field]
        row["dropped"] += data.get("dropped", 0)
        for version, count in data["http_versions"].items():
            row["http_versions"][version] = row["http_versions"].get(version, 0) + count
    return [rows[key] for key in sorted(rows)]


def direct_only(runs: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The runs without a front: every section but `front_grid` reads these alone."""
    return [(name, data) for name, data in runs if front_of(data) == DIRECT_FRONT.label]


def leak_grid(runs: list[tuple[str, dict]], by_front: bool = False) -> list[dict]:
    cells: dict[tuple[str, ...], dict] = {}
    for _, data in runs:
        run = data["run"]
        key = (run["variant"], run["scenario"], run["config"]["label"], *((front_of(data),) if by_front else ()))
        cell = cells.setdefault(
            key,
            {"variant": key[0], "category": data["variant_category"], "scenario": key[1], "server": key[2]}
            | ({"front": key[3], "cross_client": 0, "origins": {}} if by_front else {})
            | {"runs": 0, "requests": 0, "failed_requests": 0, "leak": 0, "lost": 0, "other": 0, "dropped": 0}
            | {"failures": {}},
        )
        total = data["failures_total"]
        cell["runs"] += 1
        for field in ("requests", "failed_requests", "leak", "lost", "other"):
            cell[field] += total[field]
        cell["dropped"] += total.get("dropped", 0)  # runs recorded before the startup check have none
        for name, count in total["failures"].items():
            cell["failures"][name] = cell["failures"].get(name, 0) + count
        if by_front:
            cell["cross_client"] += total.get("cross_client", 0)
            for name, count in total.get("origins", {}).items():
                cell["origins"][name] = cell["origins"].get(name, 0) + count
    return [cells[key] for key in sorted(cells)]


def throughput(runs: list[tuple[str, dict]]) -> list[dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for _, data in runs:
        run = data["run"]
        if data["latency_model"] == "closed-loop" and run["validate"] and run["tag"] in ("quick", "full", "load"):
            groups[(run["variant"], run["scenario"], run["config"]["label"], run["users"])].append(data)
    rows = []
    for (variant, scenario, server, users), group in sorted(groups.items()):
        rows.append(
            {"variant": variant, "scenario": scenario, "server": server, "users": users, "runs": len(group)}
            | {
                "rps_median": median([d["rps"] for d in group]),
                "p50_ms_median": median([d["latency_ms"]["p50"] for d in group]),
                "p99_ms_median": median([d["latency_ms"]["p99"] for d in group]),
                "server_us_per_request_median": median([d["cpu"]["server_us_per_request"] for d in group]),
                "generator_bound_runs": sum(d["cpu"]["generator_bound"] for d in group),
            }
        )
    return rows


def _layout(round_: dict) -> str:
    return round_.get("layout", "variants")  # rounds written before server kinds existed compared variants


def cost(side: list[dict]) -> dict | None:
    side = [round_ for round_ in side if _layout(round_) == "variants"]
    if not side:
        return None
    per_variant: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for round_ in side:
        for slot, entry in round_["slots"].items():
            if "#" not in slot and entry["server_us_per_request"] is not None:
                per_variant[entry["variant"]].append((entry["server_us_per_request"], entry["ratio_vs_baseline"]))
    aa = [round_["aa_ratio"] for round_ in side if round_["aa_ratio"] is not None]
    return {
        "rounds": len(side),
        "scenario": side[0]["scenario"],
        "server": side[0]["server"]["label"],
        "users_per_variant": side[0]["users_per_variant"],
        "aa_ratio": {"median": median(aa), "min": min(aa, default=None), "max": max(aa, default=None)},
        "generator_bound_rounds": sum(round_["generator_bound"] for round_ in side),
        "variants": {
            variant: {
                "server_us_per_request_median": median([us for us, _ in values]),
                "min": min(us for us, _ in values),
                "max": max(us for us, _ in values),
                "ratio_vs_baseline_median": median([ratio for _, ratio in values]),
                "ratio_min": min(ratio for _, ratio in values),
                "ratio_max": max(ratio for _, ratio in values),
            }
            for variant, values in sorted(per_variant.items())
        },
    }


def server_cost(side: list[dict]) -> dict | None:
    """Per server label and variant: server CPU µs per request, its ratio to baseline on the same server and to
    baseline on uvicorn's default (what switching costs), from the `servers` side-by-side rounds."""
    side = [round_ for round_ in side if _layout(round_) == "servers"]
    if not side:
        return None
    figures: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for round_ in side:
        for slot, entry in round_["slots"].items():
            if "#" not in slot and entry["server_us_per_request"] is not None:
                figures[(entry["server"]["label"], entry["variant"])].append(entry)
    aa = [round_["aa_ratio"] for round_ in side if round_["aa_ratio"] is not None]
    rows = []
    for (server, variant), entries in sorted(figures.items()):
        same = [e["ratio_vs_baseline"] for e in entries if e["ratio_vs_baseline"] is not None]
        default = [e["ratio_vs_default_baseline"] for e in entries if e["ratio_vs_default_baseline"] is not None]
        rows.append(
            {
                "server": server,
                "kind": entries[0]["server"]["kind"],
                "version": entries[0]["server"]["version"],
                "variant": variant,
                "rounds": len(entries),
                "server_us_per_request_median": median([e["server_us_per_request"] for e in entries]),
                "ratio_vs_baseline_median": median(same),
                "ratio_min": min(same, default=None),
                "ratio_max": max(same, default=None),
                "ratio_vs_default_baseline_median": median(default),
                "rps_median": median([e["rps"] for e in entries]),
            }
        )
    return {
        "rounds": len(side),
        "scenario": side[0]["scenario"],
        "reference_server": side[0]["server"]["label"],
        "users_per_slot": side[0]["users_per_variant"],
        "aa_ratio": {"median": median(aa), "min": min(aa, default=None), "max": max(aa, default=None)},
        "generator_bound_rounds": sum(round_["generator_bound"] for round_ in side),
        "rows": rows,
    }


def clean_cells(grid: list[dict]) -> dict[str, object]:
    """How many requests back the cells where nothing failed: a clean cell is only as strong as its traffic."""
    clean = [cell["requests"] for cell in grid if not cell["leak"] and not cell["lost"] and not cell["other"]]
    return {
        "cells": len(grid),
        "clean": len(clean),
        "below_target": sum(1 for requests in clean if requests < bounds.CLEAN_CELL_TARGET),
        "worst_bound": bounds.clean_bound(min(clean)) if clean else None,
        "min_requests": min(clean, default=None),
        "median_requests": median(clean),
        "total_requests": sum(cell["requests"] for cell in grid),
    }


def latency(runs: list[tuple[str, dict]]) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for _, data in runs:
        if data["run"]["tag"] == "latency":
            groups[data["run"]["variant"]].append(data)
    return {
        variant: {"runs": len(group), "model": "fixed-rate", "rate_per_s": group[0]["run"]["rate_per_s"]}
        | {f"{q}_ms": median([d["latency_ms"][q] for d in group]) for q in ("p50", "p90", "p99", "max")}
        for variant, group in sorted(groups.items())
    }


def curves(runs: list[tuple[str, dict]]) -> dict | None:
    """Throughput and p50/p99 against users for the curves sweep, each point's spread over its rounds."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for _, data in runs:
        if data["run"]["tag"] == "curves" and data["latency_model"] == "closed-loop":
            groups[(data["run"]["variant"], data["run"]["users"])].append(data)
    if not groups:
        return None
    rows = []
    for (variant, users), group in sorted(groups.items()):
        row = {"variant": variant, "category": group[0]["variant_category"], "users": users, "runs": len(group)}
        figures = {"rps": [d["rps"] for d in group]}
        figures |= {f"{q}_ms": [d["latency_ms"][q] for d in group] for q in ("p50", "p99")}
        for name, values in figures.items():
            present = [value for value in values if value is not None]
            row |= {f"{name}_median": median(present), f"{name}_min": min(present, default=None)}
            row[f"{name}_max"] = max(present, default=None)
        row["server_us_per_request_median"] = median([d["cpu"]["server_us_per_request"] for d in group])
        row["generator_bound_runs"] = sum(bool(d["cpu"]["generator_bound"]) for d in group)
        rows.append(row)
    first = next(iter(groups.values()))[0]["run"]
    return {
        "scenario": first["scenario"],
        "server": first["config"]["label"],
        "users": sorted({users for _, users in groups}),
        "rows": rows,
    }


def _commit_of(data: dict) -> str:
    return (data["environment"].get("git") or {}).get("commit") or ""


def client_cpu(runs: list[tuple[str, dict]]) -> dict | None:
    """The client sweep (`make sweep MODE=client`): the generator's CPU per request judging and not, and when it ran
    (a report states it only beside instruction counts no newer than it: scripts/report/judging.py)."""
    sides: dict[bool, list[float | None]] = {True: [], False: []}
    created, commits = [], set()
    client = [data for _, data in runs if data["run"]["tag"] == "client"]
    # Only the newest code's sweep: a sweep of an older commit measured another client (its judge has changed since).
    newest = max(client, key=lambda data: data["environment"]["created_utc"], default=None)
    newest_commit = _commit_of(newest) if newest else None
    for data in client:
        if _commit_of(data) == newest_commit:
            sides[data["run"]["validate"]].append(data["cpu"]["client_us_per_request"])
            created.append(data["environment"]["created_utc"])
            commits.add(_commit_of(data))
    with_check, without = median(sides[True]), median(sides[False])
    if with_check is None or without is None:
        return None
    return {
        "validated_us_per_request_median": with_check,
        "unvalidated_us_per_request_median": without,
        "validation_overhead": with_check / without - 1,
        "runs": {"validated": len(sides[True]), "unvalidated": len(sides[False])},
        "first_utc": min(created),
        "last_utc": max(created),
        "commits": sorted(commits),
    }


def summarize(directory: Path = LOAD_DIR) -> dict:
    """Read every result file, write summary.json atomically next to them, return it."""
    every_run, side = load_results(directory)
    runs = direct_only(every_run)
    grid = leak_grid(runs)
    newest = max(runs, key=lambda item: item[1]["environment"]["created_utc"], default=(None, None))[1]
    summary = {
        "schema": 1,
        "files": {"runs": len(runs), "side_rounds": len(side)},
        "leak_grid": grid,
        "front_grid": leak_grid(every_run, by_front=True),
        "h2": h2_cells(directory),
        "clean_cells": clean_cells(grid),
        "server_cost": server_cost(side),
        "throughput": throughput(runs),
        "cost": cost(side),
        "latency": latency(runs),
        "client_cpu": client_cpu(runs),
        "curves": curves(runs),
        "hunt_time": hunt_time(every_run, directory),
        "generator_bound": sorted(name for name, data in runs if data["cpu"]["generator_bound"]),
        "environment": newest["environment"] if newest else None,
        "commits": sorted({data["environment"]["git"]["commit"] or "" for _, data in runs}),
    }
    write_json(directory / SUMMARY_NAME, summary)
    return summary


def hunt_time(every_run: list[tuple[str, dict]], directory: Path = LOAD_DIR) -> dict | None:
    """Where the leak hunt's time went, the direct grid apart from the runs behind a proxy (see the module doc)."""
    runs: dict[tuple[object, ...], dict] = {}
    for _, data in every_run:
        run = data["run"]
        if run.get("tag") == HUNT_TAG and data.get("timing"):  # a run's scenario cells share its timing: one entry
            runs[(data["window"]["start"], run["variant"], run["config"]["label"], front_of(data))] = data
    if not runs:
        return None

    def part(group: list[dict]) -> dict[str, object]:
        totals = [data["timing"]["total_s"] for data in group]
        stamps = sorted(data["environment"]["created_utc"] for data in group)
        return {
            "runs": len(group),
            "variants": len({data["run"]["variant"] for data in group}),
            "configs": len({data["run"]["config"]["label"] for data in group}),
            "seconds": round(sum(totals), 1),
            "median_run_s": median(totals),
            "capped": sum(not data["timing"]["stopped_early"] for data in group),
            "first_utc": stamps[0] if stamps else None,
            "last_utc": stamps[-1] if stamps else None,
        }

    direct = [data for key, data in runs.items() if key[3] == DIRECT_FRONT.label]
    proxied = [data for key, data in runs.items() if key[3] != DIRECT_FRONT.label]
    record_path = directory / hunt.RECORD
    record = read_json(record_path) if record_path.exists() else None
    return {
        "direct": part(direct),
        "proxied": part(proxied),
        "record": None
        if record is None
        else {
            "runs": record["plan"]["runs"],
            "seconds": record["seconds"],
            "created_utc": record["environment"]["created_utc"],
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-charts", action="store_true")


def check_arguments(args: argparse.Namespace) -> str | None:
    if not LOAD_DIR.is_dir():
        return f"no load results to summarise: {LOAD_DIR} does not exist (run `ctxbench load` or `make sweep` first)"
    return None


def run(args: argparse.Namespace) -> int:
    summary = summarize()
    print(f"summary of {summary['files']} -> {LOAD_DIR / SUMMARY_NAME}")
    if not args.no_charts:
        from scripts.load import charts as loadcharts  # matplotlib only when drawing

        for path in loadcharts.draw(summary):
            print(f"chart {path}")
    return 0
