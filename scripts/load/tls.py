"""The suite's name for ctxbench.serving.tls (moved there for the installed probe): the same module object."""

import sys

from ctxbench.serving import tls

sys.modules[__name__] = tls
