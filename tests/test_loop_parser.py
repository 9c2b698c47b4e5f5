"""Which of loop and parser a leak path follows is computed from the cells, and says so only when the runs tell."""

from __future__ import annotations

from scripts.report import loop_parser

ASYNCIO_H11, ASYNCIO_HTTPTOOLS = ("asyncio", "h11"), ("asyncio", "httptools")
UVLOOP_H11, UVLOOP_HTTPTOOLS = ("uvloop", "h11"), ("uvloop", "httptools")
ALL = {ASYNCIO_H11, ASYNCIO_HTTPTOOLS, UVLOOP_H11, UVLOOP_HTTPTOOLS}


def test_a_path_that_leaks_on_one_loop_with_either_parser_follows_the_loop() -> None:
    assert loop_parser.follows({ASYNCIO_H11, ASYNCIO_HTTPTOOLS}, ALL) == "loop"


def test_a_path_that_leaks_with_one_parser_on_either_loop_follows_the_parser() -> None:
    assert loop_parser.follows({ASYNCIO_H11, UVLOOP_H11}, ALL) == "parser"


def test_everywhere_nowhere_and_what_the_runs_cannot_tell() -> None:
    assert loop_parser.follows(ALL, ALL) == "both"
    assert loop_parser.follows(set(), ALL) == "none"
    assert loop_parser.follows({ASYNCIO_H11}, ALL) is None  # one pair alone: neither the loop nor the parser
    assert loop_parser.follows({ASYNCIO_H11}, {ASYNCIO_H11, UVLOOP_HTTPTOOLS}) is None  # loop and parser both changed


def test_the_report_lines_come_from_the_grid() -> None:
    def cell(server: str, scenario: str, leak: int) -> dict:
        return {"variant": "contextvar_asgi", "scenario": scenario, "server": server, "leak": leak}

    servers = {"asyncio-h11": 1, "asyncio-httptools": 1, "uvloop-h11": 0, "uvloop-httptools": 0}
    grid = [cell(server, "post", leak) for server, leak in servers.items()]
    grid += [cell(server, "pipeline", 5) for server in servers]
    text = "\n".join(loop_parser.lines({"leak_grid": grid}))
    assert "read path (large request bodies): `contextvar_asgi` follows the event loop (asyncio)" in text
    assert "send path (pipelined requests): `contextvar_asgi` leaks on every loop and parser" in text
