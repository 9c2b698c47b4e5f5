"""The version matrix in the report: heatmap stack × variant × path, cells that change, per approach its versions."""

from __future__ import annotations

from pathlib import Path

from apps.harness import registry
from apps.harness.checker import Failure
from scripts.common import results as resultfiles

VERSIONS_MD = "VERSIONS.md"  # under results/versions/: the full tables, REPORT.md carries the summary
CHART_NAME = "versions.png"
OK, LOST, LEAK, OTHER, CANNOT, NA, NOT_RUN = "ok", "lost", "leak", "error", "cannot run", "n/a", "not run"
DROPS = "drops startup"  # no leak, no loss; what the app set before its first request out of sight (checker.DROPPED)
PASSING = (OK, DROPS)
COLORS = {
    OK: "#2e7d32",
    DROPS: "#8bc34a",
    LOST: "#9e9e9e",
    LEAK: "#c62828",
    OTHER: "#ef6c00",
    CANNOT: "#212121",
    NA: "#ffffff",
    NOT_RUN: "#e0e0e0",
}
# In-process paths (apps.harness.inprocess drives them; the _fresh_context ones model --reset-contextvars).
INPROCESS = {
    "concurrent": "in-process concurrent",
    "keepalive": "in-process send path",
    "keepalive_reads": "in-process read path",
    "keepalive_fresh_context": "in-process send path, fresh Context",
    "keepalive_reads_fresh_context": "in-process read path, fresh Context",
}
# A stack's verdict rests on what its own server did: the in-process one-connection paths are a model of a server that
# starts the next request in the previous one's context, whatever uvicorn is installed, so they are shown, not judged.
# The concurrent path is judged: it is the app's own behaviour on that stack's FastAPI and Starlette.
DEFAULT_PATHS = ("concurrent",)
FRESH_PATHS = ("concurrent",)
CORRECT, WITH_RESET, INCORRECT = "correct", "correct only with --reset-contextvars", "leaks or loses"
INCONCLUSIVE = "inconclusive"  # a verdict that would rest on a path not measured: never shown as correct
HUNT = "hunt"  # key of the reason when the leak hunt did not run at all


def load(results_dir: Path = resultfiles.RESULTS) -> list[dict]:
    """Every stack's result, in the order the stacks are declared (file order otherwise)."""
    from scripts.versions.stacks import STACKS

    found = {p.stem: resultfiles.read_json(p) for p in sorted((results_dir / "versions").glob("*.json"))}
    order = [s.name for s in STACKS if s.name in found] + [
        name for name in found if name not in {s.name for s in STACKS}
    ]
    return [found[name] for name in order]


def label_of(failures: dict[str, int] | str | None) -> str:
    """Worst verdict of one failure count dict: a leak outranks a loss, which outranks anything else. An `error: ...`
    string is the harness failing on that path (an API that broke at request time), not a property measured: cannot
    run."""
    if failures is None:
        return NOT_RUN
    if isinstance(failures, str):
        return CANNOT
    names = [name for name, count in failures.items() if count]
    if any(Failure.parse(name).is_leak for name in names):
        return LEAK
    if any(Failure.parse(name).is_lost for name in names):
        return LOST
    if any(not Failure.parse(name).is_dropped for name in names):
        return OTHER
    return DROPS if names else OK


def hunt_label(cell: dict | None) -> str:
    """A leak or a loss seen counts whatever happened after it; a server that died or answered nothing is the harness
    failing (cannot run), never a leak and never ok."""
    if cell is None:
        return NOT_RUN
    if cell["status"] == "n/a":
        return NA
    if cell["status"] != "ran":
        return CANNOT
    scenarios = cell["scenarios"].values()
    for key, label in (("leak", LEAK), ("lost", LOST)):
        if any(s[key] for s in scenarios):
            return label
    if cell.get("server_died") is not None or not any(s["requests"] for s in scenarios):
        return CANNOT
    if any(s["other"] for s in scenarios):
        return OTHER
    return DROPS if any(s.get("dropped") for s in scenarios) else OK


def hunt_reason(cell: dict | None) -> str:
    if cell is None:
        return "not run"
    if cell["status"] != "ran":
        return str(cell.get("reason") or cell["status"])
    if cell.get("server_died") is not None:
        return f"the server died during the run (exit code {cell['server_died']})"
    return "no request was answered"


def hunt_configs(result: dict) -> list[str]:
    hunt = result.get("hunt") or {}
    return list(hunt.get("configs", []))


def cells(result: dict, variant: str) -> dict[str, str]:
    """path -> label for one stack and variant (in-process paths, then each server configuration)."""
    return cells_and_reasons(result, variant)[0]


