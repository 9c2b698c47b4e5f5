"""The suite's name for ctxbench.serving.fronts (moved there for the installed probe): the same module object."""

import sys

from ctxbench.serving import fronts

sys.modules[__name__] = fronts
