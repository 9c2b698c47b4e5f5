"""CPU counters sampled in the background (server, generator, whole machine), read back for any time window."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Self

import psutil

from scripts.load.settings import SAMPLE_INTERVAL_S


def machine_busy_seconds() -> list[float]:
    """Busy CPU seconds per core since boot (everything but idle and iowait), from /proc/stat."""
    return [t.user + t.nice + t.system + t.irq + t.softirq + t.steal for t in psutil.cpu_times(percpu=True)]


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


class BackgroundSampling:
    """A context manager that calls `self.sample()` on entry, every `interval_s` in a daemon thread, and on exit."""

    interval_s: ClassVar[float] = SAMPLE_INTERVAL_S

    def sample(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()


@dataclass
class Sampler(BackgroundSampling):
    """Samples named cumulative counters; `between(t0, t1)` interpolates each one's increase over a window."""

    probes: dict[str, Callable[[], float]]
    times: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    cores: list[list[float]] = field(default_factory=list)

    def sample(self) -> None:
        self.times.append(time.time())
        for name, probe in self.probes.items():
            self.values.setdefault(name, []).append(probe())
        self.cores.append(machine_busy_seconds())

    def _at(self, series: list[float], when: float) -> float:
        index = bisect.bisect_left(self.times, when)
        if index <= 0:
            return series[0]
        if index >= len(self.times):
            return series[-1]
        t0, t1 = self.times[index - 1], self.times[index]
        share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
        return series[index - 1] + share * (series[index] - series[index - 1])

    def between(self, start: float, end: float) -> dict[str, float]:
        """Increase of every probe over [start, end], plus `core<N>` busy seconds of each core."""
        result = {name: self._at(series, end) - self._at(series, start) for name, series in self.values.items()}
        for core in range(len(self.cores[0])):
            series = [sample[core] for sample in self.cores]
            result[f"core{core}"] = self._at(series, end) - self._at(series, start)
        return result
