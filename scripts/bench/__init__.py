"""The microbenchmarks: the conformance gate, pyperf orchestration, their statistics and charts."""
