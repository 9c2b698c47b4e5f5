"""Variant apps, their shared HTTP contract, the leak checker and the registry (imports nothing else of ctxbench)."""
