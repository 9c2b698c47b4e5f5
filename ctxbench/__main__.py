"""`python -m ctxbench`: the same as the `ctxbench` command."""

import sys

from ctxbench.cli import main

sys.exit(main())
