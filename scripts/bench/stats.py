"""Read the microbenchmarks' pyperf JSON and write results/bench/summary.json: costs, spread, verdicts, environment.

Inputs (written by `scripts.bench.bench`, one pyperf file per series, so `pyperf compare_to` pairs benchmarks by name):
`app_<variant>.json` (benchmarks `app_get`, `app_post`), `app_baseline_aa.json` (baseline timed a second time, in
the same interleaved rounds: the A/A control), `depth_pure_asgi.json` and `depth_basehttp.json` (`depth_0`, `depth_1`,
`depth_3`, `depth_5`), `primitives.json`, and `run.json` (the mode and parameters of the run, if present).

Every pyperf value is CPU seconds per request (or per operation) of one worker process; a *run* is one worker.

summary.json schema (all times are medians over every value of every run unless named otherwise):

    schema: 1
    environment: run.json's `environment`, recorded when the run started (scripts.common.environment.describe, with the
        run's parameters: mode, loops, rounds, ...); describe(parameters) now, for older files without one
    timer: the timer the workers recorded (pyperf metadata `timer`), e.g. "time.process_time"
    significance: {min_effect_pct, z, rule}: how a verdict is reached (see below)
    apps: list, one per variant x method (method "get" or "post"):
        variant, category, library, method, series ("main"), runs, values,
        median_us, mean_us, p25_us, p75_us, stdev_pct (stdev of all values, % of mean), iqr_pct (% of median),
        run_means_us (one mean per worker), apps_proven (the app name every worker reported, from the response),
        vs_baseline: comparison against baseline's same method (absent for baseline itself; null for a variant timed
            in a run of its own, `--variant`, whose `run` is "own": baseline's file is another run's), see "comparison"
    aa: list, one per method: comparison of the A/A copy of baseline against baseline (must read "not significant")
    targets: list of comparisons named by the issue: contextvar_asgi against baseline, starlette_context and
        asgi_correlation_id, per method
    fix_cost: what the fix (registry tag "fix") costs over the approach it fixes ("fix_reference"): subject,
        reference, cpu (paired comparisons per method, from the full run's blocks), instructions (count comparisons
        per method, threshold the A/A and the repeat spreads), one_layer_instructions (a pure ASGI
        middleware layer: the depth slope)
    primitives: list: name, median_ns, mean_ns, stdev_pct, iqr_pct, runs, values, net_ns (median minus empty_loop)
    depth: list, one per kind ("pure_asgi", "basehttp") x depth: kind, depth, median_us, p25_us, p75_us, stdev_pct,
        runs, added_us (over depth 0 of the same kind), paired_vs_depth_0 (a paired comparison, depth > 0); and
        depth_per_layer_us / depth_per_layer_us_paired: {kind: least-squares slope of the cost over depth}
    paired (in apps rows as paired_vs_baseline, in aa and targets with design "paired"): from paired.json
        (microbench/bm_paired.py), every app timed in turn within short blocks of one process
    comparison (object): design ("independent": the pyperf files of two apps; "paired": block by block), subject,
        reference, method, added_us, added_pct (of the reference), ratio (subject / reference), noise_pct,
        threshold_pct, verdict ("slower", "faster" or "not significant"); paired ones add blocks, ratio_sd_pct and
        reference_us (the reference's median in the paired blocks).
        independent: added = difference of medians; noise_pct = spread of ONE difference of worker means,
        sqrt(sd_subject^2 + sd_reference^2) over the reference mean (a standard deviation, not an error: see below).
        paired: ratio = median over blocks of subject / reference in the same block; noise_pct = standard error of
        that median, MEDIAN_SE_FACTOR * sd(ratios) / sqrt(blocks).

    instructions: null, or the instruction counts (microbench/bm_instructions.py, `instructions_<app>.json`, callgrind
        Ir per request; `run_instructions.json` holds their run): counter, leaves_out (what counts do not see),
        run {mode, instruction_requests, instruction_blocks, instruction_processes, timed_seconds, environment},
        apps: list per variant x method: variant, category, method, instructions (median per request), min, max,
            spread_pct ((max - min) / median over every block of every process: the repeatability),
            process_spread_pct (the same over process means), runs, values, cpu_median_us and cpu_paired_added_pct
            (CPU time beside the count, from `apps`), run ("reference": the run of every app; "own": a run of
            some variants, `--variant`, whose file holds that run's baseline and A/A), vs_baseline (a count
            comparison, with the baseline and A/A of the variant's own run when it has one);
        aa: count comparison of baseline measured in a callgrind process of its own against baseline, per method;
        aa_max_abs_pct, repeatability_max_spread_pct (largest spread_pct of any app or depth row);
        targets: contextvar_asgi against TARGET_REFERENCES, per method; fix: FIX_SUBJECT against FIX_REFERENCE
            (both only between counts of the reference run: a count of a run of its own is compared with nothing
            else);
        depth: kind, depth, instructions, spread_pct, ..., added (over depth 0); depth_per_layer: {kind: slope}.
        attribution: null, or where the added instructions go (microbench/bm_attribution.py, `attribution_<app>.json`;
            the table: microbench/attribution.py; the sums: scripts/bench/attribution.py): method, components,
            descriptions, rows per variant x method: variant, method, run, instrumented_total,
            wrapper_events_per_request, absolute {component: instructions per request}; for a variant also
            components {component: added over baseline}, attributed (their sum), measured (the count's
            vs_baseline.added), residual (measured - attributed), residual_pct_of_measured, residual_pct_of_request,
            largest; and max_abs_residual, max_abs_residual_pct_of_request.
        count comparison: subject, reference, method, added (instructions per request), added_pct, threshold_pct
        (the largest of |A/A %| and both sides' spread_pct), verdict ("more instructions", "fewer instructions",
        "not resolved").

Significance: a difference is called only when |added_pct| reaches threshold_pct = max(MIN_EFFECT_PCT, Z * noise_pct);
otherwise it is "not significant" and must not be ranked. Why two noise terms: this VM's host switches the vCPU
between speed regimes lasting seconds (a plain Python loop runs at 35 or 60 ns per iteration, in CPU time too), so
workers are not independent draws: a handful of them can fall mostly in one regime, and a standard error over them
(tried first) called a 24% A/A difference significant. Unpaired designs therefore get the spread of a single worker;
the paired design cancels the regime within each block, and its A/A is the check that the rule holds.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pyperf

from apps.harness import registry
from microbench import attribution as attribution_table
from microbench.bm_instructions import same_run_name
from scripts.bench import attribution
from scripts.common.environment import describe
from scripts.common.results import BENCH_DIR, read_json, write_json

SCHEMA = 1
MIN_EFFECT_PCT = 2.0  # below this share of the reference, a difference is not called (pyperf's t-test called 1% A/A)
Z = 2.0  # and it must exceed Z times the comparison's noise_pct (about 95% two-sided for normal noise)
SIGNIFICANCE_RULE = (
    "significant iff |added_pct| >= max(min_effect_pct, z * noise_pct); noise_pct: standard error of the median "
    "block ratio (paired), spread of one difference of worker means (independent)"
)
BASELINE = registry.reference()
MAIN_SERIES, AA_SERIES = "main", "aa"
METHODS = ("get", "post")
(TARGET_SUBJECT,) = registry.tagged(registry.COST_TARGET)
TARGET_REFERENCES = registry.tagged(registry.COST_TARGET_REFERENCE)
(FIX_SUBJECT,) = registry.tagged(registry.FIX)  # the fix that needs no server setting ...
(FIX_REFERENCE,) = registry.tagged(registry.FIX_REFERENCE)  # ... and the approach it fixes
DEPTH_KINDS = ("pure_asgi", "basehttp")
EMPTY_LOOP = "empty_loop"
SUMMARY_NAME = "summary.json"
PAIRED_NAME = "paired.json"
VARIANT_PAIRED_PREFIX = "paired-"  # paired-<variant>.json: one variant and baseline, measured alone
AA_APP = f"{BASELINE}_{AA_SERIES}"  # baseline's second copy in the paired blocks
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)  # standard error of a median over a mean's, for near-normal data
RUN_NAME = "run.json"
INSTRUCTIONS_LEAVE_OUT = (
    "cache and TLB misses, branch mispredictions, thread hand-offs and wake-ups, waiting, and everything a real "
    "server adds (sockets, HTTP parsing): an instruction is not a unit of time, CPU time stays the second figure"
)
INSTRUCTIONS_RUN_NAME = "run_instructions.json"  # parameters of the last `make bench MODE=instructions`
INSTRUCTIONS_PREFIX = "instructions_"  # microbench/bm_instructions.py's files: counts, not times
COUNT_PREFIXES = (INSTRUCTIONS_PREFIX, attribution_table.FILE_PREFIX)  # ... and bm_attribution.py's: no timer in either
US, NS = 1e6, 1e9


class WrongApp(AssertionError):
    """A worker's metadata says it timed another app than its file claims: the result must not be used."""


