"""ctxbench's orchestration: one subpackage per stage of the data flow, indexed by `scripts/cli.py`."""
