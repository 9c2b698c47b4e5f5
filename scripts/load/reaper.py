"""The suite's name for ctxbench.serving.reaper (moved there for the installed probe): the same module object."""

import sys

from ctxbench.serving import reaper

sys.modules[__name__] = reaper
