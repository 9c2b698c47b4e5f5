"""`make matrix`: where a value set in one place can be read, for the installed FastAPI, Starlette and anyio.

For every mechanism × set point × middleware order, an app from scripts/matrix/propagation_app.py serves
REQUESTS_PER_PATH concurrent requests per path (one task per request, unique tokens), in-process, with the lifespan run
as uvicorn runs it (its own task; request scopes get a shallow copy of the lifespan state). Each cell says what the read
point saw across those requests: `own` (this request's value every time), `none`, `lifespan` (the lifespan's value),
`foreign` (another request's value at least once), `mixed` (own sometimes, none otherwise) or `n/a` (never reached).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import inspect
import re
from collections import Counter, defaultdict
from pathlib import Path

from starlette.types import ASGIApp, Message

from apps.harness import inprocess
from scripts.common import environment
from scripts.common import results as resultfiles
from scripts.common.arguments import output_dir
from scripts.common.staged import staged_run
from scripts.matrix import propagation_app
from scripts.matrix import propagation_app as m

REQUESTS_PER_PATH = 24
MATRIX_JSON = resultfiles.MATRIX_DIR / "matrix.json"
MATRIX_MD = resultfiles.MATRIX_DIR / "MATRIX.md"
MATRIX_PNG = resultfiles.CHARTS_DIR / "matrix.png"
LABELS = ("own", "none", "lifespan", "foreign", "mixed", "n/a")
# Which path's requests a read point is judged on: the exception handlers only run on their own paths.
JUDGED_ON = {m.HTTP_EXC_HANDLER: m.HTTP_ERROR_PATH, m.EXC_HANDLER: m.ERROR_PATH}

Readings = dict[tuple[str, str], list[tuple[str, str | None]]]  # (path, point) -> [(token, value)]


ASGI_READS = (m.ASGI_BEFORE, m.ASGI_AFTER, m.ASGI_SEND_START)


def column(point: str, order: str) -> str:
    """Middleware reads are named by their position; every other read is the same column in both orders."""
    if point not in m.MIDDLEWARE_READS:
        return point
    asgi_outer = order == m.ASGI_OUTSIDE
    is_asgi = point in ASGI_READS
    return f"{point} ({'outer' if is_asgi == asgi_outer else 'inner'})"


COLUMNS = tuple(dict.fromkeys(column(p, o) for o in m.ORDERS for p in m.MIDDLEWARE_READS)) + m.APP_READS


def judge(values: list[tuple[str, str | None]]) -> tuple[str, dict[str, int]]:
    counts: Counter[str] = Counter()
    for token, value in values:
        if value == token:
            counts["own"] += 1
        elif value is None:
            counts["none"] += 1
        elif value == m.LIFESPAN_VALUE:
            counts["lifespan"] += 1
        else:
            counts["foreign"] += 1
    if not counts:
        return "n/a", {}
    for label in ("foreign", "lifespan"):
        if counts[label]:
            return label, dict(counts)
    if counts["own"] and counts["none"]:
        return "mixed", dict(counts)
    return ("own" if counts["own"] else "none"), dict(counts)


def code_locations() -> dict[str, str]:
    """`scripts/matrix/propagation_app.py:LINE` of the statement that sets or reads at each named point."""
    source = inspect.getsource(propagation_app).splitlines()
    names = {value: name for name, value in vars(propagation_app).items() if name.isupper() and isinstance(value, str)}
    relative = Path(propagation_app.__file__).resolve().relative_to(environment.ROOT)
    locations = {}
    for value, name in names.items():
        pattern = re.compile(rf"(read|maybe_set|read_in_child|read_in_thread)\b.*\b{name}\)")
        for number, line in enumerate(source, start=1):
            if pattern.search(line):
                locations[value] = f"{relative}:{number}"
                break
    return locations


def path_of(token: str) -> str:
    return token[token.index("/") :]


def readings_of(kind: str, set_point: str, order: str) -> Readings:
    readings: Readings = defaultdict(list)

    def record(token: str, point: str, value: str | None) -> None:
        readings[(path_of(token), point)].append((token, value))

    app = m.build(kind, set_point, order, record)
    contextvars.Context().run(asyncio.run, drive(app))  # a fresh process-like context for every app
    return readings


def run_matrix() -> dict:
    cells: dict[str, dict[str, dict[str, dict]]] = {}
    locations = code_locations()
    disagreements = []
    for kind in m.MECHANISMS:
        for set_point in m.SET_POINTS:
            row: dict[str, dict] = {"_set_at": {"code": locations.get(set_point)}}
            app_labels: dict[str, dict[str, str]] = {}
            for order in m.ORDERS:
                readings = readings_of(kind, set_point, order)
                for point in (*m.MIDDLEWARE_READS, *m.APP_READS):
                    label, counts = judge(readings.get((JUDGED_ON.get(point, m.NORMAL_PATH), point), []))
                    app_labels.setdefault(order, {})[point] = label
                    if point in m.APP_READS and order != m.ORDERS[0]:
                        continue  # app reads are reported from the first order; disagreements are listed
                    cell = {"label": label, "counts": counts, "order": order, "code": locations.get(point)}
                    row[column(point, order)] = cell
            first, second = (app_labels[order] for order in m.ORDERS)
            disagreements += [
                {
                    "mechanism": kind,
                    "set_point": set_point,
                    "read_point": point,
                    "by_order": [first[point], second[point]],
                }
                for point in m.APP_READS
                if first[point] != second[point]
            ]
            cells.setdefault(kind, {})[set_point] = row
    return {
        "environment": environment.describe({"requests_per_path": REQUESTS_PER_PATH}),
        "mechanisms": list(m.MECHANISMS),
        "set_points": list(m.SET_POINTS),
        "orders": list(m.ORDERS),
        "columns": list(COLUMNS),
        "labels": list(LABELS),
        "cells": cells,
        "order_disagreements": disagreements,
    }


async def drive(app: ASGIApp) -> None:
    """Lifespan startup (its own task, as uvicorn runs it), concurrent requests on every path, lifespan shutdown."""
    lifespan_state: dict = {}
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    await to_app.put({"type": "lifespan.startup"})
    lifespan_scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": lifespan_state}
    lifespan = asyncio.create_task(app(lifespan_scope, to_app.get, from_app.put))
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan failed: {started}")

    async def one(path: str, token: str) -> None:
        # The exception paths end in a 500 after their handler ran; call_scope answers them as a server does.
        scope = inprocess.http_scope("GET", path, [(m.TOKEN_HEADER, token.encode())], state=lifespan_state)
        await inprocess.call_scope(app, scope, b"")

    for path in (m.NORMAL_PATH, m.HTTP_ERROR_PATH, m.ERROR_PATH):
        tokens = [f"t{i}{path}" for i in range(REQUESTS_PER_PATH)]
        await asyncio.gather(*(asyncio.create_task(one(path, token)) for token in tokens))
    await to_app.put({"type": "lifespan.shutdown"})
    await lifespan


def markdown(result: dict) -> str:
    """One table per mechanism: read points down, set points across; then where each point lives in the code."""
    lines = [
        "# Propagation matrix",
        "",
        "Generated by `make matrix` from `results/matrix/matrix.json`; do not edit. FastAPI "
        f"{result['environment']['packages']['fastapi']}, Starlette {result['environment']['packages']['starlette']}, "
        f"anyio {result['environment']['packages']['anyio']}, Python {result['environment']['python']}.",
        "",
        f"Each cell: what the read point saw over {result['environment']['parameters']['requests_per_path']} "
        "concurrent requests (one task each, unique values): `own` = this request's value every time; `none`; "
        "`lifespan` = the lifespan's value; `foreign` = another request's value at least once; `mixed`; `n/a` = "
        "never reached (a sync endpoint cannot start tasks). Middleware reads are named by position: "
        "(outer)/(inner) relative to the other middleware kind.",
    ]
    for kind in result["mechanisms"]:
        rows = result["cells"][kind]
        lines += ["", f"## {kind}", "", "| read at ↓ / set in → | " + " | ".join(result["set_points"]) + " |"]
        lines.append("|---" * (len(result["set_points"]) + 1) + "|")
        for col in result["columns"]:
            labels = [rows[sp][col]["label"] for sp in result["set_points"]]
            lines.append(f"| {col} | " + " | ".join(f"**{lab}**" if lab == "own" else lab for lab in labels) + " |")
    if result["order_disagreements"]:
        lines += ["", "## Where the middleware order changes a non-middleware read", ""]
        lines += [
            f"- {d['mechanism']}, set in {d['set_point']}, read in {d['read_point']}: "
            f"{d['by_order'][0]} ({result['orders'][0]}) vs {d['by_order'][1]} ({result['orders'][1]})"
            for d in result["order_disagreements"]
        ]
    first = result["cells"][result["mechanisms"][0]][result["set_points"][0]]
    lines += ["", "## Where each cell comes from", "", "| point | code |", "|---|---|"]
    lines += [
        f"| set in {sp} | `{result['cells'][result['mechanisms'][0]][sp]['_set_at']['code']}` |"
        for sp in result["set_points"]
    ]
    lines += [f"| read at {col} | `{first[col]['code']}` |" for col in result["columns"]]
    return "\n".join(lines) + "\n"


COLORS = {
    "own": "#2e7d32",
    "none": "#bdbdbd",
    "lifespan": "#1565c0",
    "foreign": "#c62828",
    "mixed": "#ef6c00",
    "n/a": "#ffffff",
}


def chart(result: dict, path: Path) -> Path:
    """Read points down, set points across (numbered, with a key: their names would not fit), one panel a mechanism."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from scripts.common import chart_style

    labels = list(COLORS)
    cmap = ListedColormap([COLORS[label] for label in labels])
    mechanisms, set_points, columns = result["mechanisms"], result["set_points"], result["columns"]
    fig, axes = chart_style.figure(0.3 * len(columns) + 3.6, cols=len(mechanisms), sharey=True)
    for ax, kind in zip(axes, mechanisms, strict=True):
        grid = [[labels.index(result["cells"][kind][sp][col]["label"]) for sp in set_points] for col in columns]
        chart_style.numbered_heatmap(ax, grid, cmap, len(labels), columns)
        ax.set_title(chart_style.wrap(kind, 16))
    fig.legend(
        handles=[Patch(facecolor=COLORS[label], edgecolor="#616161", label=label) for label in labels],
        loc="outside upper center",
        ncols=len(labels),
        frameon=False,
        title="Where a value set in one place is visible (in-process, concurrent, unique values)",
        title_fontsize=chart_style.TITLE_PT,  # the legend's title: a suptitle would overlap the legend
    )
    chart_style.caption(fig, f"Columns, where the value is set: {chart_style.numbered(set_points)}.")
    return chart_style.save(fig, path)


