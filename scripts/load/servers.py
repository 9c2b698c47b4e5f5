"""The suite's name for ctxbench.serving.servers (moved there for the installed probe): the same module object."""

import sys

from ctxbench.serving import servers

sys.modules[__name__] = servers
