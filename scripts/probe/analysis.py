"""Merge the sentinels' reports with the traffic sent: one row per server x traffic, a table and a JSON document."""

from __future__ import annotations

from scripts.probe.driver import ServerResult


def _merge(findings: list[dict]) -> list[dict]:
    """Findings of several worker processes for one row, keyed by ContextVar name and module."""
    merged: dict[tuple[str, str | None], dict] = {}
    for finding in findings:
        key = (finding["name"], finding["module"])
        into = merged.setdefault(
            key,
            {"name": key[0], "module": key[1], "type": finding["type"], "count": 0, "data_leaks": 0, "hashes": {}},
        )
        into["count"] += finding["count"]
        into["data_leaks"] += finding["data_leaks"]
        for digest, count in finding["hashes"].items():
            into["hashes"][digest] = into["hashes"].get(digest, 0) + count
        if finding.get("values"):
            into.setdefault("values", [])
            into["values"] += [value for value in finding["values"] if value not in into["values"]][:5]
    return sorted(merged.values(), key=lambda item: (-item["count"], item["name"]))


def server_document(result: ServerResult) -> dict:
    rows = []
    for phase, row_result in result.rows:
        findings = [finding for report in result.reports for finding in report["stale"].get(phase, {}).values()]
        stale = _merge(findings)
        rows.append(
            {
                **row_result.as_dict(),
                "seen": sum(report["requests"].get(phase, 0) for report in result.reports),
                "stale": stale,
                "isolated": sum(report.get("isolated", {}).get(phase, 0) for report in result.reports),
                "stale_requests": max((item["count"] for item in stale), default=0),
                # requests that saw a value another request sent (counted once however many ContextVars held it)
                "data_leaks": sum(report.get("leaking_requests", {}).get(phase, 0) for report in result.reports),
            }
        )
    baseline = result.reports[0]["baseline"] if result.reports else []
    return {
        **result.config.as_dict(),
        "command": result.command,
        "processes": len(result.reports),
        "baseline": baseline,
        "rows": rows,
        "stale_found": any(row["stale"] for row in rows),
    }


def _where(item: dict) -> str:
    return item["module"] or "module not found"


def table(servers: list[dict]) -> str:
    """server x traffic -> stale ContextVars with the number of requests that started with each, data-level leaks."""
    header = ("server", "traffic", "answered/sent", "stale ContextVars (requests)", "data-level leaks")
    lines: list[tuple[str, ...]] = [header]
    for server in servers:
        for row in server["rows"]:
            stale = ", ".join(f"{item['name']} ×{item['count']}" for item in row["stale"]) or "none"
            if row["isolated"]:
                stale += f" (+{row['isolated']} stale on entry, unused: the app runs them in a fresh Context)"
            traffic = f"{row['kind']} {row['method']} {row['path']}"
            lines.append((server["label"], traffic, f"{row['answered']}/{row['sent']}", stale, str(row["data_leaks"])))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    details = []
    for server in servers:
        for row in server["rows"]:
            for item in row["stale"]:
                ranked = sorted(item["hashes"].items(), key=lambda kv: (-kv[1], kv[0]))
                hashes = ", ".join(f"{digest} ×{count}" for digest, count in ranked[:2])
                if len(ranked) > 2:
                    hashes += f" and {len(ranked) - 2} more distinct values"
                details.append(
                    f"  {server['label']} / {row['kind']} {row['path']}: {item['name']} ({_where(item)}),"
                    f" type {item['type']}, value hashes {hashes}"
                    + (f", data-level leaks {item['data_leaks']}" if item["data_leaks"] else "")
                )
                details += [f"      value {value}" for value in item.get("values", [])]
    if details:
        rendered += ["", "stale ContextVars (created in, value type, sha256 of repr(value)):", *details]
    return "\n".join(rendered)


def verdict(servers: list[dict]) -> str:
    leaking = [server["label"] for server in servers if server["stale_found"]]
    clean = [server["label"] for server in servers if not server["stale_found"]]
    parts = []
    if leaking:
        parts.append(f"stale state found on: {', '.join(leaking)}")
    if clean:
        parts.append(f"no stale state on: {', '.join(clean)}")
    return "; ".join(parts)
