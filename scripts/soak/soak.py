"""The soak (`make soak`): at least a million validated requests, every scenario at once, on every approach the
report calls correct and on the server configurations it calls correct for it; server memory sampled every second.

One long-lived server per (variant, configuration), driven by repeated locust segments of every scenario at once
(`loadtests.scenarios.EACH`): a context, task or connection retained per request accumulates over the server's whole
life, so one server per pair shows it as steady RSS growth, where a server per segment would restart the count.
It fails on any leak, lost value or unexpected status, on a server (or one of its workers) that dies, and on RSS growth
above `memory.BOUND_MIB_PER_100K` per 100k requests after the warm-up (beyond its noise, see memory.py); a pair whose
growth could not be judged (too few requests after the warm-up) or that the harness stopped is inconclusive, never
passed (scripts/soak/verdict.py). Results: one JSON per pair and `summary.json`, written atomically after every
segment into a staging directory next to results/soak/ (scripts.common.staged): a complete soak replaces the previous
one in one swap; an incomplete one (Ctrl-C, a pair that could not finish, an error) is written as it is, with
`"complete": false`, to results/soak.incomplete/ (the `--out` directory's `.incomplete` sibling, replacing the
previous incomplete one) and leaves the previous complete soak untouched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

from apps.harness import registry
from loadtests import scenarios
from loadtests.recorder import AFTER, MEASURED, WARMUP
from scripts.common.arguments import MAX_USERS, output_dir, positive_int, seconds, typed
from scripts.common.environment import describe
from scripts.common.lock import exclusive_run
from scripts.common.results import SOAK_DIR, write_json
from scripts.common.staged import staged_run
from scripts.load import bounded_run
from scripts.load import servers as serverconfig
from scripts.load.process import Managed, free_port, serve
from scripts.load.settings import QUICK_USERS, SERVER_CPUS
from scripts.soak import memory, plan, rejudge
from scripts.soak.verdict import headline, pair_passed, pair_verdict

SUMMARY_NAME = "summary.json"
INCOMPLETE_SUFFIX = ".incomplete"  # results/soak.incomplete/: a soak that did not complete, next to the complete one
REQUESTS = 1_000_000
SEGMENT_S = 60.0  # one locust run; the server lives on across segments
MIN_SEGMENT_S = 3.0  # shorter, and locust's start-up dominates
FIRST_RATE_GUESS = 1000.0  # requests/s, to size the first segment of a small budget before any rate is known
OVERSHOOT = 1.05  # size a pair's last segment a little long: a segment ends on time, and the share must be reached
USERS = QUICK_USERS  # as many users per scenario as the leak hunt (EACH needs a multiple of its scenario count)
ALL_BUCKETS = (WARMUP, MEASURED, AFTER)  # the segments have no warm-up: every request is validated and counted


class SoakFailure(RuntimeError):
    """A pair could not finish: its generator died, or a segment made no progress (the harness: inconclusive)."""


class ServerDied(SoakFailure):
    """The server, or one of its processes (a worker restarted mid-soak), exited: a failure of what is soaked."""


def pair_name(variant: str, config: serverconfig.ServerConfig) -> str:
    return f"{variant}--{config.label}"


def new_pair(variant: str, config: serverconfig.ServerConfig, target: int) -> dict:
    return {
        "variant": variant,
        "server": config.as_dict(),
        "target_requests": target,
        "requests": 0,
        "leak": 0,
        "lost": 0,
        "other": 0,
        "failures": {},
        "by_scenario": {},
        "segments": [],
        "samples": [],  # {"t", "rss", "fds", "processes", "requests"}: requests is cumulative, interpolated
        "growth": None,
        "fds_last": None,
        "complete": False,
        "error": None,
        "server_died": False,
    }


def add_segment(pair: dict, records: list[dict], sampled: list[dict], seconds: float, exit_code: int | None) -> dict:
    """Fold one segment's exact records and memory samples into the pair; returns the segment's own figures."""
    counts = bounded_run.merge(records, ALL_BUCKETS)
    before = pair["requests"]
    try:
        window: tuple[float, float] | None = bounded_run.window_of(records)
    except RuntimeError:
        window = None
    by_scenario = {
        name: bounded_run.merge(records, ALL_BUCKETS, name)["requests"]
        for name in sorted({name for record in records for name in record.get("by_scenario", {})})
    }
    for sample in sampled:
        requests = memory.requests_at(sample["t"], before, counts["requests"], window)
        pair["samples"].append({**sample, "requests": round(requests)})
    pair["requests"] += counts["requests"]
    for key in ("leak", "lost", "other"):
        pair[key] += counts[key]
    pair["failures"] = dict(Counter(pair["failures"]) + Counter(counts["failures"]))
    pair["by_scenario"] = dict(Counter(pair["by_scenario"]) + Counter(by_scenario))
    segment = {
        "index": len(pair["segments"]),
        "seconds": seconds,
        "requests": counts["requests"],
        "by_scenario": by_scenario,
        "leak": counts["leak"],
        "lost": counts["lost"],
        "other": counts["other"],
        "failures": counts["failures"],
        "locust_exit_code": exit_code,
        "rss_mib_end": sampled[-1]["rss"] / memory.MIB if sampled else None,
    }
    pair["segments"].append(segment)
    pair["growth"] = memory.growth([(s["requests"], s["rss"]) for s in pair["samples"]], pair["requests"])
    pair["fds_last"] = pair["samples"][-1]["fds"] if pair["samples"] else None
    return segment


def replaced_processes(started: list[int], samples: list[dict]) -> list[int]:
    """PIDs the server started with that a later sample no longer saw (a worker that died and was replaced)."""
    seen = [set(sample["pids"]) for sample in samples if sample.get("pids")]
    return sorted(set(started) - seen[-1]) if seen else []


class Soak:
    """The whole soak's state: pairs done so far, totals, progress; everything it writes is atomic."""

    def __init__(self, pairs: list[plan.Pair], budget: int, segment_s: float, users: int, out: Path) -> None:
        self.plan = pairs
        self.budget = budget
        self.segment_s = segment_s
        self.users = users
        self.out = out
        self.pairs: list[dict] = []
        self.started = time.monotonic()
        self.rate: float | None = None  # requests per second of locust time, for sizing segments
        self.driving_s = 0.0  # seconds spent in segments: the rate and ETA leave out lock waits and server starts
        self.interrupted = False
        self.share = plan.share(budget, len(pairs))  # every pair's target
        # Taken before anything is written: later, the soak's own result files would make the checkout look dirty.
        self.environment = describe({"budget": budget, "segment_s": segment_s, "users": users})

    @property
    def done(self) -> int:
        return sum(pair["requests"] for pair in self.pairs)

    def run(self) -> None:
        try:
            for variant, config in self.plan:
                pair = new_pair(variant, config, self.share)
                self.pairs.append(pair)
                try:
                    with exclusive_run():  # per pair: other benchmarks on this machine take turns between pairs
                        self.soak_pair(pair, config)
                except RuntimeError as error:  # SoakFailure, LeftBehind: one broken pair must not lose the rest
                    pair["error"] = str(error)
                    pair["server_died"] = isinstance(error, ServerDied)
                    print(f"[soak] ERROR {variant} on {config.label}: {error}", flush=True)
                self.save_pair(pair)
                self.save_summary()
        except KeyboardInterrupt:
            self.interrupted = True
            print("[soak] interrupted: writing what was done, marked incomplete", flush=True)
        finally:
            for pair in self.pairs:
                self.save_pair(pair)
            self.save_summary()

    def soak_pair(self, pair: dict, config: serverconfig.ServerConfig) -> None:
        variant = pair["variant"]
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="ctxbench-soak-") as tmp:
            with serve(registry.get(variant), config, port, SERVER_CPUS) as server:
                processes = server.processes()  # the sampler re-reads them every second; these must all stay alive
                pair["server"]["pids"] = sorted(proc.pid for proc in processes)
                while pair["requests"] < pair["target_requests"]:
                    workdir = Path(tmp) / f"segment{len(pair['segments'])}"
                    self.segment(pair, config, server, port, workdir)
                pair["server"]["command"] = server.command
            pair["server"]["left_behind"] = []  # serve() raises LeftBehind otherwise
        pair["complete"] = True

    def segment(
        self,
        pair: dict,
        config: serverconfig.ServerConfig,
        server: Managed,
        port: int,
        workdir: Path,
    ) -> None:
        remaining = pair["target_requests"] - pair["requests"]
        duration = min(self.segment_s, max(MIN_SEGMENT_S, remaining / (self.rate or FIRST_RATE_GUESS) * OVERSHOOT))
        spec = bounded_run.RunSpec(pair["variant"], scenarios.EACH, self.users, duration, 0.0, config, tag="soak")
        workdir.mkdir()
        generator = bounded_run.Generator(spec, port, workdir)
        started = time.time()
        interrupted = False
        with memory.MemorySampler(psutil.Process(server.pid)) as sampler:
            try:
                generator.start()
                generator.wait(server)  # a server that dies ends the segment at once
            except KeyboardInterrupt:
                interrupted = True
            finally:
                generator.stop()  # before the server: SIGINT lets locust write its record, then by PID
        records = generator.records()
        segment = add_segment(pair, records, sampler.samples, time.time() - started, generator.returncode)
        self.driving_s += segment["seconds"]
        if interrupted:
            segment["interrupted"] = True
            raise KeyboardInterrupt
        if server.process.poll() is not None:
            raise ServerDied(f"the server exited with {server.process.returncode}:\n{server.log_tail()}")
        gone = replaced_processes(pair["server"]["pids"], sampler.samples)
        server.processes()  # remember any new worker, so that the final stop covers it
        if gone:
            raise ServerDied(f"server process(es) {gone} exited during the soak (a worker restarted)")
        if not records:
            raise SoakFailure(f"the generator wrote no record (exit code {generator.returncode})")
        if segment["requests"] == 0:
            raise SoakFailure("a segment sent no request")
        window = bounded_run.window_of(records)
        self.rate = segment["requests"] / max(1e-3, window[1] - window[0])
        self.save_pair(pair)
        print(self.progress(pair, segment), flush=True)

    def progress(self, pair: dict, segment: dict) -> str:
        done = self.done
        rate = done / self.driving_s if self.driving_s > 0 else 0.0
        left = max(0, pair["target_requests"] - pair["requests"]) + self.share * (len(self.plan) - len(self.pairs))
        eta = left / rate if rate else 0.0
        rss = segment["rss_mib_end"]
        return (
            f"[soak] {done:>9,}/{self.budget:,} ({100 * done / self.budget:5.1f}%) {rate:6,.0f} req/s "
            f"ETA {eta / 60:5.1f} min | {pair['variant']} on {pair['server']['label']} segment {segment['index']}: "
            f"{segment['requests']:,} requests, leak {segment['leak']} lost {segment['lost']} "
            f"other {segment['other']}, RSS {rss or 0:.1f} MiB"
        )

    def save_pair(self, pair: dict) -> Path:
        name = pair_name(pair["variant"], serverconfig.get(pair["server"]["label"]))
        return write_json(self.out / f"{name}.json", pair)

    def summary(self) -> dict:
        pairs = [
            {key: value for key, value in pair.items() if key not in ("samples", "segments")}
            | {"segments": len(pair["segments"]), "passed": pair_passed(pair), "file": f"{self.pair_file(pair)}"}
            | dict(zip(("verdict", "why"), pair_verdict(pair), strict=True))
            for pair in self.pairs
        ]
        complete = not self.interrupted and len(self.pairs) == len(self.plan) and all(p["complete"] for p in pairs)
        totals = {key: sum(pair[key] for pair in self.pairs) for key in ("requests", "leak", "lost", "other")}
        summary = {
            "schema": 1,
            "complete": complete,
            "interrupted": self.interrupted,
            "passed": complete and totals["requests"] >= self.budget and all(p["passed"] for p in pairs),
            "budget": self.budget,
            **totals,
            "elapsed_s": time.monotonic() - self.started,
            "driving_s": self.driving_s,
            "segment_s": self.segment_s,
            "users": self.users,
            "growth_bound_mib_per_100k_requests": memory.BOUND_MIB_PER_100K,
            "growth_warmup_share": memory.WARMUP_SHARE,
            "growth_min_fit_requests": memory.MIN_FIT_REQUESTS,
            "growth_sigmas": memory.SIGMAS,
            "growth_noise_floor_mib": memory.NOISE_FLOOR_BYTES / memory.MIB,
            "growth_standard_error": f"batch means over {memory.BATCHES} batches (autocorrelated samples)",
            "plan": [{"variant": variant, "server": config.label} for variant, config in self.plan],
            "pairs": pairs,
            "environment": self.environment,
        }
        summary["verdict"] = headline(summary)
        return summary

    @staticmethod
    def pair_file(pair: dict) -> str:
        return f"{pair_name(pair['variant'], serverconfig.get(pair['server']['label']))}.json"

    def save_summary(self) -> Path:
        return write_json(self.out / SUMMARY_NAME, self.summary())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--requests", type=positive_int(), default=REQUESTS, help=f"validated requests in all ({REQUESTS:,})"
    )
    parser.add_argument("--segment", type=seconds(MIN_SEGMENT_S), default=SEGMENT_S, help="seconds of one locust run")
    parser.add_argument(
        "--users",
        type=positive_int(MAX_USERS),
        default=USERS,
        help=f"locust users (a multiple of {len(scenarios.SCENARIOS)}: every scenario)",
    )
    parser.add_argument(
        "--pair",
        action="append",
        type=pair_argument,
        metavar="VARIANT:LABEL",
        help="soak these pairs instead of the ones the load summary calls correct (tests, reruns)",
    )
    parser.add_argument("--out", type=output_dir, default=SOAK_DIR, help="where the results go (default results/soak)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument(
        "--rejudge",
        action="store_true",
        help="judge the soak already in --out again with today's rule, from its kept memory samples (runs nothing)",
    )