def app_path(results_dir: Path, variant: str, series: str = MAIN_SERIES) -> Path:
    suffix = "" if series == MAIN_SERIES else f"_{series}"
    return results_dir / f"app_{variant}{suffix}.json"


def depth_path(results_dir: Path, kind: str) -> Path:
    return results_dir / f"depth_{kind}.json"


def primitives_path(results_dir: Path) -> Path:
    return results_dir / "primitives.json"


def paired_path(results_dir: Path) -> Path:
    return results_dir / PAIRED_NAME


def paired_name(method: str, app: str) -> str:
    return f"paired_{method}_{app}"  # as microbench/bm_paired.py names them


def run_means(bench: pyperf.Benchmark) -> list[float]:
    return [statistics.fmean(run.values) for run in bench.get_runs() if run.values]


def describe_bench(bench: pyperf.Benchmark, scale: float, unit: str) -> dict[str, object]:
    """Central value and spread of one benchmark, in `unit` (us or ns)."""
    median, mean = bench.median(), bench.mean()
    stdev = bench.stdev() if bench.get_nvalue() > 1 else 0.0
    p25, p75 = bench.percentile(25), bench.percentile(75)
    return {
        f"median_{unit}": median * scale,
        f"mean_{unit}": mean * scale,
        f"p25_{unit}": p25 * scale,
        f"p75_{unit}": p75 * scale,
        "stdev_pct": 100 * stdev / mean,
        "iqr_pct": 100 * (p75 - p25) / median,
        "runs": len(run_means(bench)),
        "values": bench.get_nvalue(),
    }


