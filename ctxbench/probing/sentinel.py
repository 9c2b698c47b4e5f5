"""The probe's sentinel: an outermost ASGI wrapper, stdlib only, run by file path in the user's own interpreter.

It is copied into a temporary directory as `ctxbench_probe_sentinel.py` (a name no service uses) and served as
`ctxbench_probe_sentinel:app`: it never imports ctxbench, which lives in another interpreter (the installed tool's, or
the clone's, whose top-level `apps` and `scripts` would collide with the user's). It is kept importable by Python
3.8+ because the user's interpreter may be older than ctxbench's.

What it does, per process (a server with several workers has one sentinel each, one report file each):
- Baseline: the Context of the very first request this process serves. That is the readiness request the driver
  sends on a fresh connection of the freshly started server, answered by the sentinel itself (the app may have no
  health endpoint), so it is exactly "what a request sees on a fresh connection of a fresh server", including
  anything set at import time. Each of its ContextVars is listed (name, module, type, a hash of its repr with memory
  addresses masked), so the driver can compare it with another server's baseline. A snapshot taken before any
  request (e.g. in the lifespan) would not do: servers run the lifespan in a task of its own, whose Context is not
  the one requests are started in.
- Every later request: before any of the app runs, `contextvars.copy_context()` is compared with the baseline; a
  ContextVar that is absent from the baseline or holds another value (neither the same object nor equal) is stale.
- Stale, but not used: an app may run each request in a Context of its own (e.g. contextvar_isolated's outermost
  middleware), so the stale context the server hands over is never visible to any of its code. A private marker
  ContextVar set by the sentinel on stale requests tells the two apart at the app's first receive/send: marker there,
  the app runs in (a copy of) the stale context and the finding counts; marker gone, the request is counted as
  "isolated" and does not fail the probe, unless code of the app read a stale ContextVar (`ContextVar.get`, or
  `contextvars.copy_context()`, which reads them all) in the handed-over context before or after its fresh Context
  (an outer access-log or request-id middleware): those values count, as "read before the app's fresh Context". To
  see those reads, a stale request's app is stepped in a Context the sentinel holds (same task, same values, copied
  back to the task's own Context at the end) with a profile hook on those steps only. The stale entry values count
  even if the app overwrites them later: code that runs before the overwrite sees them. At the response's final
  message each one is triaged: `kept` (still the entry value: the whole request saw another request's state) or
  `replaced` (the app set it: only code before the set saw the stale value).
- Shared objects: a value that is the baseline's own object (a ContextVar set at import to a dict that requests
  mutate) is never stale, but every request sees what the previous ones put in it: such values are searched for
  other requests' identity values at the entry of every request, and a hit is a data-level leak ("shared").
- Data-level leaks: the driver sends a fresh value (a UUID, 32 hex digits or `ctxp-<16 hex>`, `--identity-format`)
  in each `--identity-header` on alternate
  requests; a stale value whose repr/str contains such a value that this process received in another request is a
  value of one request visible inside another.
- Findings go to `report-<pid>.json` in CTXBENCH_PROBE_DIR (rewritten atomically), failures to `status-<pid>.json`.
- Its own bookkeeping never fails a request: a value or ContextVar it cannot describe is recorded as such and the
  finding is kept; any other failure of its own is counted (`sentinel_errors`), which makes the row inconclusive.
- `python ctxbench_probe_sentinel.py --preflight MODULE...` imports the app once and says which MODULEs (the
  servers and their loops/parsers) are importable in this interpreter, and the versions of the distributions named in
  CTXBENCH_PROBE_VERSIONS, as one JSON line, without a traceback.
"""

from __future__ import annotations

import collections
import contextvars
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import time
import traceback
import types
from typing import Any

