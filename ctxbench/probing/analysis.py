"""Merge the sentinels' reports with the traffic sent: one row per server x traffic, a table and a JSON document."""

from __future__ import annotations

from ctxbench.probing.driver import ServerResult

# A connection-scoped leak (a request starting in the previous request's context on the same connection) needs two
# requests answered on one connection: a row is conclusive only when each of its connections carried at least this many.
MIN_ANSWERED_PER_CONNECTION = 2
# A row is conclusive only when at most this share of its requests failed, and at most this share of the answered ones
# went unseen by the sentinel: a verdict resting on requests not answered or not watched is no verdict.
MAX_ERROR_SHARE = 0.1
MAX_DATA_PATHS_SHOWN = 5  # per stale ContextVar, merged over worker processes
STALE, CLEAN, INCONCLUSIVE = "stale state found", "no stale state", "inconclusive"


def inconclusive_reason(row: dict) -> str | None:
    """Why a row cannot show a leak (requests not sent, not answered, not seen, too few per connection), or None."""
    sent, answered, errors, seen = row["sent"], row["answered"], row["errors"], row["seen"]
    if sent == 0:
        return "no request was sent"
    reasons = []
    if errors > MAX_ERROR_SHARE * sent:
        reasons.append(f"{errors} of {sent} requests failed ({row.get('first_error') or 'no answer'})")
    statuses = row.get("statuses") or {}
    not_2xx = {code: count for code, count in statuses.items() if not str(code).startswith("2")}
    if sum(not_2xx.values()) > MAX_ERROR_SHARE * max(answered, 1):
        # the app's route did not run as it does in production: its handler's state was never exercised
        counted = ", ".join(f"{code} ×{count}" for code, count in sorted(not_2xx.items()))
        reasons.append(f"{sum(not_2xx.values())} of {answered} answers were not 2xx ({counted})")
    if answered - seen > MAX_ERROR_SHARE * sent:
        reasons.append(f"the sentinel saw {seen} of {answered} answered requests")
    per_connection = row.get("answered_per_connection") or []
    short = [count for count in per_connection if count < MIN_ANSWERED_PER_CONNECTION]
    if not per_connection or short:
        reasons.append(
            f"{len(short) if per_connection else 'no'} of {len(per_connection)} connections carried fewer than"
            f" {MIN_ANSWERED_PER_CONNECTION} answered requests (a connection-scoped leak cannot show)"
        )
    if row.get("behind_front"):
        # what must carry several requests is the proxy's upstream connection to the app, as the server saw it (the
        # peer address of each request): one request per upstream connection, and nothing can carry over
        upstream = row.get("requests_per_upstream_connection") or []
        if not any(count >= MIN_ANSWERED_PER_CONNECTION for count in upstream):
            reasons.append(
                f"the front reused none of its {len(upstream)} upstream connections for a second request (nothing"
                " can carry over from one request to the next on them)"
            )
    if row.get("sentinel_errors"):
        reasons.append(f"the sentinel failed on {row['sentinel_errors']} requests ({row.get('sentinel_error')})")
    return "; ".join(reasons) or None


def row_verdict(row: dict) -> str:
    """Stale state found outranks everything: a leak seen before a failure still counts."""
    if row["stale"]:
        return STALE
    return INCONCLUSIVE if row["inconclusive"] else CLEAN


