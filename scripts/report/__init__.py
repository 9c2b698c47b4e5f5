"""The report: decision table, mechanism limits, REPORT.md and the README variant table."""