APP_ENV = "CTXBENCH_PROBE_APP"
DIR_ENV = "CTXBENCH_PROBE_DIR"
IDENTITY_ENV = "CTXBENCH_PROBE_IDENTITY"  # comma-separated lower-case header names
SHOW_VALUES_ENV = "CTXBENCH_PROBE_SHOW_VALUES"
TRACEBACK_ENV = "CTXBENCH_PROBE_TRACEBACK"  # non-empty: errors of the app carry their whole traceback
MAX_ERROR_LINES = 8  # of an app's exception message: a pydantic error names its fields in the first lines
MAX_ERROR_LINE_CHARS = 300
PREFIX = "/__ctxbench_probe__/"
READY_PATH = PREFIX + "ready"
FLUSH_PATH = PREFIX + "flush"
PHASE_HEADER = b"x-ctxbench-probe-phase"  # which traffic a request belongs to; removed before the app sees it
CLIENT_HEADER = b"x-ctxbench-probe-client"  # which client sent it (a connection of the probe); removed the same way
MAX_TRACKED_TOKENS = 200_000  # identity value -> its client: bounded, whatever the request count
IDENTITY_FORMAT_ENV = "CTXBENCH_PROBE_IDENTITY_FORMAT"
VERSIONS_ENV = "CTXBENCH_PROBE_VERSIONS"  # comma-separated distributions whose versions the preflight reports
# What the driver's identity values look like (`--identity-format`), and how the sentinel finds them in any text.
# uuid by default: request-id libraries (asgi-correlation-id's validator) drop a header value that is not a UUID.
IDENTITY_PATTERNS = {
    "uuid": r"(?<![0-9a-f])[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}(?![0-9a-f])",
    "hex": r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])",
    "token": r"ctxp-[0-9a-f]{16}",
}
DEFAULT_IDENTITY_FORMAT = "uuid"
TOKEN_RE = re.compile(IDENTITY_PATTERNS["token"])
MAX_TEXT = 65536  # of a value's repr/str scanned for identity values: a huge value must not stall the server
VALUE_PREVIEW = 200
# The sentinel's only ContextVar, set on stale requests alone, to tell whether the app runs in the context it is handed.
MARKER: contextvars.ContextVar = contextvars.ContextVar("ctxbench_probe_marker")
COUNT_WRITE_INTERVAL_S = 0.2  # request counts alone are rewritten at most this often; findings at once
# Values of these types cannot change in place: a baseline object of one of them cannot carry another request's data.
IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), frozenset, range)
STALE, SHARED = "stale", "shared"
LOOP_MODULES = ("asyncio", "uvloop", "concurrent.futures")  # they copy a context for a callback; they read nothing


def _last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _exception_text(text: str) -> str:
    """The exception part of a formatted traceback (Starlette sends one as lifespan.startup.failed), else the text."""
    lines = str(text).splitlines()
    if not any(line.startswith("Traceback (most recent call last)") for line in lines):
        return str(text)
    frames = [index for index, line in enumerate(lines) if line.startswith("  File ")]
    start = frames[-1] + 1 if frames else 0
    while start < len(lines) and (lines[start].startswith("    ") or not lines[start].strip()):
        start += 1  # the frame's source line and its carets
    return "\n".join(lines[start:])


def _bounded(text: str) -> str:
    """A message of a few lines: the first MAX_ERROR_LINES non-empty lines, each cut at MAX_ERROR_LINE_CHARS."""
    lines = [line.rstrip()[:MAX_ERROR_LINE_CHARS] for line in str(text).splitlines() if line.strip()]
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[:MAX_ERROR_LINES], f"... ({len(lines) - MAX_ERROR_LINES} more lines; --traceback shows all)"]
    return "\n".join(lines)


def describe_error(exc: BaseException) -> str:
    """`Type: message` bounded to a few lines, or the whole traceback when the user asked for it (--traceback)."""
    if os.environ.get(TRACEBACK_ENV):
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return _bounded(f"{type(exc).__name__}: {exc}")


