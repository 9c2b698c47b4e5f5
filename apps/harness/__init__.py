"""The harness every variant is judged by: the HTTP contract, the leak checker, the registry, traffic and drivers."""
