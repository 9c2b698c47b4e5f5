"""The report's "Behind a reverse proxy" section: per approach and server, leaks and another client's data per front."""

from __future__ import annotations

from collections import defaultdict

from apps.harness import registry
from scripts.load import fronts
from scripts.load import servers as serverconfig

DIRECT = fronts.DIRECT_FRONT.label


def totals(grid: list[dict]) -> dict[tuple[str, str, str], dict[str, int]]:
    """(variant, server, front) -> `requests`, `leak` (leaked checkpoint values) and `cross` (responses that carried
    another client connection's data), summed over the scenarios."""
    summed: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: {"requests": 0, "leak": 0, "cross": 0})
    for cell in grid:
        entry = summed[(cell["variant"], cell["server"], cell["front"])]
        entry["requests"] += cell["requests"]
        entry["leak"] += cell["leak"]
        entry["cross"] += cell.get("cross_client", 0)
    return dict(summed)


def h2_lines(load: dict | None, level: str = "###") -> list[str]:
    """HTTP/2: many streams of different identities on one connection (scripts.load.h2), when it was run."""
    rows = (load or {}).get("h2") or []
    if not rows:
        return []
    lines = [
        f"{level} HTTP/2: streams multiplexed on one connection",
        "",
        "Each cell: responses that carried another stream's identity / leaked values / requests "
        "(`make sweep MODE=h2`).",
        "",
        "| approach | target | result |",
        "|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['variant']}` | `{row['target']}` | {row['cross_stream']} / {row['leak']} / {row['requests']} |"
        )
    return [*lines, ""]


def section(load: dict | None) -> list[str]:
    grid = (load or {}).get("front_grid") or []
    if not any(cell["front"] != DIRECT for cell in grid):
        return h2_lines(load, level="##")
    figures = totals(grid)
    labels = [front.label for front in fronts.ALL if any(key[2] == front.label for key in figures)]
    pairs = sorted({(variant, server) for variant, server, front in figures if front != DIRECT})
    lines = [
        "## Behind a reverse proxy",
        "",
        "A proxy keeps keep-alive connections to the app and forwards different clients' requests over them. Each "
        "cell: responses that carried *another client connection's* data (a value sent by another locust user) / "
        "leaked values / requests, every scenario of the hunt together (`cross_client` of `summary.json`'s "
        "`front_grid`). Fronts: `ctxbench/serving/fronts.py`; each run's config file is in its result.",
        "",
        "| approach | server | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for variant, server in pairs:
        cells = []
        for label in labels:
            entry = figures.get((variant, server, label))
            cells.append("-" if entry is None else f"{entry['cross']} / {entry['leak']} / {entry['requests']}")
        lines.append(f"| `{variant}` | `{server}` | " + " | ".join(cells) + " |")
    return [*lines, "", *h2_lines(load)]


def answer_lines(load: dict | None) -> list[str]:
    """The first screen's answer behind a proxy: per approach, the server kinds where another client's data reached a
    request through any proxy (on the servers' default settings), and whether the fresh-Context setting removed it."""
    grid = [cell for cell in (load or {}).get("front_grid") or [] if cell["front"] != DIRECT]
    if not grid:
        return []
    figures = totals(grid)
    proxies = [front.label for front in fronts.ALL if any(key[2] == front.label for key in figures)]
    lines = [f"**Behind a reverse proxy** ({', '.join(proxies)}): responses carrying another client's data, by server:"]
    for variant in dict.fromkeys(key[0] for key in sorted(figures)):
        mine = {key: entry for key, entry in figures.items() if key[0] == variant}
        crossed: dict[str, int] = defaultdict(int)
        fixed = [entry for (_, server, _), entry in mine.items() if serverconfig.get(server).reset_setting]
        for (_, server, _), entry in mine.items():
            if not serverconfig.get(server).reset_setting:
                crossed[serverconfig.get(server).kind] += entry["cross"]
        requests = sum(entry["requests"] for entry in mine.values())
        hit = {kind: count for kind, count in crossed.items() if count}
        role = "" if registry.get(variant).category == registry.APPROACH else f" ({registry.get(variant).category})"
        if not hit:
            lines.append(f"- `{variant}`{role}: none, on any server behind any proxy ({requests:,} requests)")
            continue
        said = ", ".join(f"{kind} {count:,}" for kind, count in hit.items())
        clean = fixed and not any(entry["cross"] or entry["leak"] for entry in fixed)
        tail = "; none with the fresh-Context setting" if clean else ""
        lines.append(f"- `{variant}`{role}: {said} (of {requests:,} requests){tail}")
    return lines
