"""Which of uvicorn's event loop and HTTP parser each leak path follows, computed from the hunt's direct cells."""

from __future__ import annotations

from apps.harness import registry
from loadtests import scenarios
from scripts.load import servers as serverconfig

# A leak path and the load scenario that drives it: the send path (a next request started inside the previous one's
# final `send`) by pipelining, the read path (the socket reader resumed inside a request's body read) by large bodies.
PATHS = {"send path (pipelined requests)": scenarios.PIPELINE, "read path (large request bodies)": scenarios.POST}
# Why, where the runs show it (the code path, read from the installed uvicorn 0.54, asyncio and uvloop):
WHY = {
    ("send path (pipelined requests)", "both"): (
        "both parsers start a queued request from `on_response_complete`, called inside the previous request's "
        "final `send` (`uvicorn/protocols/http/httptools_impl.py` `HttpToolsProtocol.on_response_complete` -> "
        "`_start_asgi_task`; `h11_impl.py` `H11Protocol.handle_events`): `loop.create_task` copies that context on "
        "either loop"
    ),
    ("read path (large request bodies)", "loop"): (
        "both parsers resume a paused reader from inside the request (`RequestResponseCycle.receive` -> "
        "`FlowControl.resume_reading`); asyncio's `_SelectorSocketTransport.resume_reading` -> `_add_reader` builds a "
        "`Handle` that copies the current context, so later `data_received` calls and the next request's task run in "
        "it; uvloop's stream keeps the context fixed at accept (`handles/stream.pyx`)"
    ),
}


def _loop_and_parser(label: str) -> tuple[str, str] | None:
    config = serverconfig.get(label)
    if config.kind != "uvicorn" or config.reset_setting or "--workers" in config.options:
        return None
    options = dict(zip(config.options[::2], config.options[1::2], strict=False))
    return options.get("--loop", ""), options.get("--http", "")


def follows(leaking: set[tuple[str, str]], ran: set[tuple[str, str]]) -> str | None:
    """'loop', 'parser', 'both' (every configuration), 'none', or None when the runs do not tell."""
    if not ran or not any(len({pair[i] for pair in ran}) > 1 for i in (0, 1)):
        return None
    if leaking == ran:
        return "both"
    if not leaking:
        return "none"
    for index, name in ((0, "loop"), (1, "parser")):
        values = {pair[index] for pair in leaking}
        other = {pair[1 - index] for pair in leaking}  # it leaked with more than one of the other: that one is moot
        if len(values) == 1 and len(other) > 1 and leaking == {pair for pair in ran if pair[index] in values}:
            return name
    return None


def lines(load: dict | None) -> list[str]:
    """One bullet per leak path: where the plain ContextVar approach leaked among uvicorn's loop × parser pairs."""
    (variant,) = registry.tagged(registry.PLAIN_CONTEXTVAR)
    out = []
    for path, scenario in PATHS.items():
        cells = [
            (pair, cell["leak"] > 0)
            for cell in (load or {}).get("leak_grid", [])
            if cell["variant"] == variant and cell["scenario"] == scenario
            for pair in [_loop_and_parser(cell["server"])]
            if pair
        ]
        ran = {pair for pair, _ in cells}
        leaking = {pair for pair, leaked in cells if leaked}
        verdict = follows(leaking, ran)
        if verdict is None:
            continue
        where = ", ".join(f"{loop}-{parser}" for loop, parser in sorted(leaking)) or "none"
        said = {
            "both": "leaks on every loop and parser",
            "none": "leaks on no loop and parser",
            "loop": f"follows the event loop ({', '.join(sorted({p[0] for p in leaking}))}), not the parser",
            "parser": f"follows the parser ({', '.join(sorted({p[1] for p in leaking}))}), not the loop",
        }[verdict]
        why = WHY.get((path, verdict))
        out.append(f"- {path}: `{variant}` {said} (leaked on: {where})" + (f"; why: {why}." if why else "."))
    if out:
        out = ["Which of uvicorn's loop and parser each leak path follows (from the hunt's direct cells):", "", *out]
    return out