def cells_and_reasons(result: dict, variant: str) -> tuple[dict[str, str], dict[str, str]]:
    """path -> label, and path -> why it could not run (for the `cannot run` labels)."""
    if result.get("status") != "ran":
        return {}, {}
    inprocess = result.get("inprocess") or {}
    measured = inprocess.get("variants", {}).get(variant)
    row: dict[str, str] = {}
    why: dict[str, str] = {}
    for path in INPROCESS:
        if inprocess.get("status") == "error":  # the stack's interpreter failed before writing anything
            row[path], why[path] = CANNOT, f"in-process run failed: {inprocess.get('reason')}"
        elif measured is None:
            row[path] = NOT_RUN
        elif measured.get("status") != "ran":
            row[path], why[path] = CANNOT, str(measured.get("reason"))
        else:
            failures = measured["failures"].get(path)
            row[path] = label_of(failures)
            if isinstance(failures, str):
                why[path] = failures
    hunt = result.get("hunt") or {}
    runs = hunt.get("runs", {}).get(variant, {})
    for config in hunt_configs(result):
        row[config] = hunt_label(runs.get(config))
        if row[config] == CANNOT:
            why[config] = hunt_reason(runs.get(config))
    if "runs" not in hunt and row:
        why[HUNT] = f"leak hunt not run ({hunt.get('reason') or 'no hunt in this result'})"
    return row, why


def verdict(row: dict[str, str]) -> str:
    """Correct: nothing leaks or is lost on any judged path of the server's default (in-process concurrent, every
    plain server configuration), each of them measured; else correct with the reset flag. A leak or a loss seen on a
    judged path is reported whatever else could not run; a verdict that would rest on a path not measured (cannot
    run, not run, the hunt skipped) is inconclusive."""
    if not row or all(label == NOT_RUN for label in row.values()):
        return NOT_RUN  # the variant was left out of this stack's run (--variant): no verdict, not a failure
    servers = [c for c in row if c not in INPROCESS]
    plain = [row[p] for p in DEFAULT_PATHS] + [row[c] for c in servers if not c.endswith("-reset")]
    fresh = [row[p] for p in FRESH_PATHS] + [row[c] for c in servers if c.endswith("-reset")]
    failed = (LEAK, LOST, OTHER)
    if any(label in failed for label in plain):
        if all(label in PASSING for label in fresh) and any(
            c.endswith("-reset") and row[c] in PASSING for c in servers
        ):
            return WITH_RESET
        return INCORRECT  # even if the reset runs could not be judged: the default leaks
    if not any(not c.endswith("-reset") for c in servers):
        return INCONCLUSIVE  # the hunt did not run: the in-process path alone does not make a stack correct
    if all(label in PASSING for label in plain):
        return CORRECT
    return INCONCLUSIVE


def inconclusive_reason(row: dict[str, str], why: dict[str, str]) -> str:
    """The first reason a row could not be judged (a path that could not run, the hunt not run)."""
    judged = [*DEFAULT_PATHS, *(c for c in row if c not in INPROCESS and not c.endswith("-reset"))]
    for path in judged:
        if row.get(path) == CANNOT:
            return f"{INPROCESS.get(path, path)}: cannot run: {why.get(path, '?')}"
        if row.get(path) == NOT_RUN:
            return f"{INPROCESS.get(path, path)}: not run"
    return why.get(HUNT, "not judged")


def variants_of(results: list[dict]) -> list[str]:
    names: dict[str, None] = {}
    for result in results:
        for name in (result.get("inprocess") or {}).get("variants", {}):
            names.setdefault(name)
    return list(names)


def paths_of(results: list[dict]) -> list[str]:
    configs: dict[str, None] = {}
    for result in results:
        for config in hunt_configs(result):
            configs.setdefault(config)
    return [*INPROCESS, *configs]


