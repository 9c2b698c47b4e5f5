"""contextvar_snapshot keeps what the app set at startup and nothing another request set; broken copies are caught.

tests/test_isolation.py runs every guarantee of the fresh-Context fix against the snapshot middleware too (child
tasks, the threadpool, streaming, background tasks, exceptions, disconnects, cancellation). Here: what only the
snapshot does, each check proven by a deliberately broken version it must catch: one that runs requests in an empty
Context (caught dropping the startup values) and two that take their snapshot where a request has run (caught
leaking another request's value).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from apps import contextvar_snapshot
from apps.contextvar_snapshot import SnapshotContextMiddleware
from apps.harness import conformance, registry
from tests.test_isolation import STALE, probe, serve

startup_probe: ContextVar[str] = ContextVar("startup_probe")  # no default: only a set() at startup shows it
AT_STARTUP = "set-at-startup"
OTHER = "another request's value"


def started(middleware: type[SnapshotContextMiddleware]) -> Callable[[ASGIApp], ASGIApp]:
    """The middleware built as a server builds it: in the Context the app's startup left (here: one value set)."""

    def build(app: ASGIApp) -> ASGIApp:
        startup = contextvars.Context()
        startup.run(startup_probe.set, AT_STARTUP)
        return startup.run(middleware, app)

    return build


def taking_its_copy_from(make: Callable[[], contextvars.Context], doc: str) -> type[SnapshotContextMiddleware]:
    """A broken SnapshotContextMiddleware whose requests start in a copy of `make()` instead of its startup Context."""

    class Broken(SnapshotContextMiddleware):
        @property
        def startup(self) -> contextvars.Context:
            return make()

        @startup.setter
        def startup(self, value: contextvars.Context) -> None:
            pass

    Broken.__doc__ = doc
    return Broken


EmptyContext = taking_its_copy_from(
    contextvars.Context, "Broken: an empty Context for every request (what the fresh-Context fix and the setting do)."
)
SnapshotPerRequest = taking_its_copy_from(
    contextvars.copy_context,
    "Broken: the snapshot taken at each request, of the Context the server started it in (the previous one's).",
)


def check_startup_kept(middleware: Callable[[ASGIApp], ASGIApp]) -> list[str]:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["startup"], seen[OTHER] = startup_probe.get(None), probe.get()
        await asyncio.sleep(0)
        seen["startup, later step"] = startup_probe.get(None)
        seen["startup, child task"] = await asyncio.create_task(asyncio.to_thread(startup_probe.get, None))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    served = serve(middleware, app)
    problems = [f"raised {served.error!r}"] if served.error is not None else []
    problems += [f"{where}: {value!r}" for where, value in seen.items() if value != AT_STARTUP and "startup" in where]
    if seen.get(OTHER) is not None:
        problems.append(f"saw {OTHER} {seen[OTHER]!r}")
    return problems


def test_the_startup_values_are_kept_and_no_other_requests() -> None:
    assert check_startup_kept(started(SnapshotContextMiddleware)) == []


def test_an_empty_context_copy_is_caught_dropping_the_startup_values() -> None:
    problems = check_startup_kept(started(EmptyContext))
    assert any("startup" in problem and "None" in problem for problem in problems), problems


def test_a_snapshot_taken_where_a_request_ran_is_caught_leaking() -> None:
    problems = check_startup_kept(started(SnapshotPerRequest))
    assert any(STALE in problem for problem in problems), problems


# --- The conformance gate, through the registry's variant, catches the same broken copies -------------------------
@pytest.fixture
def rebuilt(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[type[SnapshotContextMiddleware]], None]]:
    """Swap the variant's middleware class for a broken one; the app builds its stack again at its next call."""

    def swap(broken: type[SnapshotContextMiddleware]) -> None:
        monkeypatch.setattr(contextvar_snapshot.app, "middleware_stack", None)
        for middleware in contextvar_snapshot.app.user_middleware:
            if middleware.cls is SnapshotContextMiddleware:
                monkeypatch.setattr(middleware, "cls", broken)

    yield swap


class SnapshotInsideTheFirstRequest(SnapshotContextMiddleware):
    """Broken: the snapshot taken inside the first request, after its values were set, and kept for the rest."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not getattr(self, "taken", False):
            self.taken = True
            inner = self.app

            async def app_taking_the_snapshot(scope: Scope, receive: Receive, send: Send) -> None:
                self.startup = contextvars.copy_context()
                await inner(scope, receive, send)

            self.app = app_taking_the_snapshot
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.app = inner
            return
        await super().__call__(scope, receive, send)


@pytest.mark.parametrize(
    ("broken", "scenario", "caught"),
    [
        (EmptyContext, registry.CONCURRENT, ":dropped"),
        (SnapshotPerRequest, registry.KEEPALIVE, "entry.request_id:leak"),
        (SnapshotInsideTheFirstRequest, registry.CONCURRENT, ".request_id:leak"),
    ],
    ids=["empty_context", "per_request", "inside_the_first_request"],
)
def test_the_gate_catches_a_broken_snapshot(
    broken: type[SnapshotContextMiddleware], scenario: str, caught: str, rebuilt: Callable[..., None]
) -> None:
    variant = registry.get("contextvar_snapshot")
    rebuilt(broken)
    found = conformance.verdicts(variant, scenario, count=60)
    assert conformance.problems(variant, found, variant.expected_in(scenario))
    assert any(caught in name for name in found), sorted(found)


def test_the_real_snapshot_passes_the_same_gate(rebuilt: Callable[..., None]) -> None:
    variant = registry.get("contextvar_snapshot")
    rebuilt(SnapshotContextMiddleware)  # built again at the next call, as a freshly started server does
    for scenario in registry.SCENARIOS:
        found = conformance.verdicts(variant, scenario, count=60)
        assert conformance.problems(variant, found, variant.expected_in(scenario)) == [], scenario


def test_the_readme_copy_keeps_the_startup_values_and_no_other_requests() -> None:
    from tests.test_isolation import readme_middleware

    assert check_startup_kept(started(readme_middleware())) == []  # type: ignore[arg-type]