NOT_SIGNIFICANT = "not significant"  # a difference inside the threshold: never ranked, and charts mark it


def verdict_of(added_pct: float, noise_pct: float) -> tuple[str, float]:
    """The documented rule: (verdict, threshold_pct)."""
    threshold = max(MIN_EFFECT_PCT, Z * noise_pct)
    if abs(added_pct) < threshold:
        return NOT_SIGNIFICANT, threshold
    return ("slower" if added_pct > 0 else "faster"), threshold


def compare(subject: pyperf.Benchmark, reference: pyperf.Benchmark, names: tuple[str, str], method: str) -> dict:
    """Subject against reference with the documented threshold (see the module docstring)."""
    ref_median = reference.median()
    added = subject.median() - ref_median
    added_pct = 100 * added / ref_median
    subject_means, reference_means = run_means(subject), run_means(reference)
    if len(subject_means) > 1 and len(reference_means) > 1:
        spread = math.sqrt(statistics.variance(subject_means) + statistics.variance(reference_means))
        noise_pct = 100 * spread / statistics.fmean(reference_means)
    else:
        noise_pct = math.inf  # one worker per side: no evidence about the spread between workers
    verdict, threshold = verdict_of(added_pct, noise_pct)
    return {
        "design": "independent",
        "subject": names[0],
        "reference": names[1],
        "method": method,
        "added_us": added * US,
        "added_pct": added_pct,
        "ratio": subject.median() / ref_median,
        "noise_pct": noise_pct if math.isfinite(noise_pct) else None,
        "threshold_pct": threshold if math.isfinite(threshold) else None,
        "verdict": verdict,
    }


def proven_apps(bench: pyperf.Benchmark, expected: str) -> list[str]:
    """The app each worker reported timing (from its response); raise WrongApp unless all are `expected`."""
    seen = sorted({str(run.get_metadata().get("ctxbench_app")) for run in bench.get_runs() if run.values})
    if seen != [expected]:
        raise WrongApp(f"{bench.get_name()}: expected every worker to time {expected!r}, metadata says {seen}")
    return seen


def load_apps(results_dir: Path) -> dict[tuple[str, str, str], pyperf.Benchmark]:
    """(variant, series, method) -> benchmark, for every app file present, each worker's app checked."""
    found = {}
    for variant in registry.VARIANTS:
        for series in (MAIN_SERIES, AA_SERIES):
            path = app_path(results_dir, variant.name, series)
            if not path.exists():
                continue
            suite = pyperf.BenchmarkSuite.load(str(path))
            for method in METHODS:
                bench = suite.get_benchmark(f"app_{method}")
                proven_apps(bench, variant.name)
                found[(variant.name, series, method)] = bench
    return found


