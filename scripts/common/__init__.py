"""Plumbing every stage shares: the environment a result carries, atomic result files, the machine lock."""
