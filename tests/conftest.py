"""Suite-wide setup: hypothesis profiles `ci` (1,000 fixed cases) and `long` (10,000 new, `make fuzz`); Ctrl-C on."""

from __future__ import annotations

import os
import signal

from hypothesis import HealthCheck, settings

# The property tests take their case count from the profile, so one environment variable moves them from the CI run
# to the long fuzz run without editing a test (test_cli_usage.py scales its own smaller count from it: it runs once
# per option of every command).
# `ci` is derandomized and reads no example database: the same commit draws the same cases on every machine and every
# run, so a clean checkout of a correct commit cannot fail on a case nobody changed (issue 33: a random `--` failed
# CI). Exploring new cases is `long`'s job (`make fuzz`): it draws fresh ones and keeps hypothesis' database, and
# what it finds becomes an explicit `@example` next to the property, which `ci` then runs every time.
PROFILE_ENV = "CTXBENCH_HYPOTHESIS_PROFILE"
CI_PROFILE, LONG_PROFILE = "ci", "long"
COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile(CI_PROFILE, max_examples=1_000, derandomize=True, database=None, **COMMON)
settings.register_profile(LONG_PROFILE, max_examples=10_000, **COMMON)
settings.load_profile(os.environ.get(PROFILE_ENV, CI_PROFILE))

# A suite started in the background by a non-interactive shell (`make test &`, a CI step's job) inherits SIGINT
# ignored, and so would every orchestrator the Ctrl-C tests start: they would fail without proving anything (seen here:
# four of them). A Python-level handler is not inherited across exec, so setting one here gives children the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