def _merge(findings: list[dict]) -> list[dict]:
    """Findings of several worker processes for one row, keyed by ContextVar name and module."""
    merged: dict[tuple[str, str | None], dict] = {}
    for finding in findings:
        key = (finding["name"], finding["module"])
        into = merged.setdefault(
            key,
            {"name": key[0], "module": key[1], "type": finding["type"], "count": 0, "data_leaks": 0, "hashes": {}},
        )
        for counter in ("count", "data_leaks", "other_client_leaks", "shared", "read_before_fresh", "kept", "replaced"):
            into[counter] = into.get(counter, 0) + finding.get(counter, 0)
        for digest, count in finding["hashes"].items():
            into["hashes"][digest] = into["hashes"].get(digest, 0) + count
        into.setdefault("data_paths", [])
        into["data_paths"] += [path for path in finding.get("data_paths", []) if path not in into["data_paths"]]
        del into["data_paths"][MAX_DATA_PATHS_SHOWN:]
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
                # ... a value another client sent (another connection of the probe; behind a front, any other request)
                "other_client_leaks": sum(
                    report.get("other_client_requests", {}).get(phase, 0) for report in result.reports
                ),
                "requests_per_upstream_connection": sorted(
                    count
                    for report in result.reports
                    for count in report.get("requests_per_connection", {}).get(phase, [])
                ),
                "sentinel_errors": sum(report.get("sentinel_errors", {}).get(phase, 0) for report in result.reports),
                "sentinel_error": next(
                    (report["sentinel_last_error"] for report in result.reports if report.get("sentinel_last_error")),
                    None,
                ),
            }
        )
        rows[-1]["inconclusive"] = inconclusive_reason(rows[-1])
        rows[-1]["verdict"] = row_verdict(rows[-1])
    baseline = result.reports[0]["baseline"] if result.reports else []
    return {
        **result.config.as_dict(),
        "front": result.front,
        "command": result.command,
        "processes": len(result.reports),
        "baseline": baseline,
        "rows": rows,
        "stale_found": any(row["stale"] for row in rows),
        "inconclusive": [
            f"{row['kind']} {row['method']} {row['path']}: {row['inconclusive']}" for row in rows if row["inconclusive"]
        ],
    }


def where(server: dict) -> str:
    """The server's label, and the front before it when there is one: `uvicorn-default via nginx`."""
    front = (server.get("front") or {}).get("label", "direct")
    return server["label"] if front == "direct" else f"{server['label']} via {front}"


def _module_of(item: dict) -> str:
    return item["module"] or "module not found"


def table(servers: list[dict]) -> str:
    """server x traffic -> stale ContextVars with the number of requests that started with each, data-level leaks."""
    header = (
        "server",
        "traffic",
        "answered/sent (statuses)",
        "stale ContextVars (requests)",
        "data-level leaks",
        "row",
    )
    lines: list[tuple[str, ...]] = [header]
    for server in servers:
        for row in server["rows"]:
            stale = ", ".join(_finding(item) for item in row["stale"]) or "none"
            if row["isolated"]:
                stale += f" (+{row['isolated']} stale on entry, unused: the app runs them in a fresh Context)"
            traffic = f"{row['kind']} {row['method']} {row['path']}"
            verdict = row["verdict"] if row["verdict"] != INCONCLUSIVE else "INCONCLUSIVE (see below)"
            answered = f"{row['answered']}/{row['sent']} {status_summary(row)}"
            data = str(row["data_leaks"])
            if row.get("other_client_leaks"):
                data += f" ({row['other_client_leaks']} another client's)"
            lines.append((where(server), traffic, answered, stale, data, verdict))
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
                    f"  {where(server)} / {row['kind']} {row['path']}: {item['name']} ({_module_of(item)}),"
                    f" type {item['type']}, value hashes {hashes}"
                    + (f", data-level leaks {item['data_leaks']}" if item["data_leaks"] else "")
                    + (f" ({item['other_client_leaks']} another client's)" if item.get("other_client_leaks") else "")
                )
                if triage_words(item):
                    details.append(f"      {triage_words(item)}")
                details += [f"      another request's identity found at {path}" for path in item.get("data_paths", [])]
                details += [f"      value {value}" for value in item.get("values", [])]
    if details:
        rendered += ["", "stale ContextVars (created in, value type, sha256 of repr(value)):", *details]
    unsure = [f"  {where(server)} / {line}" for server in servers for line in server.get("inconclusive", [])]
    if unsure:
        rendered += ["", "inconclusive rows (no verdict: the evidence was not gathered):", *unsure]
    return "\n".join(rendered)


def status_summary(row: dict) -> str:
    """`(200 ×60)`; answers that were not 2xx are marked: `(200 ×2, 405 ×58 NOT 2xx)`."""
    statuses = row.get("statuses") or {}
    text = ", ".join(f"{code} ×{count}" for code, count in sorted(statuses.items())) or "no answers"
    return f"({text}{' NOT 2xx' if any(not str(code).startswith('2') for code in statuses) else ''})"


def untriaged(item: dict) -> int:
    """Stale requests of a ContextVar neither kept nor replaced (no final response message, or read before the
    app's fresh Context): counted as kept by `--fail-on kept`, since nothing shows the app overwrote the value."""
    return max(0, item["count"] - item.get("kept", 0) - item.get("replaced", 0))


