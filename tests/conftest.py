"""Suite-wide setup: hypothesis profiles `ci` (1,000 cases, `make test`) and `long` (10,000, `make fuzz`); Ctrl-C on."""

from __future__ import annotations

import os
import signal

from hypothesis import HealthCheck, settings

# The header-value property in test_bad_input.py takes its case count from the profile, so one environment variable
# moves it from the CI run to the long fuzz run without editing the test (test_cli_usage.py sets its own small count:
# it runs once per option of every command).
PROFILE_ENV = "CTXBENCH_HYPOTHESIS_PROFILE"
COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=1_000, **COMMON)
settings.register_profile("long", max_examples=10_000, **COMMON)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))

# A suite started in the background by a non-interactive shell (`make test &`, a CI step's job) inherits SIGINT
# ignored, and so would every orchestrator the Ctrl-C tests start: they would fail without proving anything (seen here:
# four of them). A Python-level handler is not inherited across exec, so setting one here gives children the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