def _write_json(name: str, data: dict) -> None:
    folder = os.environ.get(DIR_ENV)
    if not folder:
        return
    path = os.path.join(folder, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(tmp, path)  # the driver never reads half a file


def _fail(message: str) -> None:
    _write_json(f"status-{os.getpid()}.json", {"error": message})


def load_app(spec: str) -> Any:
    """`module:attribute` (dotted attributes allowed), with one-line errors."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"app must be MODULE:APP, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except BaseException as exc:  # SystemExit at import time included: report it, never a traceback
        raise ImportError(f"cannot import {module_name!r}: {describe_error(exc)}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise ImportError(f"{spec!r} is not an ASGI app (not callable)")
    return target


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _text(value: object) -> str:
    parts = []
    for render in (repr, str):
        try:
            parts.append(render(value)[:MAX_TEXT])
        except Exception:  # a value whose repr raises is still reported, by type and hash
            pass
    return "\n".join(parts)


# The object-graph search for other requests' identity values (a Sentry Scope's repr shows none of the request data
# its event processors hold): at most WALK_MAX_NODES objects, at most WALK_MAX_DEPTH steps from the stale value.
WALK_MAX_NODES = 5000
MAX_DATA_PATHS = 5  # distinct paths kept per stale ContextVar
WALK_MAX_DEPTH = 12
_NOT_WALKED = (type, types.ModuleType, contextvars.ContextVar, contextvars.Context)


def _key(key: object) -> str:
    return repr(key)[:40] if type(key) in (str, bytes, int, float, bool) else f"<{type(key).__name__} key>"


def _members(obj: object) -> list[tuple[str, object]]:
    """(path step, child) of an object, read only through C-level slots and real __dict__s: no property, no
    __getattr__, no __repr__ of the user's runs here."""
    kind = type(obj)
    if isinstance(obj, dict):
        children: list[tuple[str, object]] = []
        for key, item in dict.items(obj):
            children.append((f"[{_key(key)}]", item))
            if type(key) in (str, bytes):
                children.append((f"<key {_key(key)}>", key))
        return children
    if isinstance(obj, list):
        return [(f"[{index}]", item) for index, item in enumerate(list.__iter__(obj))]
    if isinstance(obj, tuple):
        return [(f"[{index}]", item) for index, item in enumerate(tuple.__iter__(obj))]
    if isinstance(obj, collections.deque):
        return [(f"[{index}]", item) for index, item in enumerate(collections.deque.__iter__(obj))]
    if isinstance(obj, (set, frozenset)):
        method = set.__iter__ if isinstance(obj, set) else frozenset.__iter__
        return [("{...}", item) for item in method(obj)]
    if isinstance(obj, functools.partial):
        members = functools.partial.__dict__
        return [(f".{name}", members[name].__get__(obj, kind)) for name in ("func", "args", "keywords")]
    if kind is types.MethodType:
        return [(".__self__", types.MethodType.__self__.__get__(obj)), (".__func__", obj.__func__)]
    if kind is types.FunctionType:
        closure = types.FunctionType.__closure__.__get__(obj) or ()
        names = obj.__code__.co_freevars
        children = []
        for name, cell in zip(names, closure):  # noqa: B905 - zip(strict=) is 3.10+, the sentinel runs on 3.8
            try:
                children.append((f".<closure {name}>", cell.cell_contents))
            except ValueError:  # an empty cell
                pass
        return children
    children = []
    for klass in kind.__mro__:
        own = klass.__dict__
        descriptor = own.get("__dict__")
        if type(descriptor) is types.GetSetDescriptorType:
            try:
                namespace = descriptor.__get__(obj, kind)
            except Exception:
                namespace = None
            if isinstance(namespace, dict):
                children += [(f".{name}", item) for name, item in dict.items(namespace)]
        slots = own.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            member = own.get(name)
            if type(member) is types.MemberDescriptorType:
                try:
                    children.append((f".{name}", member.__get__(obj, kind)))
                except AttributeError:  # an unset slot
                    pass
    return children


def find_in_graph(value: object, pattern: Any) -> dict[str, str]:
    """Identity values (matches of `pattern`) in the strings and bytes reachable from `value`, each with the path
    where it was first found, e.g. `._event_processors[0].keywords['asgi_scope']['headers'][2][1]`."""
    found: dict[str, str] = {}
    seen: set[int] = set()
    queue: collections.deque = collections.deque([(value, "", 0)])
    nodes = 0
    while queue and nodes < WALK_MAX_NODES:
        obj, path, depth = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        nodes += 1
        if isinstance(obj, (str, bytes, bytearray)):
            text = obj[:MAX_TEXT] if isinstance(obj, str) else bytes(obj[:MAX_TEXT]).decode("latin-1")
            for token in pattern.findall(text):
                found.setdefault(token, path or "(the value itself)")
            continue
        if depth >= WALK_MAX_DEPTH or isinstance(obj, _NOT_WALKED) or type(obj) in (int, float, bool, type(None)):
            continue
        try:
            children = _members(obj)
        except Exception:  # an object that cannot be read without running its code: not searched further
            continue
        queue.extend((child, path + step, depth + 1) for step, child in children)
    return found


def _short_hash(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<unrepresentable {_type_name(value)}>"
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:12]


ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]+")


