"""The propagation-matrix experiment: where a value set in one place can be read."""