def render(result: dict, results_dir: Path = resultfiles.RESULTS) -> list[Path]:
    """The markdown table and the heatmap, from the raw JSON alone."""
    md = resultfiles.write_text(results_dir / MATRIX_MD.relative_to(resultfiles.RESULTS), markdown(result))
    return [md, chart(result, results_dir / MATRIX_PNG.relative_to(resultfiles.RESULTS))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", type=output_dir, default=resultfiles.RESULTS, help="where results/ lives")


def run(args: argparse.Namespace) -> int:
    raw = args.results_dir / MATRIX_JSON.relative_to(resultfiles.RESULTS)
    md = args.results_dir / MATRIX_MD.relative_to(resultfiles.RESULTS)
    # Staged, swap (scripts.common.staged): results/matrix/ is this command's alone; the raw JSON and its table are
    # replaced together or not at all. The heatmap goes to the shared charts/ after, from the published JSON.
    with staged_run(raw.parent) as stage:
        result = run_matrix()
        resultfiles.write_json(stage.dir / raw.name, result)
        resultfiles.write_text(stage.dir / md.name, markdown(result))
    drawn = chart(result, args.results_dir / MATRIX_PNG.relative_to(resultfiles.RESULTS))
    for path in (raw, md, drawn):
        print(f"wrote {path}")
    return 0