def _baseline_hash(value: object) -> str:
    """`_short_hash` with memory addresses masked: two server processes compare their baselines by it, and the default
    repr of one object (`<Config object at 0x7f...>`) differs between processes even when nothing else does."""
    try:
        text = repr(value)
    except Exception:
        text = f"<unrepresentable {_type_name(value)}>"
    masked = ADDRESS_RE.sub("0x?", text)
    return hashlib.sha256(masked.encode("utf-8", "replace")).hexdigest()[:12]


def _holds(container: object, var: contextvars.ContextVar) -> bool:
    if isinstance(container, dict):
        return any(item is var for item in list(container.values()))
    if isinstance(container, (list, tuple, set, frozenset)):
        return any(item is var for item in list(container))
    if isinstance(container, type):
        return any(item is var for item in list(vars(container).values()))
    return False


def creator_module(var: contextvars.ContextVar) -> str | None:
    """The module holding the ContextVar: a module global, else one level down (a dict, list, or class attribute).

    Limits: a ContextVar kept only in a closure, an instance, or deeper in a structure is not found (None); a module
    that merely re-imports the object may be named instead of the one that created it (first match wins, and the
    module whose name the ContextVar's own name does not help with is as good a guess as any).
    """
    modules = [(name, module) for name, module in list(sys.modules.items()) if module is not None]
    for name, module in modules:
        try:
            if any(item is var for item in list(vars(module).values())):
                return name
        except Exception:  # a module without a usable __dict__: skip it
            continue
    for name, module in modules:
        try:
            if any(_holds(item, var) for item in list(vars(module).values())):
                return name
        except Exception:  # isinstance() asks __class__, which a request proxy raises from: skip that module
            continue
    return None


class _ReadWatch:
    """A profile hook that notes reads of the suspect ContextVars: `ContextVar.get`, and `contextvars.copy_context()`
    called by code other than the event loop's (which copies a context for a callback, reading nothing). A read counts
    only in a context that carries the handed-over values (the sentinel's private marker is set there): code the app
    runs in a fresh Context of its own, inside the watched steps (an isolation that drives its downstream step by step
    in the same task), reads nothing stale, whatever value it gets."""

    def __init__(self, ids: set[int], marker: object) -> None:
        self.ids = ids
        self.marker = marker
        self.read: set[int] = set()
        self.everything = False
        self.active = True

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        if event != "c_call":
            return
        try:
            if MARKER.get(None) is not self.marker:  # hooks do not run inside a hook: this get is not watched
                return
            if arg is contextvars.copy_context:
                caller = str(frame.f_globals.get("__name__", ""))
                if not caller.startswith(LOOP_MODULES):
                    self.everything = True
            elif getattr(arg, "__name__", None) == "get":
                owner = id(getattr(arg, "__self__", None))
                if owner in self.ids:
                    self.read.add(owner)
        except Exception:  # the hook runs inside the app's code: it must never raise there
            pass


