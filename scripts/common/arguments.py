"""The suite's name for ctxbench.arguments (moved there for the installed probe): the same module object."""

import sys

from ctxbench import arguments

sys.modules[__name__] = arguments