def summarize_apps(apps: dict[tuple[str, str, str], pyperf.Benchmark]) -> tuple[list, list, list]:
    rows, aa, targets = [], [], []
    for (name, series, method), bench in apps.items():
        if series != MAIN_SERIES:
            continue
        variant = registry.get(name)
        row = {"variant": name, "category": variant.category, "library": variant.library, "method": method}
        row |= {"series": series, **describe_bench(bench, US, "us"), "apps_proven": [name]}
        row["run_means_us"] = [mean * US for mean in run_means(bench)]
        reference = apps.get((BASELINE, MAIN_SERIES, method))
        if reference is not None and name != BASELINE:
            row["vs_baseline"] = compare(bench, reference, (name, BASELINE), method)
        rows.append(row)
    for method in METHODS:
        main, copy = apps.get((BASELINE, MAIN_SERIES, method)), apps.get((BASELINE, AA_SERIES, method))
        if main is not None and copy is not None:
            aa.append(compare(copy, main, (f"{BASELINE} ({AA_SERIES})", BASELINE), method))
        subject = apps.get((TARGET_SUBJECT, MAIN_SERIES, method))
        for reference_name in TARGET_REFERENCES:
            reference = apps.get((reference_name, MAIN_SERIES, method))
            if subject is not None and reference is not None:
                targets.append(compare(subject, reference, (TARGET_SUBJECT, reference_name), method))
    return rows, aa, targets


def summarize_primitives(results_dir: Path) -> list[dict]:
    path = primitives_path(results_dir)
    if not path.exists():
        return []
    suite = pyperf.BenchmarkSuite.load(str(path))
    names = suite.get_benchmark_names()
    empty = suite.get_benchmark(EMPTY_LOOP).median() if EMPTY_LOOP in names else 0.0
    rows = []
    for bench in suite.get_benchmarks():
        row = {"name": bench.get_name(), **describe_bench(bench, NS, "ns")}
        row["net_ns"] = (bench.median() - empty) * NS if bench.get_name() != EMPTY_LOOP else None
        rows.append(row)
    return rows


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope: the cost of one more layer."""
    if len({x for x, _ in points}) < 2:
        return None
    mean_x, mean_y = statistics.fmean(x for x, _ in points), statistics.fmean(y for _, y in points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return num / sum((x - mean_x) ** 2 for x, _ in points)


def summarize_depth(results_dir: Path) -> tuple[list[dict], dict[str, float | None]]:
    rows, per_layer = [], {}
    for kind in DEPTH_KINDS:
        path = depth_path(results_dir, kind)
        if not path.exists():
            continue
        suite = pyperf.BenchmarkSuite.load(str(path))
        benches = {int(bench.get_name().removeprefix("depth_")): bench for bench in suite.get_benchmarks()}
        floor = benches[min(benches)].median()
        for depth, bench in sorted(benches.items()):
            row = {"kind": kind, "depth": depth, **describe_bench(bench, US, "us")}
            rows.append(row | {"added_us": (bench.median() - floor) * US})
        per_layer[kind] = slope([(depth, bench.median() * US) for depth, bench in benches.items()])
    return rows, per_layer


def depth_app(kind: str, depth: int) -> str:
    return f"depth-{kind}-{depth}"  # microbench/bm_depth.py's app title, the paired file's name for it


def add_paired_depth(suite: pyperf.BenchmarkSuite, rows: list[dict]) -> dict[str, float | None]:
    """Add each depth row's paired comparison with depth 0 of its kind; return the paired µs per layer by kind."""
    names = set(suite.get_benchmark_names())
    per_layer: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        subject, floor = depth_app(row["kind"], row["depth"]), depth_app(row["kind"], 0)
        if paired_name("get", subject) not in names or row["depth"] == 0:
            continue
        row["paired_vs_depth_0"] = paired_compare(suite, "get", subject, floor)
        per_layer.setdefault(row["kind"], [(0, 0.0)]).append((row["depth"], row["paired_vs_depth_0"]["added_us"]))
    return {kind: slope(points) for kind, points in per_layer.items()}