class _Stepped:
    """Runs a coroutine in the current task, every step of it inside `context`, watched by `watch` while it is active.

    The same task and the same values as awaiting the coroutine directly (a task the app or the server creates copies
    `context`, as it would have copied the task's own); `_adopt` copies the app's changes back at the end. The point
    is a live handle on the Context the app runs in, and a profile hook on those steps alone (not on other requests').
    """

    def __init__(self, coro: Any, context: contextvars.Context, watch: _ReadWatch) -> None:
        self.coro = coro
        self.context = context
        self.watch = watch

    def step(self, method: Any, arg: Any) -> Any:
        if not self.watch.active:
            return self.context.run(method, arg)
        previous = sys.getprofile()
        sys.setprofile(self.watch.hook)
        try:
            return self.context.run(method, arg)
        finally:
            sys.setprofile(previous)

    def __await__(self) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = self.step(self.coro.send, value) if error is None else self.step(self.coro.throw, error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = yield yielded
            except GeneratorExit:
                self.context.run(self.coro.close)
                raise
            except BaseException as exc:  # cancellation included: thrown into the app, as awaiting it would
                error = exc


def _final(message: Any) -> bool:
    """The last message of a response: the body without more to come, or a websocket close."""
    kind = message.get("type")
    return (kind == "http.response.body" and not message.get("more_body", False)) or kind == "websocket.close"


def _adopt(context: contextvars.Context) -> None:
    """Set in the current Context what the app left in `context`: as if it had run in this task's own Context."""
    current = contextvars.copy_context()
    for var, value in context.items():
        if var not in current or current[var] is not value:
            var.set(value)


class Sentinel:
    """Outermost ASGI wrapper: snapshot and compare before the app runs, then hand the request over untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.baseline: contextvars.Context | None = None
        self.baseline_vars: list[dict] = []
        names = os.environ.get(IDENTITY_ENV, "").split(",")
        self.identity = {name.strip().lower().encode("latin-1") for name in names if name.strip()}
        self.show_values = os.environ.get(SHOW_VALUES_ENV) == "1"
        pattern = os.environ.get(IDENTITY_FORMAT_ENV) or DEFAULT_IDENTITY_FORMAT
        self.token_re = re.compile(IDENTITY_PATTERNS.get(pattern, IDENTITY_PATTERNS[DEFAULT_IDENTITY_FORMAT]))
        self.seen_tokens: set[str] = set()
        self.requests: dict[str, int] = {}
        self.stale: dict[str, dict[str, dict]] = {}  # phase -> var key -> finding
        self.isolated: dict[str, int] = {}  # phase -> stale requests whose app ran in a Context of its own
        self.leaking_requests: dict[str, int] = {}  # phase -> requests that saw another request's identity value
        self.other_client_requests: dict[str, int] = {}  # phase -> ... a value another *client* sent
        self.token_clients: dict[str, str] = {}  # identity value -> the client that sent it
        # phase -> server-side connection (the peer address the server reports) -> requests it carried: behind a
        # proxy, whether the proxy reused its upstream connections (else nothing can carry over from one to the next)
        self.connections: dict[str, dict[str, int]] = {}
        self.modules: dict[contextvars.ContextVar, str | None] = {}
        self.errors: dict[str, int] = {}  # phase -> requests whose bookkeeping failed (never the request itself)
        self.last_error: str | None = None
        self.started_up = False
        self.last_write = 0.0

    def describe(self, var: contextvars.ContextVar, value: object) -> dict:
        """Name, module and type; whatever goes wrong here is recorded as such, never raised into a request."""
        try:
            if var not in self.modules:
                self.modules[var] = creator_module(var)
            module = self.modules[var]
        except Exception as exc:
            module = f"could not describe: {type(exc).__name__}"
        try:
            kind = _type_name(value)
        except Exception as exc:
            kind = f"could not describe: {type(exc).__name__}"
        return {"name": str(getattr(var, "name", "?")), "module": module, "type": kind}

    def baseline_entry(self, var: contextvars.ContextVar, value: object) -> dict:
        """What the baseline lists of one ContextVar: `describe`, and a hash the driver compares across servers."""
        entry = self.describe(var, value)
        try:
            entry["hash"] = _baseline_hash(value)
        except Exception as exc:
            entry["hash"] = f"could not describe: {type(exc).__name__}"
        return entry

    def failed(self, phase: str, exc: BaseException) -> None:
        """The sentinel's own failure: counted (the row is then inconclusive), never raised into the request."""
        self.errors[phase] = self.errors.get(phase, 0) + 1
        self.last_error = f"{type(exc).__name__}: {_last_line(str(exc))}"[:VALUE_PREVIEW]

    def report(self) -> dict:
        return {
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "baseline": self.baseline_vars,
            "requests": self.requests,
            "stale": self.stale,
            "leaking_requests": self.leaking_requests,
            "other_client_requests": self.other_client_requests,
            "requests_per_connection": {phase: sorted(counts.values()) for phase, counts in self.connections.items()},
            "isolated": self.isolated,
            "sentinel_errors": self.errors,
            "sentinel_last_error": self.last_error,
        }

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_write >= COUNT_WRITE_INTERVAL_S:
            self.last_write = now
            _write_json(f"report-{os.getpid()}.json", self.report())

    def foreign(self, value: object, own: set[str]) -> set[str]:
        """Identity values of other requests that this value holds (its object graph, or its repr/str)."""
        return set(self.foreign_paths(value, own))

    def foreign_paths(self, value: object, own: set[str]) -> dict[str, str]:
        """Other requests' identity values in this value -> where: a path in its object graph, else "repr"."""
        if not self.seen_tokens:
            return {}
        found = {t: path for t, path in find_in_graph(value, self.token_re).items() if t in self.seen_tokens}
        # the repr too: a C object whose data the graph search cannot reach may still show it there
        for token in self.token_re.findall(_text(value)):
            if token in self.seen_tokens:
                found.setdefault(token, "repr")
        for token in own:
            found.pop(token, None)
        return found

    def suspects_at_entry(self, context: contextvars.Context, own: set[str]) -> list[tuple[Any, object, str]]:
        """Stale ContextVars (absent from the baseline or holding another value, neither the same object nor equal),
        and baseline objects that hold another request's identity value (a shared mutable object)."""
        assert self.baseline is not None
        suspects: list[tuple[Any, object, str]] = []
        for var, value in context.items():
            if var is MARKER:
                continue
            if var in self.baseline:
                old = self.baseline[var]
                if old is value:
                    if not issubclass(type(value), IMMUTABLE) and self.foreign(value, own):
                        suspects.append((var, value, SHARED))
                    continue
                try:
                    if bool(old == value):
                        continue
                except Exception:  # an __eq__ that raises: the values are not the same
                    pass
            suspects.append((var, value, STALE))
        return suspects

    def record(
        self, phase: str, suspects: list[tuple[Any, object, str]], own: set[str], client: str, read: bool = False
    ) -> None:
        leaked, foreign_client = False, False
        for var, value, kind in suspects:
            try:
                found, other = self.record_one(phase, var, value, kind, own, client, read)
                leaked, foreign_client = leaked or found, foreign_client or other
            except Exception as exc:  # never into the request; the row becomes inconclusive
                self.failed(phase, exc)
        if leaked:
            self.leaking_requests[phase] = self.leaking_requests.get(phase, 0) + 1
        if foreign_client:
            self.other_client_requests[phase] = self.other_client_requests.get(phase, 0) + 1

    def record_one(
        self, phase: str, var: Any, value: object, kind: str, own: set[str], client: str, read: bool
    ) -> tuple[bool, bool]:
        """Count one stale value; (it held another request's identity value, ... one another client sent)."""
        key = f"{var.name}@{id(var)}"
        finding = self.stale.setdefault(phase, {}).get(key)
        if finding is None:
            finding = dict(self.describe(var, value), count=0, data_leaks=0, hashes={}, values=[])
            finding.update(shared=0, read_before_fresh=0, kept=0, replaced=0, data_paths=[], other_client_leaks=0)
            self.stale[phase][key] = finding
        finding["count"] += 1
        if kind == SHARED:
            finding["shared"] += 1
        if read:
            finding["read_before_fresh"] += 1
        digest = _short_hash(value)
        finding["hashes"][digest] = finding["hashes"].get(digest, 0) + 1
        # a shared object was a suspect for holding another request's value at entry; the app may have changed it since
        paths = self.foreign_paths(value, own)
        leaked = kind == SHARED or bool(paths)
        if leaked:
            finding["data_leaks"] += 1
        # an identity value whose sender is known and is not this request's client (unknown: not counted as another's)
        other = any(self.token_clients.get(token, client) != client for token in paths)
        if other:
            finding["other_client_leaks"] += 1
        for path in paths.values():
            if path not in finding["data_paths"] and len(finding["data_paths"]) < MAX_DATA_PATHS:
                finding["data_paths"].append(path)
        if self.show_values and len(finding["values"]) < 5:
            try:
                preview = repr(value)[:VALUE_PREVIEW]
            except Exception:
                preview = "<unrepresentable>"
            if preview not in finding["values"]:
                finding["values"].append(preview)
        return leaked, other

    def triage(self, phase: str, suspects: list[tuple[Any, object, str]]) -> None:
        """At the response's final message, in the app's Context: does each suspect still hold its entry value (kept:
        everything in the request that read it saw another request's state) or did the app set it (replaced)?"""
        missing = object()
        for var, value, _ in suspects:
            finding = self.stale.get(phase, {}).get(f"{var.name}@{id(var)}")
            if finding is not None:
                finding["kept" if var.get(missing) is value else "replaced"] += 1

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        # First thing, before anything of ours or the app's can set a ContextVar.
        context = contextvars.copy_context()
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.baseline is None:
            self.baseline = context
            self.baseline_vars = [self.baseline_entry(var, value) for var, value in context.items()]
            self.write(force=True)
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(PREFIX):
            await self.answer(path, send)
            return
        phase, client = "other", ""
        own: set[str] = set()
        headers = []
        for name, value in scope.get("headers", []):
            lowered = name.lower()
            if lowered == PHASE_HEADER:
                phase = value.decode("latin-1")
                continue
            if lowered == CLIENT_HEADER:
                client = value.decode("latin-1")
                continue
            if lowered in self.identity:
                own.update(self.token_re.findall(value.decode("latin-1")))
            headers.append((name, value))
        self.seen_tokens.update(own)
        if client and len(self.token_clients) < MAX_TRACKED_TOKENS:
            self.token_clients.update(dict.fromkeys(own, client))
        self.requests[phase] = self.requests.get(phase, 0) + 1
        address = scope.get("client")  # (host, port), a list on some servers, or None (a unix socket)
        peer = f"{address[0]}:{address[1]}" if address and len(address) == 2 else "?"
        per_peer = self.connections.setdefault(phase, {})
        per_peer[peer] = per_peer.get(peer, 0) + 1
        scope = dict(scope, headers=headers)
        try:
            suspects = self.suspects_at_entry(context, own)
        except Exception as exc:
            self.failed(phase, exc)
            suspects = []
        if not suspects:
            self.write()
            await self.app(scope, receive, send)
            return
        await self.watched(phase, scope, receive, send, suspects, own, client)

    async def watched(
        self,
        phase: str,
        scope: dict,
        receive: Any,
        send: Any,
        suspects: list[tuple[Any, object, str]],
        own: set[str],
        client: str,
    ) -> None:
        """Run the app on a request that starts with suspect values, and tell whether any of its code saw them.

        Does the app run in this context (then it sees them) or in one of its own (a fresh Context per request, as
        contextvar_isolated does)? A private marker set here is visible where the app talks to the server (its first
        receive or send) only in the first case. In the second, only code that ran in this context before (or after)
        the fresh one could have seen them: its reads are watched (see `_Stepped`). Only suspect requests pay this.
        """
        marker = object()
        handed = contextvars.copy_context()  # the values the app would see; held, so that its changes stay visible
        handed.run(MARKER.set, marker)
        watch = _ReadWatch({id(var) for var, _, _ in suspects}, marker)
        settled: list[bool] = []

        def settle(used: bool) -> None:
            if settled:
                return
            settled.append(used)
            if used:
                watch.active = False  # counted already: no need to watch its reads
                self.record(phase, suspects, own, client)
                self.write(force=True)

        async def watched_receive() -> Any:
            try:
                settle(MARKER.get(None) is marker)
            except Exception as exc:
                self.failed(phase, exc)
            return await receive()

        async def watched_send(message: Any) -> None:
            try:
                settle(MARKER.get(None) is marker)
                if settled[0] and _final(message):
                    self.triage(phase, suspects)
            except Exception as exc:
                self.failed(phase, exc)
            await send(message)

        try:
            await _Stepped(self.app(scope, watched_receive, watched_send), handed, watch)
        finally:
            try:
                if not settled:
                    settle(True)  # never talked to the server: assume it used the context it was given
                elif not settled[0]:
                    read = [item for item in suspects if watch.everything or id(item[0]) in watch.read]
                    if read:
                        self.record(phase, read, own, client, read=True)
                    else:
                        self.isolated[phase] = self.isolated.get(phase, 0) + 1
                    self.write(force=True)
            except Exception as exc:
                self.failed(phase, exc)
            _adopt(handed)

    async def answer(self, path: str, send: Any) -> None:
        if path == FLUSH_PATH:
            self.write(force=True)
            body = json.dumps(self.report()).encode()
            status = 200
        elif path == READY_PATH:
            body, status = b"ok", 200
        else:
            body, status = b"unknown probe path", 404
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, scope: dict, receive: Any, send: Any) -> None:
        async def watch(message: dict) -> None:
            if message.get("type") == "lifespan.startup.complete":
                self.started_up = True
            elif message.get("type") == "lifespan.startup.failed":
                text = message.get("message", "") or "no message"
                shown = text if os.environ.get(TRACEBACK_ENV) else _bounded(_exception_text(text))
                _fail(f"the app failed at startup: {shown}")
            await send(message)

        async def shutdown_aware() -> Any:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                self.write(force=True)  # a worker the driver's flush did not reach: its last counts, before it exits
            return message

        try:
            await self.app(scope, shutdown_aware, watch)
        except BaseException as exc:
            if not self.started_up:
                # Servers treat an app that raises here as one without lifespan support, or give up: either way
                # the driver reads this line if the server does not become ready.
                _fail(f"the app failed at startup: {describe_error(exc)}")
            raise