def chart(results: list[dict], path: Path) -> Path | None:
    """One panel per variant: stacks down, paths across (numbered, with a key: their names would not fit)."""
    variants, paths = variants_of(results), paths_of(results)
    if not variants:
        return None
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from scripts.common import chart_style

    labels = list(COLORS)
    cmap = ListedColormap([COLORS[label] for label in labels])
    columns = 2
    rows_of_panels = (len(variants) + columns - 1) // columns
    height = rows_of_panels * (0.3 * len(results) + 0.9) + 3.2
    fig, axes = chart_style.figure(height, rows=rows_of_panels, cols=columns, squeeze=False, sharey=True)
    # Stack names only: the versions in each stack are in the stack table beside the chart.
    names = [result["stack"]["name"] + ("" if result.get("status") == "ran" else " (skipped)") for result in results]
    for index, ax in enumerate(axes.flat):
        if index >= len(variants):
            ax.axis("off")
            continue
        variant = variants[index]
        grid = []
        for result in results:
            row = cells(result, variant)
            grid.append([labels.index(row.get(path, NOT_RUN)) for path in paths])
        chart_style.numbered_heatmap(ax, grid, cmap, len(labels), names)
        ax.set_title(variant)
    fig.legend(
        handles=[Patch(facecolor=COLORS[x], edgecolor="#616161", label=x) for x in labels],
        loc="outside upper center",
        ncols=4,
        frameon=False,
        title="Which versions leak: worst verdict over each path's requests",
        title_fontsize=chart_style.TITLE_PT,  # the legend's title: a suptitle would overlap the legend
    )
    key = chart_style.numbered([INPROCESS.get(p, f"server {p}") for p in paths])
    chart_style.caption(fig, f"Columns, the paths: {key}.")
    return chart_style.save(fig, path)


def approach_lines(results: list[dict]) -> list[str]:
    """Per approach: the stacks it is correct on, correct only with the reset flag, wrong, or inconclusive (why)."""
    ran = [r for r in results if r.get("status") == "ran"]
    lines = [
        "| approach | correct | correct only with `--reset-contextvars` | leaks or loses "
        "| inconclusive (cannot run, hunt not run) |",
        "|---|---|---|---|---|",
    ]
    for variant in variants_of(ran):
        by: dict[str, list[str]] = {CORRECT: [], WITH_RESET: [], INCORRECT: [], INCONCLUSIVE: []}
        for result in ran:
            row, why = cells_and_reasons(result, variant)
            found = verdict(row)
            name = result["stack"]["name"]
            if found == INCONCLUSIVE:
                name = f"{name} ({inconclusive_reason(row, why)})"
            by.setdefault(found, []).append(name)
        lines.append(
            f"| `{variant}` | "
            + " | ".join(", ".join(by[key]) or "-" for key in (CORRECT, WITH_RESET, INCORRECT, INCONCLUSIVE))
            + " |"
        )
    return lines


def changing_lines(results: list[dict]) -> list[str]:
    """Variant × path cells and matrix cells whose verdict is not the same on every stack that ran."""
    ran = [r for r in results if r.get("status") == "ran"]
    lines: list[str] = []
    for variant in variants_of(ran):
        for path in paths_of(ran):
            labels = {r["stack"]["name"]: cells(r, variant).get(path, NOT_RUN) for r in ran}
            if len(set(labels.values()) - {NA, NOT_RUN}) > 1:
                lines.append(f"- `{variant}`, {INPROCESS.get(path, 'server ' + path)}: " + spread(labels))
    matrix_lines = []
    first = next(
        (r["inprocess"]["matrix"] for r in ran if r["inprocess"].get("matrix", {}).get("status") == "ran"), None
    )
    if first is not None:
        for kind in first["mechanisms"]:
            for set_point in first["set_points"]:
                for column in first["columns"]:
                    labels = {}
                    for result in ran:
                        matrix = result["inprocess"].get("matrix", {})
                        value = matrix.get("cells", {}).get(kind, {}).get(set_point, {}).get(column)
                        labels[result["stack"]["name"]] = CANNOT if value is None or "cannot run" in value else value
                    if len(set(labels.values())) > 1:
                        matrix_lines.append(f"- {kind}, set in {set_point}, read at {column}: " + spread(labels))
    return [
        "Variant × path cells whose verdict changes across stacks:",
        "",
        *(lines or ["- none: every variant gives the same verdict on every path on every stack that ran"]),
        "",
        "Propagation-matrix cells (mechanism, set point, read point) that change across stacks:",
        "",
        *(matrix_lines or ["- none: the matrix is the same on every stack that ran"]),
    ]


def spread(labels: dict[str, str]) -> str:
    """`leak` on a, b; `ok` on c: stacks grouped by label."""
    groups: dict[str, list[str]] = {}
    for stack, label in labels.items():
        groups.setdefault(label, []).append(stack)
    return "; ".join(f"`{label}` on {', '.join(stacks)}" for label, stacks in groups.items())


def server_behaviour(result: dict) -> str:
    """What the stack's own uvicorn does to the plain ContextVar approach, computed from its hunt (never written by
    hand: a hand-written note on a release drifted from the data once)."""
    (variant,) = registry.tagged(registry.PLAIN_CONTEXTVAR)
    row = cells(result, variant)
    by_label: dict[str, list[str]] = {}
    for config in hunt_configs(result):
        by_label.setdefault(row.get(config, NOT_RUN), []).append(config)
    said = "; ".join(f"{label} on {', '.join(configs)}" for label, configs in by_label.items())
    return f"`{variant}`: {said}" if said else "-"


