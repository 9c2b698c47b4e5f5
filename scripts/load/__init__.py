"""Load runs: server processes and their configurations, the locust generator, sampling, sweeps, statistics, charts."""
