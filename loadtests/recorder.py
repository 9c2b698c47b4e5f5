"""Exact per-process record of a locust run: raw latencies, counts, failure names; warm-up kept apart.

Locust rounds response times under 100 ms to whole milliseconds and its final CSV can miss requests, so the figures
ctxbench reports come from this record: one JSON file per locust process, `<prefix>.<pid>.json`.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from apps.harness.checker import Failure
from apps.harness.contract import ENTRY

WARMUP, MEASURED, AFTER = "warmup", "measured", "after"


def decides(name: str) -> bool:
    """A failure that settles its cell: a leak past the entry point makes the cell "leaks", whatever comes after."""
    failure = Failure.parse(name)
    return failure.is_leak and failure.point != ENTRY


@dataclass
class Bucket:
    requests: int = 0
    failed_requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # failure name -> responses that had it
    # origin of leaked values (apps.harness.origin: other_client, same_client, unknown) -> responses that had one
    origins: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self, with_latencies: bool) -> dict[str, object]:
        data: dict[str, object] = {
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "failures": dict(self.failures),
            "origins": dict(self.origins),
        }
        if with_latencies:
            data["latencies_ms"] = [round(value, 4) for value in self.latencies_ms]
        return data


def cpu_seconds() -> float:
    """This process's user + system CPU time (the generator's own cost, validation included)."""
    times = os.times()
    return times.user + times.system


def _buckets() -> dict[str, Bucket]:
    return {name: Bucket() for name in (WARMUP, MEASURED, AFTER)}


@dataclass
class Recorder:
    buckets: dict[str, Bucket] = field(default_factory=_buckets)
    # the same counts per scenario (requests tagged with context={"scenario": ...}); latencies only in `buckets`
    by_scenario: dict[str, dict[str, Bucket]] = field(default_factory=dict)
    window_start: float | None = None  # time.time() when measurement starts (after the warm-up)
    window_end: float | None = None
    cpu_at_start: float | None = None
    cpu_at_end: float | None = None
    settings: dict[str, object] = field(default_factory=dict)
    test_started: float | None = None  # time.time() when the users start (start-up before it is fixed cost)
    stopped_early: bool = False  # set when --ctx-stop-at ended the run before its -t
    leaking: set[str] = field(default_factory=set)  # scenarios with a downstream leak (decides() a failure's name)
    failing: set[str] = field(default_factory=set)  # scenarios with a failure of any kind

    def start(self, warmup_s: float, settings: dict[str, object]) -> None:
        self.test_started = time.time()
        self.window_start = self.test_started + warmup_s
        self.settings = settings

    def _phase(self) -> str:
        if self.window_end is not None:
            return AFTER
        if self.window_start is None or time.time() < self.window_start:
            return WARMUP
        if self.cpu_at_start is None:
            self.cpu_at_start = cpu_seconds()  # first request of the window: the CPU clock starts here
            self.window_start = time.time()
        return MEASURED

    def _scenario_bucket(self, scenario: str | None, phase: str) -> Bucket | None:
        if scenario is None:
            return None
        return self.by_scenario.setdefault(scenario, _buckets())[phase]

    def on_request(
        self,
        response_time: float,
        exception: BaseException | None = None,
        context: dict | None = None,
        **_: object,
    ) -> None:
        """Locust request listener: response_time is locust's unrounded float of milliseconds."""
        phase = self._phase()
        scenario_bucket = self._scenario_bucket((context or {}).get("scenario"), phase)
        for bucket in (self.buckets[phase], scenario_bucket):
            if bucket is not None:
                bucket.requests += 1
                bucket.failed_requests += exception is not None
        if phase == MEASURED:
            self.buckets[MEASURED].latencies_ms.append(response_time)

    def tally(self, names: list[str], scenario: str | None = None, origins: Iterable[str] = ()) -> None:
        """Every failing checkpoint.field of one response (locust keeps only one message per request), and the
        origins of its leaked values."""
        phase = self._phase()
        for bucket in (self.buckets[phase], self._scenario_bucket(scenario, phase)):
            if bucket is not None:
                bucket.failures.update(names)
                bucket.origins.update(origins)
        if scenario is not None and any(not Failure.parse(name).is_dropped for name in names):
            self.failing.add(scenario)  # a dropped startup value is no failure of the pair: it still needs its share
            if any(decides(name) for name in names):
                self.leaking.add(scenario)

    def settled(self, target: int, driven: tuple[str, ...], total: int = 0) -> bool:
        """Every driven scenario cell has a downstream leak (nothing can change its verdict) or `target` requests, and
        the run has `total` requests over its cells unless one of them failed.

        A leak at entry only, a lost value or another failure does not settle a cell: a downstream leak could still
        come and change its verdict (stale context at entry -> leaks), so such a cell runs to the target as well.
        `total` is the run's share of a clean (approach, server kind) pair's target; a failure of any kind anywhere in
        the run means the pair is not clean, so it no longer needs it.
        """
        cells_settled = all(self.reached(scenario, target) or scenario in self.leaking for scenario in driven)
        return cells_settled and self._total_needless(driven, total)

    def reached(self, scenario: str, target: int) -> bool:
        """The cell has `target` requests (a clean one then has its bound)."""
        return self.requests_in(scenario) >= target

    def requests_in(self, scenario: str) -> int:
        return sum(bucket.requests for bucket in self.by_scenario.get(scenario, {}).values())

    def done_sending(self, scenario: str, target: int, driven: tuple[str, ...], total: int = 0) -> bool:
        """The cell's users may stop sending: it has its `target` requests, no downstream leak, and the run needs no
        more requests for its `total`.

        Until the total is there every clean cell sends, so the cheap requests carry most of it and the costly ones
        (a large POST) only their own target. A leaking cell keeps sending until the run ends: its later requests are
        the evidence of how often, and whose data, it leaks (behind a proxy, another client's). A clean cell that stops
        leaves the server and the generator to the cells still short of their target: the run ends sooner, and a slow
        cell gets there at all.
        """
        if scenario in self.leaking or not self.reached(scenario, target):
            return False
        return self._total_needless(driven, total)

    def _total_needless(self, driven: tuple[str, ...], total: int) -> bool:
        if total <= 0 or any(scenario in self.failing for scenario in driven):
            return True
        return sum(self.requests_in(scenario) for scenario in driven) >= total

    def finish(self) -> None:
        if self.window_end is None:
            self.window_end = time.time()
            self.cpu_at_end = cpu_seconds()

    def as_dict(self) -> dict[str, object]:
        window_cpu = None
        if self.cpu_at_start is not None and self.cpu_at_end is not None:
            window_cpu = self.cpu_at_end - self.cpu_at_start
        return {
            "pid": os.getpid(),
            "settings": self.settings,
            "window": {"start": self.window_start, "end": self.window_end, "cpu_s": window_cpu},
            "test_started": self.test_started,
            "stopped_early": self.stopped_early,
            "buckets": {name: bucket.as_dict(name == MEASURED) for name, bucket in self.buckets.items()},
            "by_scenario": {
                scenario: {name: bucket.as_dict(False) for name, bucket in buckets.items()}
                for scenario, buckets in sorted(self.by_scenario.items())
            },
        }

    def write(self, prefix: str) -> Path:
        """Atomically write `<prefix>.<pid>.json` (a reader never sees half a file)."""
        path = Path(f"{prefix}.{os.getpid()}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.as_dict()))
        os.replace(tmp, path)
        return path