def block_ratios(suite: pyperf.BenchmarkSuite, method: str, subject: str, reference: str) -> list[float]:
    """subject / reference for every block: value i of two runs of the same process was measured in the same block."""
    subject_runs = suite.get_benchmark(paired_name(method, subject)).get_runs()
    reference_runs = suite.get_benchmark(paired_name(method, reference)).get_runs()
    ratios = []
    for subject_run, reference_run in zip(subject_runs, reference_runs, strict=True):
        seeds = {run.get_metadata().get("ctxbench_seed") for run in (subject_run, reference_run)}
        if len(seeds) != 1 or len(subject_run.values) != len(reference_run.values):
            raise ValueError(f"{paired_name(method, subject)}: runs do not pair with {reference}")
        ratios += [s / r for s, r in zip(subject_run.values, reference_run.values, strict=True)]
    return ratios


def paired_compare(suite: pyperf.BenchmarkSuite, method: str, subject: str, reference: str) -> dict:
    """Median of the per-block ratios, with the same verdict rule; se = MEDIAN_SE_FACTOR * sd / sqrt(blocks)."""
    ratios = block_ratios(suite, method, subject, reference)
    ratio = statistics.median(ratios)
    spread = statistics.stdev(ratios) if len(ratios) > 1 else math.inf
    noise_pct = 100 * MEDIAN_SE_FACTOR * spread / math.sqrt(len(ratios))
    verdict, threshold = verdict_of(100 * (ratio - 1), noise_pct)
    reference_us = suite.get_benchmark(paired_name(method, reference)).median() * US
    return {
        "design": "paired",
        "subject": subject,
        "reference": reference,
        "method": method,
        "blocks": len(ratios),
        "ratio": ratio,
        "added_pct": 100 * (ratio - 1),
        "added_us": (ratio - 1) * reference_us,
        "reference_us": reference_us,
        "ratio_sd_pct": 100 * spread if math.isfinite(spread) else None,
        "noise_pct": noise_pct if math.isfinite(noise_pct) else None,
        "threshold_pct": threshold if math.isfinite(threshold) else None,
        "verdict": verdict,
    }


def variant_paired_path(results_dir: Path, variant: str) -> Path:
    """One variant's own paired blocks with baseline (`ctxbench variant`): they pair only with that run's baseline."""
    return results_dir / f"{VARIANT_PAIRED_PREFIX}{variant}.json"


def load_variant_paired(results_dir: Path) -> dict[str, pyperf.BenchmarkSuite]:
    """variant -> its own paired suite, for variants measured alone after the full run."""
    prefix = VARIANT_PAIRED_PREFIX
    return {path.stem[len(prefix) :]: load_paired(path) for path in sorted(results_dir.glob(f"{prefix}*.json"))}


def load_paired(path: Path) -> pyperf.BenchmarkSuite | None:
    """A paired suite, every worker's app checked; None when the run had no paired job."""
    if path.is_dir():
        path = paired_path(path)
    if not path.exists():
        return None
    suite = pyperf.BenchmarkSuite.load(str(path))
    for bench in suite.get_benchmarks():
        app = bench.get_name().split("_", 2)[2]  # a variant, baseline's A/A copy, or a depth app's title
        proven_apps(bench, BASELINE if app == AA_APP else app)
    return suite


def timer_of(results_dir: Path) -> str | None:
    timers = set()
    for path in sorted(results_dir.glob("*.json")):
        if path.name in (SUMMARY_NAME, RUN_NAME, INSTRUCTIONS_RUN_NAME) or path.name.startswith(COUNT_PREFIXES):
            continue
        for bench in pyperf.BenchmarkSuite.load(str(path)).get_benchmarks():
            timers.add(str(bench.get_metadata().get("timer")))
    return ", ".join(sorted(timers)) or None


def instruction_values(bench: pyperf.Benchmark) -> list[float]:
    return [value for run in bench.get_runs() for value in run.values]


def describe_counts(bench: pyperf.Benchmark) -> dict[str, object]:
    """Median instructions per request and how far apart its repeated values lie (every block of every process)."""
    values = instruction_values(bench)
    middle = statistics.median(values)
    means = run_means(bench)
    return {
        "instructions": middle,
        "min": min(values),
        "max": max(values),
        "spread_pct": 100 * (max(values) - min(values)) / middle,
        "process_spread_pct": 100 * (max(means) - min(means)) / middle if means else None,
        "runs": len(means),
        "values": len(values),
    }