def triage_words(item: dict) -> str:
    """kept/replaced in words: what a reader of the table needs to know to tell which stale state matters."""
    parts = []
    if item.get("kept"):
        parts.append(f"kept in {item['kept']} (the whole request ran with another request's value)")
    if item.get("replaced"):
        parts.append(f"replaced in {item['replaced']} (the app set its own; only code before that saw the stale one)")
    if untriaged(item):
        parts.append(f"not triaged in {untriaged(item)}")
    return "; ".join(parts)


def _finding(item: dict) -> str:
    text = f"{item['name']} ×{item['count']}"
    notes = []
    triaged = [f"{word} ×{item[word]}" for word in ("kept", "replaced") if item.get(word)]
    if triaged:
        notes.append(", ".join(triaged))
    if item.get("shared"):
        notes.append(f"shared object from the baseline ×{item['shared']}")
    if item.get("read_before_fresh"):
        notes.append(f"read before the app's fresh Context ×{item['read_before_fresh']}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


FAIL_ON = ("any", "kept")  # --fail-on: any stale state fails (default), or only state the app did not replace


def fails(server: dict, fail_on: str = "any") -> bool:
    """Stale state that fails the probe: any, or (fail_on="kept") some value kept or not shown to be replaced."""
    if fail_on == "kept":
        return any(item.get("kept", 0) or untriaged(item) for row in server["rows"] for item in row["stale"])
    return bool(server["stale_found"])


def server_verdict(server: dict) -> str:
    if server["stale_found"]:
        return STALE
    return INCONCLUSIVE if server.get("inconclusive") else CLEAN


def verdict(servers: list[dict]) -> str:
    """One line: stale state found on ...; inconclusive on ... (why); no stale state on ..."""
    by = {key: [s for s in servers if server_verdict(s) == key] for key in (STALE, INCONCLUSIVE, CLEAN)}
    parts = []
    if by[STALE]:
        parts.append(f"stale state found on: {', '.join(where(s) for s in by[STALE])}")
        kept = sum(item.get("kept", 0) for s in by[STALE] for row in s["rows"] for item in row["stale"])
        replaced = sum(item.get("replaced", 0) for s in by[STALE] for row in s["rows"] for item in row["stale"])
        if kept or replaced:
            parts[-1] += (
                f" ({kept} stale values kept to the response: those requests ran with another request's state;"
                f" {replaced} replaced by the app before it responded)"
            )
        other = sum(row.get("other_client_leaks", 0) for s in by[STALE] for row in s["rows"])
        if other:
            parts[-1] += f"; {other} requests held data another client sent"
    if by[INCONCLUSIVE]:
        unsure = [f"{where(s)} ({s['inconclusive'][0]}{' and more' if len(s['inconclusive']) > 1 else ''})"
                  for s in by[INCONCLUSIVE]]  # fmt: skip
        parts.append(f"INCONCLUSIVE (no verdict) on: {', '.join(unsure)}")
    if by[CLEAN]:
        parts.append(f"no stale state on: {', '.join(where(s) for s in by[CLEAN])}")
    return "; ".join(parts)


EXIT_CLEAN, EXIT_STALE, EXIT_INCONCLUSIVE = 0, 1, 3  # 2 is bad usage or a target that cannot run (command.py)


def exit_code(servers: list[dict], fail_on: str = "any") -> int:
    """1 when stale state was found anywhere (whatever else could not be judged), 3 when nothing stale was found but
    some row is inconclusive, 0 only when every row of every server was judged clean. fail_on="kept": stale state
    that every request replaced before responding does not fail (1), nor make the result inconclusive."""
    if any(fails(server, fail_on) for server in servers):
        return EXIT_STALE
    if fail_on == "kept" and any(server["stale_found"] for server in servers):
        # replaced-only stale state: judged, and accepted by the user's choice; other rows may still be unjudged
        unjudged = [row for server in servers for row in server["rows"] if row["inconclusive"] and not row["stale"]]
        return EXIT_INCONCLUSIVE if unjudged else EXIT_CLEAN
    if any(server.get("inconclusive") for server in servers):
        return EXIT_INCONCLUSIVE
    return EXIT_CLEAN
