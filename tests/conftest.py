"""Hypothesis profiles: `ci` (1,000 cases, the default in `make test`) and `long` (10,000, `make fuzz`)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Only the header-value property in test_bad_input.py uses hypothesis; its case count comes from the profile, so one
# environment variable moves it from the CI run to the long fuzz run without editing the test.
PROFILE_ENV = "CTXBENCH_HYPOTHESIS_PROFILE"
COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=1_000, **COMMON)
settings.register_profile("long", max_examples=10_000, **COMMON)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))