def count_verdict(added_pct: float, threshold_pct: float) -> str:
    """A count difference is resolved when it exceeds both the A/A difference and the repeatability spreads."""
    if abs(added_pct) <= threshold_pct:
        return "not resolved"
    return "more instructions" if added_pct > 0 else "fewer instructions"


def compare_counts(subject: dict, reference: dict, names: tuple[str, str], method: str, aa_pct: float) -> dict:
    added = subject["instructions"] - reference["instructions"]
    added_pct = 100 * added / reference["instructions"]
    threshold = max(abs(aa_pct), subject["spread_pct"], reference["spread_pct"])
    return {
        "subject": names[0],
        "reference": names[1],
        "method": method,
        "added": added,
        "added_pct": added_pct,
        "threshold_pct": threshold,
        "verdict": count_verdict(added_pct, threshold),
    }


def instruction_path(results_dir: Path, app: str) -> Path:
    return results_dir / f"{INSTRUCTIONS_PREFIX}{app}.json"  # as microbench/bm_instructions.py names them


def summarize_instructions(results_dir: Path, apps: list[dict]) -> dict | None:
    """The `instructions` section (see the module docstring), or None when no instruction counts are present."""
    counts: dict[tuple[str, str], dict] = {}
    # a variant counted in a run of its own (`--variant`): that run's baseline and A/A, which it is compared with
    own_run: dict[tuple[str, str], tuple[dict, float]] = {}
    for variant in [*(v.name for v in registry.VARIANTS), AA_APP]:
        path = instruction_path(results_dir, variant)
        if not path.exists():
            continue
        suite = pyperf.BenchmarkSuite.load(str(path))
        names = set(suite.get_benchmark_names())
        for method in METHODS:
            bench = suite.get_benchmark(f"{INSTRUCTIONS_PREFIX}{method}")
            proven_apps(bench, BASELINE if variant == AA_APP else variant)
            counts[(variant, method)] = describe_counts(bench)
            if {same_run_name(BASELINE, method), same_run_name(AA_APP, method)} <= names:
                base, twin = (suite.get_benchmark(same_run_name(app, method)) for app in (BASELINE, AA_APP))
                proven_apps(base, BASELINE)
                proven_apps(twin, BASELINE)
                reference = describe_counts(base)
                aa_in_run = compare_counts(describe_counts(twin), reference, (AA_APP, BASELINE), method, 0)
                own_run[(variant, method)] = (reference, aa_in_run["added_pct"])
    if not counts:
        return None
    aa = []
    for method in METHODS:
        if (BASELINE, method) in counts and (AA_APP, method) in counts:
            aa.append(
                compare_counts(counts[(AA_APP, method)], counts[(BASELINE, method)], (AA_APP, BASELINE), method, 0)
            )
    aa_pct = {item["method"]: item["added_pct"] for item in aa}
    cpu = {(row["variant"], row["method"]): row for row in apps}
    rows = []
    for (variant, method), row in counts.items():
        if variant == AA_APP:
            continue
        entry = {"variant": variant, "category": registry.get(variant).category, "method": method, **row}
        entry["run"] = "own" if (variant, method) in own_run else "reference"
        reference = counts.get((BASELINE, method))
        if (variant, method) in own_run:
            own_reference, own_aa = own_run[(variant, method)]
            entry["vs_baseline"] = compare_counts(row, own_reference, (variant, BASELINE), method, own_aa)
        elif reference is not None and variant != BASELINE:
            entry["vs_baseline"] = compare_counts(row, reference, (variant, BASELINE), method, aa_pct.get(method, 0))
        timed = cpu.get((variant, method))
        if timed is not None:  # CPU time beside the count: the second figure, which sees what counts leave out
            entry["cpu_median_us"] = timed["median_us"]
            paired = timed.get("paired_vs_baseline") or {}
            entry["cpu_paired_added_pct"] = paired.get("added_pct")
        rows.append(entry)

    def one_run(subject: str, reference: str, method: str) -> bool:
        """Both counted, in one run: the reference run, or neither from a run of its own."""
        both = (subject, method) in counts and (reference, method) in counts
        return both and (subject, method) not in own_run and (reference, method) not in own_run

    def between(pairs: list[tuple[str, str]]) -> list[dict]:
        """Count comparisons of (subject, reference) pairs, per method, where both were counted in one run."""
        return [
            compare_counts(
                counts[(subject, method)],
                counts[(reference, method)],
                (subject, reference),
                method,
                aa_pct.get(method, 0),
            )
            for method in METHODS
            for subject, reference in pairs
            if one_run(subject, reference, method)
        ]

    fix = between([(FIX_SUBJECT, FIX_REFERENCE)])
    targets = between([(TARGET_SUBJECT, reference) for reference in TARGET_REFERENCES])
    depth, per_layer = [], {}
    for kind in DEPTH_KINDS:
        path = instruction_path(results_dir, f"depth_{kind}")
        if not path.exists():
            continue
        suite = pyperf.BenchmarkSuite.load(str(path))
        benches = {int(bench.get_name().removeprefix("depth_")): bench for bench in suite.get_benchmarks()}
        described = {level: describe_counts(bench) for level, bench in sorted(benches.items())}
        floor = described[min(described)]["instructions"]
        depth += [
            {"kind": kind, "depth": level, **row, "added": row["instructions"] - floor}
            for level, row in described.items()
        ]
        per_layer[kind] = slope([(level, row["instructions"]) for level, row in described.items()])
    run_file = results_dir / INSTRUCTIONS_RUN_NAME
    run = read_json(run_file) if run_file.exists() else {}
    spreads = [row["spread_pct"] for row in [*counts.values(), *depth]]
    return {
        "counter": "callgrind Ir: instructions executed per request, every thread, start-up and imports excluded",
        "leaves_out": INSTRUCTIONS_LEAVE_OUT,
        "run": {key: run.get(key) for key in ("mode", "instruction_requests", "instruction_blocks", "timed_seconds")}
        | {"instruction_processes": run.get("instruction_processes"), "environment": run.get("environment")},
        "apps": rows,
        "aa": aa,
        "aa_max_abs_pct": max((abs(item["added_pct"]) for item in aa), default=None),
        "repeatability_max_spread_pct": max(spreads, default=None),
        "targets": targets,
        "fix": fix,
        "depth": depth,
        "depth_per_layer": per_layer,
        "attribution": attribution.summarize(results_dir, rows, [v.name for v in registry.VARIANTS], BASELINE),
    }


