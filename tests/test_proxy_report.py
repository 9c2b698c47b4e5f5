"""The report's "Behind a reverse proxy" section and the HTTP/2 table, from a summary alone; the grids they read."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.load import loadstats, verdicts
from scripts.report import proxy


def cell(variant: str, server: str, front: str, scenario: str, leak: int, cross: int) -> dict:
    return {"variant": variant, "server": server, "front": front, "scenario": scenario, "requests": 100} | {
        "leak": leak,
        "cross_client": cross,
    }


def test_the_section_sums_scenarios_per_front_and_is_absent_without_a_proxy_run() -> None:
    grid = [
        cell("v", "uvloop-httptools", "direct", "get", 0, 0),
        cell("v", "uvloop-httptools", "nginx", "get", 5, 2),
        cell("v", "uvloop-httptools", "nginx", "stream", 7, 3),
        cell("v", "uvloop-httptools-reset", "nginx", "get", 0, 0),
    ]
    lines = proxy.section({"front_grid": grid})
    assert lines[0] == "## Behind a reverse proxy"
    assert "| approach | server | direct | nginx |" in lines
    assert "| `v` | `uvloop-httptools` | 0 / 0 / 100 | 5 / 12 / 200 |" in lines
    assert "| `v` | `uvloop-httptools-reset` | - | 0 / 0 / 100 |" in lines
    assert proxy.section({"front_grid": grid[:1]}) == [] and proxy.section(None) == []


def run(front: str | None, leak: int, cross: int) -> tuple[str, dict]:
    data = {
        "run": {"variant": "v", "scenario": "get", "config": {"label": "uvloop-httptools"}},
        "variant_category": "pitfall",
        "failures_total": {"requests": 10, "failed_requests": leak, "leak": leak, "lost": 0, "other": 0,
                           "failures": {"entry.user_id:leak": leak} if leak else {},
                           "cross_client": cross, "origins": {"other_client": cross} if cross else {}},
    }  # fmt: skip
    if front is not None:  # runs written before fronts existed carry none: they were direct
        data["run"]["front"] = {"label": front}
    return f"{front}.json", data


def test_the_summary_keeps_direct_runs_in_the_leak_grid_and_every_front_in_the_front_grid() -> None:
    runs = [run(None, 0, 0), run("direct", 1, 0), run("nginx", 4, 3), run("nginx", 2, 1)]
    assert [loadstats.front_of(data) for _, data in runs] == ["direct", "direct", "nginx", "nginx"]
    (direct,) = loadstats.leak_grid(loadstats.direct_only(runs))
    assert direct["runs"] == 2 and direct["leak"] == 1 and "front" not in direct
    by_front = {cell["front"]: cell for cell in loadstats.leak_grid(runs, by_front=True)}
    assert by_front["nginx"]["cross_client"] == 4 and by_front["nginx"]["leak"] == 6 and by_front["nginx"]["runs"] == 2
    assert by_front["direct"]["runs"] == 2 and by_front["direct"]["cross_client"] == 0
    assert by_front["nginx"]["origins"] == {"other_client": 4}


def grid_cell(server: str, front: str, failures: dict[str, int]) -> dict:
    leak = sum(failures.values())
    return {"variant": "v", "server": server, "scenario": "get", "front": front, "failures": failures, "leak": leak,
            "lost": 0, "requests": 100, "cross_client": 0}  # fmt: skip


def test_server_verdicts_take_the_fronts_into_account_and_match_twins_behind_the_same_front() -> None:
    entry = {"entry.user_id:leak": 3}
    direct = [grid_cell("uvloop-httptools", "direct", {}), grid_cell("uvloop-httptools-reset", "direct", {})]
    nginx = [grid_cell("uvloop-httptools", "nginx", entry), grid_cell("uvloop-httptools-reset", "nginx", {})]
    leak_grid = [{k: v for k, v in c.items() if k not in ("front", "cross_client")} for c in direct]
    load = {"leak_grid": leak_grid, "front_grid": direct + nginx}
    assert verdicts.per_server({"leak_grid": leak_grid})[("v", "uvicorn")].verdict == verdicts.CORRECT
    assert verdicts.per_server(load)[("v", "uvicorn")].verdict == verdicts.CORRECT_WITH
    assert verdicts.per_server(load, proxies_only=True)[("v", "uvicorn")].verdict == verdicts.CORRECT_WITH
    # the fixed twin measured only directly does not vouch for the proxied default
    lonely = {"leak_grid": leak_grid, "front_grid": [*direct, nginx[0]]}
    assert verdicts.per_server(lonely)[("v", "uvicorn")].verdict == verdicts.STALE_AT_ENTRY


def test_http2_cells_are_summed_per_target_and_shown(tmp_path: Path) -> None:
    (tmp_path / loadstats.H2_DIR).mkdir()
    for index, leak in enumerate((0, 3)):
        data = {
            "kind": "h2",
            "run": {"variant": "v", "target": "t-h2c", "transport": "h2c", "front": {"label": "direct"},
                    "server": {"label": "hypercorn-asyncio"}},
            "requests": 64, "leak": leak, "lost": 0, "other": 0, "cross_stream": 1 if leak else 0,
            "http_versions": {"HTTP/2": 64},
        }  # fmt: skip
        (tmp_path / loadstats.H2_DIR / f"{index}.json").write_text(json.dumps(data))
    (row,) = loadstats.h2_cells(tmp_path)
    assert (row["runs"], row["requests"], row["leak"], row["cross_stream"]) == (2, 128, 3, 1)
    assert row["http_versions"] == {"HTTP/2": 128}
    lines = proxy.section({"h2": [row]})
    assert lines[0].startswith("## HTTP/2") and "| `v` | `t-h2c` | 1 / 3 / 128 |" in lines


def test_the_first_screen_says_per_approach_where_another_clients_data_came_through() -> None:
    grid = [
        cell("contextvar_asgi", "uvloop-httptools", "nginx", "get", 5, 2),
        cell("contextvar_asgi", "uvloop-httptools", "haproxy", "stream", 7, 3),
        cell("contextvar_asgi", "uvloop-httptools-reset", "nginx", "get", 0, 0),
        cell("explicit", "uvloop-httptools", "nginx", "get", 0, 0),
        cell("global_state", "daphne", "nginx", "get", 9, 4),
    ]
    lines = proxy.answer_lines({"front_grid": grid})
    assert lines[0].startswith("**Behind a reverse proxy** (nginx, haproxy)")
    assert "- `contextvar_asgi`: uvicorn 5 (of 300 requests); none with the fresh-Context setting" in lines
    assert "- `explicit`: none, on any server behind any proxy (100 requests)" in lines
    assert "- `global_state` (control): daphne 4 (of 100 requests)" in lines
    assert proxy.answer_lines({"front_grid": grid[:0]}) == []