def _build() -> Sentinel | None:
    spec = os.environ.get(APP_ENV)
    if not spec:
        return None  # imported for --preflight or by a test, not by a server
    try:
        return Sentinel(load_app(spec))
    except BaseException as exc:
        _fail(str(exc) if isinstance(exc, ImportError) else describe_error(exc))
        raise


def preflight(modules: list[str]) -> dict:
    """Which server modules are importable here, and whether the app imports (one JSON line, no traceback)."""
    missing = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    error = None
    try:
        load_app(os.environ.get(APP_ENV, ""))
    except BaseException as exc:
        error = str(exc) if isinstance(exc, (ImportError, ValueError)) else describe_error(exc)
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "missing": missing,
        "error": error,
        "versions": _versions(os.environ.get(VERSIONS_ENV, "")),
    }


def _versions(names: str) -> dict:
    """Installed version of each named distribution in this interpreter (None: not installed); what results record."""
    import importlib.metadata  # 3.8+; only the preflight asks

    found = {}
    for name in filter(None, names.split(",")):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


if __name__ == "__main__" and sys.argv[1:2] == ["--preflight"]:
    # stdout may be polluted by the app's import-time prints: the answer is the last line
    result = preflight(sys.argv[2:])
    sys.stdout.flush()
    print("\n" + json.dumps(result))
    sys.exit(0)

# Only a server loads the module by this name; ctxbench importing it for its constants builds nothing.
app = _build() if __name__ == "ctxbench_probe_sentinel" else None