def summarize(results_dir: Path = BENCH_DIR, write: bool = True) -> dict:
    """Build the summary from the pyperf JSON in `results_dir` and write it there (atomically) as summary.json."""
    run_file = results_dir / RUN_NAME
    parameters = read_json(run_file) if run_file.exists() else {}
    # The environment of the run itself (recorded by scripts.bench.bench), not of whoever summarises it later.
    environment = parameters.pop("environment", None) or describe(parameters)
    paired = load_paired(results_dir)
    apps, aa, targets = summarize_apps(load_apps(results_dir))
    alone = load_variant_paired(results_dir)
    targets = [item for item in targets if not {item["subject"], item["reference"]} & set(alone)]
    for row in apps:
        if row["variant"] in alone:  # timed alone (`--variant`): its app file and baseline's come from different runs,
            row["vs_baseline"] = None  # and CPU time moves with the host between runs: only its paired blocks compare
            row["run"] = "own"
        suite = alone.get(row["variant"], paired)
        if row["variant"] != BASELINE and suite is not None:
            row["paired_vs_baseline"] = paired_compare(suite, row["method"], row["variant"], BASELINE)
            row["paired_vs_baseline"]["source"] = "alone" if row["variant"] in alone else "full run"
    if paired is not None:
        aa += [paired_compare(paired, method, AA_APP, BASELINE) for method in METHODS]
        targets += [
            paired_compare(paired, method, TARGET_SUBJECT, reference)
            for method in METHODS
            for reference in TARGET_REFERENCES
        ]
    depth, per_layer = summarize_depth(results_dir)
    per_layer_paired = add_paired_depth(paired, depth) if paired is not None else {}
    instructions = summarize_instructions(results_dir, apps)
    summary = {
        "schema": SCHEMA,
        "environment": environment,
        "timer": timer_of(results_dir),
        "significance": {"min_effect_pct": MIN_EFFECT_PCT, "z": Z, "rule": SIGNIFICANCE_RULE},
        "apps": apps,
        "aa": aa,
        "targets": targets,
        "primitives": summarize_primitives(results_dir),
        "depth": depth,
        "depth_per_layer_us": per_layer,
        "depth_per_layer_us_paired": per_layer_paired,
        "instructions": instructions,
        "fix_cost": fix_cost(paired, instructions),
    }
    if write:
        write_json(results_dir / SUMMARY_NAME, summary)
    return summary