def pair_argument(text: str) -> plan.Pair:
    try:
        return plan.parse_pair(text)
    except (ValueError, KeyError) as error:
        raise argparse.ArgumentTypeError(error.args[0]) from None


typed(pair_argument, "pair")


def check_arguments(args: argparse.Namespace) -> str | None:
    if args.rejudge:
        return None if (Path(args.out) / SUMMARY_NAME).exists() else f"no soak to judge again in {args.out}"
    every = len(scenarios.SCENARIOS)
    if args.users % every:
        return f"--users must be a multiple of {every} (every scenario at once, as many users in each)"
    if args.pair:
        return None
    try:
        pairs = plan.from_summary()
    except FileNotFoundError as error:
        return f"{error} (or name pairs with --pair)"
    return None if pairs else "the load summary calls no approach correct on any server: nothing to soak"


def run(args: argparse.Namespace) -> int:
    if args.rejudge:
        if not (Path(args.out) / SUMMARY_NAME).exists():
            print(f"ctxbench soak: error: no soak to judge again in {args.out}", file=sys.stderr)
            return 2
        again = rejudge.rejudge(Path(args.out))
        print(
            f"[soak] judged again: {again['verdict']} ({len(again['pairs'])} pairs) -> {Path(args.out) / SUMMARY_NAME}"
        )
        return 0 if again["passed"] else 1
    pairs = args.pair or plan.from_summary()
    print(f"[soak] {args.requests:,} requests over {len(pairs)} pairs, segments of {args.segment:.0f}s:", flush=True)
    for variant, config in pairs:
        print(f"[soak]   {variant} on {config.label}", flush=True)
    if args.dry_run:
        return 0
    out = Path(args.out)
    incomplete = incomplete_dir(out)
    # its summary alone says which soak it was (the pair files carry no environment): the kept-results line reads it
    with staged_run(out, origin=(SUMMARY_NAME,)) as stage:
        soak = Soak(pairs, args.requests, args.segment, args.users, stage.dir)
        stage.publish_to(incomplete)  # until it is complete: an exception here still writes what was done there
        soak.run()
        summary = soak.summary()
        if summary["complete"]:
            stage.publish_to(None)
    verdict = summary["verdict"]
    written = out if summary["complete"] else incomplete
    print(
        f"[soak] {verdict}: {summary['requests']:,} requests, leak {summary['leak']} lost {summary['lost']} "
        f"other {summary['other']} -> {written / SUMMARY_NAME}",
        flush=True,
    )
    if soak.interrupted:
        return 130
    return 0 if summary["passed"] else 1


def incomplete_dir(out: Path) -> Path:
    return out.with_name(out.name + INCOMPLETE_SUFFIX)
