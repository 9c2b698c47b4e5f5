"""The report's "What your observability tools record": misattributed events, spans and log lines by server."""

from __future__ import annotations

from collections import defaultdict

from apps.harness import registry
from apps.harness.checker import LOST, Failure
from apps.harness.contract import AUDIT, CHECKPOINTS
from apps.harness.observability import EVENT, SPAN, harm
from scripts.bench.verify import fresh
from scripts.load import servers as serverconfig

# The observability library variants: the error tracker, the tracer, the logger.
VARIANTS = registry.tagged(registry.OBSERVABILITY)
# What the tools record: the error event, the server span, the log record, and whether the request got a transaction
# of its own (Sentry's audit reads it). The other checkpoints are in the decision table.
RECORDED_POINTS = (EVENT, SPAN, CHECKPOINTS[-1])  # the error event, the server span, the log line
NO_TRANSACTION = Failure(AUDIT, "request_id", LOST)


def _harms(failures: dict[str, int]) -> dict[str, int]:
    """Responses per harm: names that describe one harm (a span's trace and parent) count once, by their maximum."""
    found: dict[str, int] = {}
    for name, count in failures.items():
        failure = Failure.parse(name)
        if failure.judged and (failure.point in RECORDED_POINTS or failure == NO_TRANSACTION):
            sentence = harm(name)
            found[sentence] = max(found.get(sentence, 0), count)
    return found


def _in_process_line(name: str, verify: dict | None) -> str:
    data = ((verify or {}).get("variants") or {}).get(name)
    if not data:
        return ""
    chained = [scenario for scenario in registry.CHAINED if scenario in data["failures"]]
    before = sum(sum(data["failures"][s].values()) for s in chained)
    after = sum(sum(data["failures"].get(fresh(s), {}).values()) for s in chained)
    return (
        f"In-process, one connection: {before} failing values; with a fresh Context per request (what "
        f"`contextvar_isolated`'s middleware and `--reset-contextvars` give): {after}."
    )


def section(sources: dict[str, dict | None]) -> list[str]:
    grid = [cell for cell in (sources.get("load") or {}).get("leak_grid", []) if cell["variant"] in VARIANTS]
    if not grid:
        return []
    lines = [
        "## What your observability tools record",
        "",
        "Each library variant uses its tool as the tool's documentation shows for FastAPI, with an in-memory "
        "transport, exporter or sink, and reports what the tool would record for every request: the error event "
        "Sentry would send, the server span OpenTelemetry exports, the log record loguru writes. A count is the "
        "number of requests whose record was misattributed, out of the validated requests on that server; the paths "
        "are the load scenarios where it happened. What the rest of the request saw (every checkpoint) is in the "
        "decision table and [CELLS.md](load/CELLS.md).",
    ]
    order = {label: index for index, label in enumerate(serverconfig.BY_LABEL)}
    for name in VARIANTS:
        mine = [cell for cell in grid if cell["variant"] == name]
        if not mine:
            continue
        variant = registry.get(name)
        by_server: dict[str, list[dict]] = defaultdict(list)
        for cell in mine:
            by_server[cell["server"]].append(cell)
        rows, clean = [], []
        for server in sorted(by_server, key=lambda label: order.get(label, len(order))):
            cells = by_server[server]
            requests = sum(cell["requests"] for cell in cells)
            per_harm: dict[str, int] = defaultdict(int)
            paths: dict[str, set[str]] = defaultdict(set)
            for cell in cells:
                for sentence, count in _harms(cell["failures"]).items():
                    per_harm[sentence] += count
                    paths[sentence].add(cell["scenario"])
            if not per_harm:
                clean.append(server)
            for sentence, count in sorted(per_harm.items(), key=lambda item: -item[1]):
                rows.append(f"| {server} | {sentence} | {', '.join(sorted(paths[sentence]))} | {count} / {requests} |")
        lines += ["", f"### {variant.library} (`{name}`)", ""]
        if rows:
            lines += ["| server | what was recorded wrong | paths | requests affected / validated |"]
            lines += ["|---|---|---|---|", *rows, ""]
        lines.append(f"Nothing misattributed on: {', '.join(clean) if clean else 'no server tried'}.")
        in_process = _in_process_line(name, sources.get("verify"))
        if in_process:
            lines.append(in_process)
    return lines