def stacks_lines(results: list[dict]) -> list[str]:
    (variant,) = registry.tagged(registry.PLAIN_CONTEXTVAR)
    lines = [
        "| stack | Python | FastAPI | Starlette | uvicorn | anyio | pydantic | `--reset-contextvars` "
        f"| what its uvicorn does to `{variant}` (from its hunt) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        stack, env = result["stack"], result.get("environment", {})
        if result.get("status") != "ran":
            status = result.get("status", "skipped")
            lines.append(f"| {stack['name']} | {stack['python']} | | | | | | | {status}: {result.get('note', '')} |")
            continue
        packages = env.get("packages", {})
        reset = (result.get("hunt") or {}).get("reset_flag")
        row = [stack["name"], env.get("python"), *(packages.get(p) for p in ("fastapi", "starlette", "uvicorn"))]
        row += [packages.get("anyio"), packages.get("pydantic"), {True: "yes", False: "no"}.get(reset, "-")]
        lines.append("| " + " | ".join(str(v) for v in row) + f" | {server_behaviour(result)} |")
    return lines


def grid_lines(results: list[dict]) -> list[str]:
    """The heatmap as text: per stack and variant, the paths that are not ok."""
    ran = [r for r in results if r.get("status") == "ran"]
    variants = variants_of(ran)
    lines = ["| stack | " + " | ".join(f"`{v}`" for v in variants) + " |", "|---" * (len(variants) + 1) + "|"]
    for result in ran:
        row = []
        for variant in variants:
            found = cells(result, variant)
            if verdict(found) == NOT_RUN:
                row.append(NOT_RUN)
                continue
            bad = {}
            for path, label in found.items():
                if label not in (OK, NA):
                    bad.setdefault(label, []).append(INPROCESS.get(path, path).replace("in-process ", ""))
            if not bad and verdict(found) == INCONCLUSIVE:
                row.append(f"{INCONCLUSIVE}: leak hunt not run")  # every in-process path ok is not a verdict
                continue
            row.append("ok" if not bad else "; ".join(f"{label}: {', '.join(p)}" for label, p in bad.items()))
        lines.append(f"| {result['stack']['name']} | " + " | ".join(row) + " |")
    return lines


def versions_section(results_dir: Path = resultfiles.RESULTS) -> list[str]:
    """The version-matrix page's lines, links relative to results/ (empty when no stack has results)."""
    results = load(results_dir)
    if not results:
        return []
    chart_path = (resultfiles.CHARTS_DIR / CHART_NAME).relative_to(resultfiles.RESULTS)
    hunt = next((r["hunt"] for r in results if isinstance(r.get("hunt"), dict) and "runs" in r["hunt"]), {})
    return [
        "## Which versions leak: the version matrix",
        "",
        "Generated by `make versions` from `results/versions/*.json`. Each stack is its own virtualenv built from a "
        "committed lock (`stacks/`); in it run the in-process verdicts, the propagation matrix, and a real-server "
        f"leak hunt (the stack's uvicorn, every load scenario at once, per variant × server configuration until each "
        f"scenario has a leak or {hunt.get('stop_at', '?')} requests, at most {hunt.get('duration_s', '?')} s). "
        "*Correct*: no leak and no loss in-process with concurrent requests and on the "
        "stack's real uvicorn in both default configurations; *correct only with `--reset-contextvars`*: clean on "
        "the `-reset` server runs where the stack's uvicorn has the flag; *inconclusive*: nothing leaked or was lost "
        "where it was measured, but a judged path was not (it could not run, its server died, the hunt was skipped): "
        "no verdict. A leak seen anywhere is reported even if another path could not run. "
        "The in-process one-connection paths model "
        "a server that starts the next request in the previous one's context; they are shown, not judged, since "
        "what a stack's server really does is measured by its own runs.",
        "",
        *approach_lines(results),
        "",
        f"![version matrix: stack × variant × path]({chart_path})",
        "",
        *stacks_lines(results),
        "",
        *grid_lines(results),
        "",
        *changing_lines(results),
    ]


def render(results_dir: Path = resultfiles.RESULTS) -> list[Path]:
    """The heatmap under charts/ and versions/VERSIONS.md, from the raw per-stack JSON alone."""
    results = load(results_dir)
    if not results:
        return []
    written = []
    drawn = chart(results, results_dir / "charts" / CHART_NAME)
    if drawn:
        written.append(drawn)
    text = "\n".join(["# Version matrix", "", *versions_section(results_dir)[2:]]) + "\n"
    written.append(resultfiles.write_page(results_dir, Path("versions") / VERSIONS_MD, text))
    return written
