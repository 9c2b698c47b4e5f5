"""Every number of the load runs, defined once: cores, ports, durations, user counts, sampling, thresholds."""

from __future__ import annotations

from ctxbench.serving.settings import (  # noqa: F401 - the suite reads them here too
    FRONT_CPUS,
    GENERATOR_CPUS,
    HEALTH_POLL_S,
    HEALTH_TIMEOUT_S,
    HOST,
    SERVER_CPUS,
    STOP_TIMEOUT_S,
)
from loadtests import scenarios
from scripts.load import bounds

# HOST, the cores and the start/stop timeouts: ctxbench.serving.settings (the installed probe uses them).
LOCUST_GRACE_S = 20.0  # beyond its own -t: a generator still running then is killed
SAMPLE_INTERVAL_S = 0.1  # CPU counters of server, generator and machine
GENERATOR_BOUND_SHARE = 0.9  # generator CPU / its cores' time above this: the run measured the client, flag it

# `make load`
USERS = 8
DURATION_S = 10.0
WARMUP_S = 2.0

# the quick leak hunt (`make sweep`): every variant x LEAK_HUNT config, every scenario at once (scenarios.EACH)
QUICK_USERS_PER_SCENARIO = 2  # each user is one keep-alive connection; a leak shows on any one of them
QUICK_USERS = QUICK_USERS_PER_SCENARIO * len(scenarios.SCENARIOS)
# A hunt run stops as soon as every scenario cell has a downstream leak or HUNT_STOP_AT requests (its 95% clean
# bound at <= 1%); QUICK_DURATION_S is only its upper bound, for a server too slow to get there.
HUNT_STOP_AT = bounds.CLEAN_CELL_TARGET
# 20 s, not 10: daphne carries a pair's whole 3,000 in one run (about 8 s on a good minute), and this machine's speed
# moves 2.5x between minutes; a run that settles sooner is not longer for it
QUICK_DURATION_S = 20.0
QUICK_WARMUP_S = 0.0  # the verdict counts warm-up requests too; a hunt run needs no unmeasured start
# wall time of one hunt run, start-ups included: the mean over the reference hunt (results/load/hunt/run.json: 584 runs
# in 1,044 s, 1.79 s each; the median, 1.66 s, leaves out daphne's longer runs, which a whole plan has)
HUNT_RUN_ESTIMATE_S = 1.8

# the full sweep: user counts, longer runs
FULL_USERS = (1, 4, 16, 32)
FULL_DURATION_S = 8.0
FULL_WARMUP_S = 2.0

# side-by-side cost comparison: every variant's server at once on the server core, each with its own generator
SIDE_USERS = 2  # per variant
SIDE_DURATION_S = 15.0
SIDE_WARMUP_S = 3.0
SIDE_ROUNDS = 3
FIXED_RATE_PER_S = 200.0  # fixed-rate latency runs: total requests/s, well below one core's capacity
FIXED_RATE_USERS = 8
SIDE_SCENARIO = "get"  # plain requests: the cost of the mechanism, not of a large body
CLIENT_CPU_ROUNDS = 3  # client CPU per request with and without validation, interleaved
# throughput and latency against concurrency (`make sweep MODE=curves`): baseline and the approaches,
# closed loop on uvicorn's default, every variant once per level and round in a rotated order, so the host's speed
# changes fall on all of them alike
CURVES_USERS = (1, 4, 16, 64)
CURVES_ROUNDS = 3
CURVES_DURATION_S = 5.0
CURVES_WARMUP_S = 1.0
# HTTP/2 cells (`make sweep MODE=h2`): streams in flight at once on one connection, rounds of them per cell
H2_STREAMS = 32
H2_ROUNDS = 20