def fix_cost(paired: pyperf.BenchmarkSuite | None, instructions: dict | None) -> dict:
    """The fix against the approach it fixes: paired CPU (same blocks, so the host's speed cancels) and counts."""
    cpu = []
    if paired is not None:
        names = set(paired.get_benchmark_names())
        cpu = [
            paired_compare(paired, method, FIX_SUBJECT, FIX_REFERENCE)
            for method in METHODS
            if {paired_name(method, FIX_SUBJECT), paired_name(method, FIX_REFERENCE)} <= names
        ]
    counted = instructions or {}
    return {
        "subject": FIX_SUBJECT,
        "reference": FIX_REFERENCE,
        "cpu": cpu,
        "instructions": counted.get("fix", []),
        "one_layer_instructions": (counted.get("depth_per_layer") or {}).get("pure_asgi"),
    }


def table(summary: dict) -> str:
    """The apps as a fixed-width table (independent runs, then paired blocks), then the A/A and target comparisons."""

    def pct(value: float | None, sign: str = "+") -> str:
        return "-" if value is None else f"{value:{sign}.1f}%"

    def verdict(item: dict | None) -> str:
        if not item:
            return f"{'-':>7} {'-':>6} {'(reference)':16}"
        return f"{pct(item['added_pct']):>7} {pct(item['threshold_pct'], ''):>6} {item['verdict']:16}"

    lines = [
        f"{'':24} {'':6} {'independent runs':-^47} {'paired blocks':-^31}",
        f"{'variant':24} {'method':6} {'median us':>10} {'stdev':>6} {'IQR':>6} {'+%':>7} {'thresh':>6} "
        f"{'verdict':16} {'+%':>7} {'thresh':>6} verdict",
    ]
    for row in sorted(summary["apps"], key=lambda r: (r["method"], r["median_us"])):
        lines.append(
            f"{row['variant']:24} {row['method']:6} {row['median_us']:10.1f} {pct(row['stdev_pct'], ''):>6} "
            f"{pct(row['iqr_pct'], ''):>6} {verdict(row.get('vs_baseline'))} {verdict(row.get('paired_vs_baseline'))}"
        )
    for label, key in (("A/A", "aa"), ("target", "targets")):
        for item in summary[key]:
            lines.append(
                f"{label} ({item['design']}): {item['subject']} vs {item['reference']} {item['method']}: "
                f"{item['added_us']:+.1f} us ({pct(item['added_pct'])}, threshold {pct(item['threshold_pct'], '')}): "
                f"{item['verdict']}"
            )
    counted = summary.get("instructions")
    if counted:
        lines.append(f"instructions per request ({counted['counter']}):")
        for row in sorted(counted["apps"], key=lambda r: (r["method"], r["instructions"])):
            versus = row.get("vs_baseline")
            added = f"{versus['added']:+10.0f} ({versus['added_pct']:+.2f}%) {versus['verdict']}" if versus else ""
            lines.append(
                f"  {row['variant']:24} {row['method']:6} {row['instructions']:12.0f} spread {row['spread_pct']:.3f}% "
                f"{added}"
            )
        for label, key in (("A/A", "aa"), ("target", "targets")):
            for item in counted[key]:
                lines.append(
                    f"  {label} (instructions): {item['subject']} vs {item['reference']} {item['method']}: "
                    f"{item['added']:+.0f} ({item['added_pct']:+.3f}%, threshold {item['threshold_pct']:.3f}%): "
                    f"{item['verdict']}"
                )
        for kind, per_layer in counted["depth_per_layer"].items():
            lines.append(
                f"  depth (instructions): {kind}: {'-' if per_layer is None else f'{per_layer:.0f}'} per layer"
            )
    for kind, per_layer in summary["depth_per_layer_us"].items():
        paired = summary["depth_per_layer_us_paired"].get(kind)
        lines.append(
            f"depth: {kind}: {'-' if per_layer is None else f'{per_layer:.1f}'} us per layer (independent), "
            f"{'-' if paired is None else f'{paired:.1f}'} us per layer (paired)"
        )
    return "\n".join(lines)
