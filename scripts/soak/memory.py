"""Server memory through a soak: RSS (and open file descriptors) sampled every second, growth per 100k requests."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import psutil

from apps.harness.contract import MAX_BODY_BYTES
from scripts.load.sampler import BackgroundSampling

SAMPLE_INTERVAL_S = 1.0
MIB = 1024 * 1024
PER_REQUESTS = 100_000  # growth is stated per this many requests
# Memory a per-request leak must not exceed: a retained context, task or connection costs hundreds of bytes to a few
# KiB, i.e. tens to hundreds of MiB per 100k requests; allocator and cache noise on a healthy server stays well
# below 2 MiB per 100k once warmed up.
BOUND_MIB_PER_100K = 2.0
# The first share of a server's requests only warms it up (arenas, caches, buffers, imports on first use): not fitted.
WARMUP_SHARE = 0.2
# Fewer requests than this after the warm-up are too few to fit: growth is reported, not judged.
MIN_FIT_REQUESTS = 5_000
# The soak's budget is shared by every correct pair (dozens once every server kind is in the leak grid), so a pair may
# get only ~10k requests, where RSS noise (large request bodies come and go) makes the slope uncertain by a few MiB per
# 100k. The soak fails a pair when its growth is above the bound beyond that noise: slope - SIGMAS x its standard
# error > bound. A long run judges tightly; a short one still fails a retained context or task (hundreds of bytes per
# request: tens of MiB per 100k), which is what the check is for.
SIGMAS = 3.0
# RSS of a healthy server steps up whenever more large bodies are in flight at once than ever before (a body held as its
# chunks and joined, twice its size), and the allocator keeps that high-water mark: the soak's first run saw healthy
# servers (explicit on daphne) rise ~1 MiB in 8k requests and then stay flat, which a least-squares error taken over
# autocorrelated samples calls significant. Growth over the fitted window smaller than two of the largest bodies is
# within that noise: a pair fails only above it too. With ~8k fitted requests a pair still catches ~260 bytes kept per
# request (a context with a few values; a task or a connection costs several KiB); each pair reports its resolution.
NOISE_FLOOR_BYTES = 2 * MAX_BODY_BYTES
# One-second RSS samples are autocorrelated (a step stays up for many samples), so the least-squares error computed as
# if they were independent is too small. Batch means: the fitted residuals in this many contiguous batches; the
# variance of their means, times the batch size, estimates the long-run variance the slope's error is taken with.
BATCHES = 5
MIN_BATCH_POINTS = 2  # fewer fitted samples than BATCHES x this: the error cannot be estimated, growth not judged


@dataclass
class MemorySampler(BackgroundSampling):
    """Samples the summed RSS and open fds of the server's processes, re-reading them (the root and its descendants,
    by psutil directly: `Managed.processes()` mutates its map and is not safe from this thread) at every sample, so a
    worker restarted mid-soak is in the sum and its PID change is in the samples."""

    root: psutil.Process
    samples: list[dict] = field(default_factory=list)  # {"t", "rss", "fds", "processes", "pids"}
    interval_s: ClassVar[float] = SAMPLE_INTERVAL_S

    def current(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self.root, *self.root.children(recursive=True)]
        return []

    def sample(self) -> None:
        rss = fds = alive = 0
        pids = []
        for proc in self.current():
            with contextlib.suppress(psutil.Error):
                rss += proc.memory_info().rss
                fds += proc.num_fds()
                alive += 1
                pids.append(proc.pid)
        self.samples.append({"t": time.time(), "rss": rss, "fds": fds, "processes": alive, "pids": sorted(pids)})


def requests_at(when: float, before: int, requests: int, window: tuple[float, float] | None) -> float:
    """Cumulative requests at a time inside one segment: linear over its measured window (the segment has no warm-up,
    so every request falls inside it), `before` until it starts, `before + requests` after it ends."""
    if window is None or window[1] <= window[0]:
        return float(before + requests)
    share = min(1.0, max(0.0, (when - window[0]) / (window[1] - window[0])))
    return before + share * requests


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y against x, or None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def standard_error(points: list[tuple[float, float]], fitted_slope: float) -> float | None:
    """Standard error of the least-squares slope, with the residual variance taken as the larger of the independent
    one and the batch-means estimate of the long-run variance (autocorrelated samples); None with too few points."""
    if len(points) < max(3, BATCHES * MIN_BATCH_POINTS):
        return None
    ordered = sorted(points)
    mean_x = sum(x for x, _ in ordered) / len(ordered)
    mean_y = sum(y for _, y in ordered) / len(ordered)
    spread = sum((x - mean_x) ** 2 for x, _ in ordered)
    if not spread:
        return None
    residuals = [y - mean_y - fitted_slope * (x - mean_x) for x, y in ordered]
    independent = sum(r * r for r in residuals) / (len(residuals) - 2)
    size = len(residuals) // BATCHES
    means = [sum(residuals[i * size : (i + 1) * size]) / size for i in range(BATCHES)]
    grand = sum(means) / BATCHES
    long_run = size * sum((m - grand) ** 2 for m in means) / (BATCHES - 1)
    return math.sqrt(max(independent, long_run) / spread)


def resolution_bytes(error_mib: float | None, span: float) -> int | None:
    """The smallest growth, in bytes kept per request, that the rule fails: above the bound by SIGMAS errors, and
    adding up to more than the noise floor over the fitted requests."""
    if error_mib is None or not span:
        return None
    by_bound = (BOUND_MIB_PER_100K + SIGMAS * error_mib) * MIB / PER_REQUESTS
    return math.ceil(max(by_bound, NOISE_FLOOR_BYTES / span))


def growth(points: list[tuple[float, float]], total_requests: int) -> dict[str, object]:
    """RSS growth per 100k requests over (cumulative requests, RSS bytes) after the warm-up, with its standard error;
    judged when enough requests and samples follow the warm-up: failed when above the bound by more than SIGMAS errors
    and when what it adds up to over the fitted window is above the allocator's noise floor."""
    start = WARMUP_SHARE * total_requests
    fitted = [(x, y) for x, y in points if x >= start]
    span = (max(x for x, _ in fitted) - min(x for x, _ in fitted)) if fitted else 0.0
    per_request = slope(fitted)
    mib = per_request * PER_REQUESTS / MIB if per_request is not None else None
    error = standard_error(fitted, per_request) if per_request is not None else None
    error_mib = error * PER_REQUESTS / MIB if error is not None else None
    judged = mib is not None and error_mib is not None and span >= MIN_FIT_REQUESTS
    grown = per_request * span if per_request is not None else None
    failed = judged and mib - SIGMAS * error_mib > BOUND_MIB_PER_100K and grown > NOISE_FLOOR_BYTES
    rss = [y for _, y in points]
    if judged:
        why = None
    elif span < MIN_FIT_REQUESTS:
        why = f"fewer than {MIN_FIT_REQUESTS} requests after the warm-up"
    else:
        why = f"fewer than {BATCHES * MIN_BATCH_POINTS} memory samples after the warm-up"
    return {
        "mib_per_100k_requests": mib,
        "standard_error_mib": error_mib,
        "standard_error_method": f"batch means ({BATCHES} batches), at least the independent-samples error",
        "bound_mib_per_100k_requests": BOUND_MIB_PER_100K,
        "sigmas": SIGMAS,
        "judged": judged,
        "passed": not failed if judged else None,
        "why_not_judged": why,
        "warmup_requests": round(start),
        "fitted_points": len(fitted),
        "fitted_requests": round(span),
        "grown_mib": grown / MIB if grown is not None else None,
        "noise_floor_mib": NOISE_FLOOR_BYTES / MIB,
        # the smallest memory kept per request the rule would fail here: bound + SIGMAS errors, and the noise floor
        "resolution_bytes_per_request": resolution_bytes(error_mib, span) if judged else None,
        "rss_mib_first": rss[0] / MIB if rss else None,
        "rss_mib_last": rss[-1] / MIB if rss else None,
        "rss_mib_max": max(rss) / MIB if rss else None,
    }
