"""The setting check: which of the app's startup values an empty Context per request would hide, measured on a server.

uvicorn's `--reset-contextvars` and the reset gunicorn worker start every request in an empty `Context`, which also
drops what the app set before its first request (a `ContextVar.set()` at import, decimal precision, structlog's
global binds). The probe does not guess which: for every configuration probed that showed stale state and has a reset
twin (`ServerConfig.reset_twin`), it starts that twin once, with nothing but the sentinel's readiness request (one
request on a fresh connection of the freshly started server: the baseline), stops it by PID as every server, and
compares the two baselines. A value in the default's baseline that is absent from the twin's (or holds another value,
by the sentinel's address-masked hash) is what the setting would hide.

When it runs, and why: only for twins of configurations that showed stale state, since only there does the `fix:`
line recommend the setting; not when the default's baseline holds nothing (nothing can be hidden); not when the twin
was probed too (its baseline is reused); not when the user's uvicorn lacks the option (the twin cannot start). Each
run costs one server start and stop (about 1-2 s on uvicorn, 2-3 s under gunicorn), paid once per twin.
`--no-setting-check` (`setting_check=False`) skips it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ctxbench.probing.driver import ProbeUsageError, Target, probe_server
from ctxbench.serving import servers
from ctxbench.serving.servers import ServerConfig

OWN_PREFIX = "ctxbench_probe_"  # the sentinel's own ContextVars: bookkeeping, not the app's
STRUCTLOG_PREFIX = "structlog_"  # structlog.contextvars keeps one ContextVar per bound key, named with this prefix
# decimal's ContextVar (C `_decimal` and `_pydecimal` alike), held by no module global the sentinel can find
DECIMAL_VAR, DECIMAL_MODULES = "decimal_context", (None, "decimal", "_decimal", "_pydecimal")
ABSENT, DIFFERENT = "absent", "different"
HEADING = "startup values an empty Context would hide"


def app_values(baseline: list[dict]) -> list[dict]:
    """The baseline's ContextVars that the app (or a library it imports) set: the sentinel's own left out."""
    return [entry for entry in baseline if not str(entry["name"]).startswith(OWN_PREFIX)]


def readable(name: str, module: str | None) -> tuple[str, str | None]:
    """(what to call it, its module): `decimal context` (decimal), `structlog's service`, or the ContextVar's name."""
    if name == DECIMAL_VAR and module in DECIMAL_MODULES:
        return "decimal context", "decimal"
    if name.startswith(STRUCTLOG_PREFIX) and (module or "").startswith("structlog"):
        return f"structlog's {name[len(STRUCTLOG_PREFIX) :]}", module
    return name, module


def hidden(default: list[dict], twin: list[dict]) -> list[dict]:
    """The default's startup values that the twin's baseline lacks, or holds with another type or value."""
    theirs = {(entry["name"], entry["module"]): entry for entry in twin}
    found = []
    for entry in app_values(default):
        other = theirs.get((entry["name"], entry["module"]))
        if other is None:
            change = ABSENT
        elif (other["type"], other.get("hash")) != (entry["type"], entry.get("hash")):
            change = DIFFERENT
        else:
            continue
        label, module = readable(entry["name"], entry["module"])
        found.append({"name": label, "var": entry["name"], "module": module, "type": entry["type"], "change": change})
    return sorted(found, key=lambda item: item["name"])


def check(
    target: Target,
    configs: list[ServerConfig],
    documents: list[dict],
    progress: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """One entry per stale configuration with a reset twin: the twin, its setting, what it hides, or why unchecked."""
    by_label = {document["label"]: document for document in documents}
    checks = []
    has_flag: bool | None = None  # asked of the user's uvicorn once, and only if a twin is to be started
    for config, document in zip(configs, documents, strict=True):
        if not document["stale_found"] or config.reset_twin is None:
            continue
        twin = servers.get(config.reset_twin)
        entry: dict = {"server": config.label, "twin": twin.label, "setting": twin.reset_setting}
        entry.update(checked=False, reason=None, hidden=[], seconds=0.0)
        checks.append(entry)
        if not app_values(document["baseline"]):
            entry["reason"] = "the app sets no ContextVar before its first request: nothing to hide"
            continue
        if twin.label in by_label:
            entry.update(checked=True, hidden=hidden(document["baseline"], by_label[twin.label]["baseline"]))
            continue
        if has_flag is None:
            has_flag = servers.has_reset_flag(target.python)
        if not has_flag:
            entry["reason"] = f"your uvicorn has no {servers.RESET_FLAG}: {twin.label} cannot start"
            continue
        progress(f"{twin.label}: starting (what {twin.reset_setting} would hide of the app's startup values)")
        started = time.monotonic()
        try:
            # no traffic: the sentinel's readiness request, on a fresh connection, is the baseline
            served = probe_server(target, twin, [], 0, progress)
        except ProbeUsageError as error:
            entry["reason"] = f"{twin.label} could not be checked: {error}"
            continue
        finally:
            entry["seconds"] = round(time.monotonic() - started, 2)
        if not served.reports:
            entry["reason"] = f"{twin.label} wrote no report"
            continue
        entry.update(checked=True, hidden=hidden(document["baseline"], served.reports[0]["baseline"]))
    return checks


def describe(item: dict) -> str:
    """`region (myapp.settings, str)`."""
    return f"{item['name']} ({item['module'] or 'module not found'}, {item['type']})"


def section(checks: list[dict]) -> list[str]:
    """The report's lines: what each check found hidden, or why it could not check; nothing when nothing to say."""
    lines = []
    for entry in checks:
        if entry["checked"] and entry["hidden"]:
            values = ", ".join(describe(item) for item in entry["hidden"])
            lines.append(f"{HEADING} (checked on {entry['twin']}): {values}")
        elif entry["checked"]:
            lines.append(f"{HEADING} (checked on {entry['twin']}): none")
        elif entry["reason"] and not entry["reason"].startswith("the app sets no"):
            lines.append(f"{HEADING}: not checked ({entry['reason']})")
    return lines


def hidden_names(checks: list[dict]) -> list[str]:
    """Every hidden value's name, once, in the order the checks list them."""
    return list(dict.fromkeys(item["name"] for entry in checks for item in entry["hidden"]))
