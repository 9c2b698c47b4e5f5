"""Servers and fronts as data, and starting and stopping them by PID: shared by the probe and the suite's load runs."""
