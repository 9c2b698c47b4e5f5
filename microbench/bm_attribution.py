"""Instructions per request by component (microbench/attribution.py), counted under callgrind, one process per app.

How: the same worker as bm_instructions (one app alone, PYTHONHASHSEED fixed, the same requests, warmed up the same
way) wraps the component roots and middleware layers of microbench.attribution, then runs `--requests` requests
per method. Every wrapper keeps, per asyncio task, the stack of components entered; each time the component on top
changes (a root entered or left, a loop callback stepping another task) it calls `os.getppid()` and callgrind dumps,
so each dump holds one component's run; its label says which. The wrappers' bookkeeping runs inside `operator.call`,
which `--toggle-collect` keeps out of the counts. A dump holds every thread's instructions: the threadpool's worker
runs while the event loop waits for it, outside any callback, so its instructions fall to the loop's REST. The counts
of record stay bm_instructions' (no wrappers); this file says where they go, and the residual
(scripts/bench/attribution.py) what the two disagree by.

Output: `attribution_<app>.json` per app (a plain JSON record, not a pyperf file): per method, instructions per
request by component, their total, and the wrapper events per request.

    python microbench/bm_attribution.py --variant explicit --requests 5 --output-dir results/bench
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import gc
import inspect
import json
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from apps.harness import inprocess, registry
from microbench import attribution, bm_instructions
from microbench.asgi_timing import versions
from microbench.bm_apps import METHODS, request_spec

REQUESTS = 10  # per method: counts repeat from request to request (bm_instructions' spread is 0.2%)
WARMUP = bm_instructions.WARMUP_REQUESTS
WRAPPED_WARMUP = 3  # requests through the wrappers before the measured ones (first-call caches of the wrappers)
TOGGLE = "_operator_call"  # the C function of operator.call: its instructions are not collected
DISCARD = "-"
call = operator.call


def output_file(output_dir: Path, app: str) -> Path:
    return attribution.attribution_path(output_dir, app)


class Probe:
    """The component running now, per task; a dump (os.getppid) each time the one on top changes."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.stacks: weakref.WeakKeyDictionary[asyncio.Task, list[str]] = weakref.WeakKeyDictionary()
        self.active: list[str] = [attribution.REST]
        self.top = attribution.REST
        self.events = 0

    def _changed(self) -> None:
        self.events += 1
        if self.active[-1] != self.top:
            self.labels.append(self.top)
            os.getppid()
            self.top = self.active[-1]

    def push(self, component: str) -> None:
        self.active.append(component)
        self._changed()

    def pop(self) -> None:
        self.active.pop()
        self._changed()

    def adopt(self, task: asyncio.Task) -> None:
        """A new task starts in the component that created it (a task group's task: BaseHTTPMiddleware's)."""
        self.stacks[task] = [self.active[-1]]

    def enter_callback(self, handle: asyncio.Handle) -> list[str]:
        """A loop callback runs under the stack of the task it steps or wakes; any other under the event loop's."""
        task = getattr(getattr(handle, "_callback", None), "__self__", None)
        previous = self.active
        stack = self.stacks.get(task) if isinstance(task, asyncio.Task) else None
        self.active = stack if stack is not None else [attribution.REST]
        self._changed()
        return previous

    def leave_callback(self, previous: list[str]) -> None:
        self.active = previous
        self._changed()

    def begin(self) -> None:
        self.labels.append(DISCARD)
        os.getppid()
        self.top = self.active[-1]

    def end(self) -> None:
        self.labels.append(self.top)
        os.getppid()


def sync_root(probe: Probe, function: Any, component: str) -> Any:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call(probe.push, component)
        try:
            return function(*args, **kwargs)
        finally:
            call(probe.pop)

    return wrapper


def async_root(probe: Probe, function: Any, component: str) -> Any:
    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call(probe.push, component)
        try:
            return await function(*args, **kwargs)
        finally:
            call(probe.pop)

    return wrapper


def root(probe: Probe, function: Any, component: str) -> Any:
    wrap = async_root if inspect.iscoroutinefunction(function) else sync_root
    return wrap(probe, function, component)


class Relay:
    """A send or receive handed down a layer: the code behind it is the layer above's (no functools.wraps per call)."""

    __slots__ = ("component", "function", "probe")

    def __init__(self, probe: Probe, function: Any, component: str) -> None:
        self.probe, self.function, self.component = probe, function, component

    async def __call__(self, *args: Any) -> Any:
        call(self.probe.push, self.component)
        try:
            return await self.function(*args)
        finally:
            call(self.probe.pop)


class Link:
    """A middleware layer as its parent calls it: its own component while it runs, its parent's in send/receive."""

    def __init__(self, probe: Probe, app: Any, component: str, parent: str) -> None:
        self.probe, self.app, self.component, self.parent = probe, app, component, parent

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        call(self.probe.push, self.component)
        try:
            await self.app(scope, Relay(self.probe, receive, self.parent), Relay(self.probe, send, self.parent))
        finally:
            call(self.probe.pop)


def downstream_attribute(layer: Any) -> str | None:
    if hasattr(layer, "middleware_stack") and layer.middleware_stack is not None:
        return "middleware_stack"  # a Starlette or FastAPI app
    return "app" if callable(getattr(layer, "app", None)) and not type(layer).__name__.endswith("Router") else None


def wrap_layers(probe: Probe, app: Any) -> int:
    """Replace every link of the middleware chain under `app` by a Link; a BaseHTTPMiddleware's dispatch too."""
    from starlette.middleware.base import BaseHTTPMiddleware

    parent, parent_component, wrapped = app, attribution.REST, 0
    while (name := downstream_attribute(parent)) is not None:
        layer = getattr(parent, name)
        basehttp = isinstance(layer, BaseHTTPMiddleware)
        component = attribution.layer_component(type(layer).__module__, basehttp)
        if basehttp:
            dispatch = layer.dispatch_func

            async def dispatched(request: Any, call_next: Any, dispatch: Any = dispatch) -> Any:
                call(probe.push, attribution.MIDDLEWARE)
                try:
                    return await dispatch(request, Relay(probe, call_next, attribution.BASEHTTP))
                finally:
                    call(probe.pop)

            layer.dispatch_func = dispatched
        setattr(parent, name, Link(probe, layer, component, parent_component))
        parent, parent_component, wrapped = layer, component, wrapped + 1
    return wrapped


def wrap_roots(probe: Probe) -> list[str]:
    """Wrap every root of attribution.PYTHON_ROOTS that this process has imported; return the ones wrapped."""
    done = []
    for component, module_name, qualname in attribution.PYTHON_ROOTS:
        module = sys.modules.get(module_name)
        if module is None:
            continue  # a library this variant does not use
        *owner_path, name = qualname.split(".")
        owner = functools.reduce(getattr, owner_path, module)
        function = getattr(owner, name, None)
        if function is None:
            continue
        setattr(owner, name, root(probe, function, component))
        done.append(f"{module_name}.{qualname}")
    return done


def wrap_loop(probe: Probe) -> None:
    """Every loop callback under the stack of the task it runs; every new task in its creator's component."""
    original_run = asyncio.events.Handle._run
    original_create = asyncio.base_events.BaseEventLoop.create_task

    def run(handle: asyncio.Handle) -> None:
        previous = call(probe.enter_callback, handle)
        try:
            original_run(handle)
        finally:
            call(probe.leave_callback, previous)

    def create_task(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task:
        task = original_create(loop, coro, **kwargs)
        call(probe.adopt, task)
        return task

    asyncio.events.Handle._run = run  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop.create_task = create_task  # type: ignore[method-assign]


async def segments(app: Any, group: str, requests: int, warmup: int) -> tuple[Probe, dict]:
    """Warm up unwrapped, wrap, then one labelled segment per method; the probe holds every dump's label."""
    loop = asyncio.get_running_loop()
    specs = {method: request_spec(method) for method in METHODS}
    for method in METHODS:
        for _ in range(warmup):
            await loop.create_task(inprocess.call(app, specs[method]))
    probe = Probe()
    wrap_loop(probe)
    info = {"roots": wrap_roots(probe), "layers": wrap_layers(probe, app), "segments": []}
    for method in METHODS:
        for _ in range(WRAPPED_WARMUP):
            await loop.create_task(inprocess.call(app, specs[method]))
        gc.collect()
        events, first = probe.events, len(probe.labels)
        call(probe.begin)
        for _ in range(requests):
            await loop.create_task(inprocess.call(app, specs[method]))
        call(probe.end)
        info["segments"].append(
            {"method": method, "events": probe.events - events, "labels": [first, len(probe.labels)]}
        )
    return probe, info


def worker(group: str, requests: int, warmup: int, plan: Path) -> None:
    variant = registry.get(group)
    app = variant.load()
    for method in METHODS:
        bm_instructions.verify(variant, app, request_spec(method))
    probe, info = asyncio.run(segments(app, group, requests, warmup))
    plan.write_text(json.dumps({"labels": probe.labels, **info}))


def callgrind_command(out_file: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--dump-before={bm_instructions.MARKER_FUNCTION}",
        "--dump-line=no",
        f"--toggle-collect={TOGGLE}",
        "--collect-atstart=yes",  # --toggle-collect alone turns collection off at start
        f"--callgrind-out-file={out_file}",
    ]


def measure(group: str, args: argparse.Namespace, tmp: Path) -> dict:
    """One callgrind process for one app: per method, instructions per request by component."""
    tmp = tmp / group
    tmp.mkdir()
    out, plan = tmp / "cg.out", tmp / "plan.json"
    command = [*callgrind_command(out), sys.executable, __file__, "--worker-plan", str(plan)]
    command += ["--worker-group", group, "--requests", str(args.requests), "--warmup", str(args.warmup)]
    env = os.environ | {"PYTHONHASHSEED": bm_instructions.HASH_SEED}
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise bm_instructions.MeasurementBroken(f"{group} exited {result.returncode}:\n{result.stderr[-3000:]}")
    data = json.loads(plan.read_text())
    labels = data["labels"]
    methods: dict[str, dict] = {}
    for segment in data["segments"]:
        start, end = segment["labels"]
        components = attribution.attribute_files(iter(labelled_dumps(tmp, labels, start, end)))
        per_request = {name: components.get(name, 0) / args.requests for name in attribution.COMPONENTS}
        methods[segment["method"]] = {
            "components": per_request,
            "total": sum(per_request.values()),
            "wrapper_events_per_request": segment["events"] / args.requests,
        }
    return {"app": group, "roots": data["roots"], "layers": data["layers"], "methods": methods}


def labelled_dumps(tmp: Path, labels: list[str], start: int, end: int) -> list[tuple[Path, str]]:
    """(dump file, component) for labels[start:end], a segment: its opening DISCARD, then one per component run."""
    dumps = sorted(tmp.glob("cg.out.*"), key=lambda path: int(path.suffix[1:]))
    if len(dumps) != len(labels):
        raise bm_instructions.MeasurementBroken(f"{len(dumps)} callgrind dumps for {len(labels)} markers")
    return [(dump, label) for dump, label in zip(dumps[start:end], labels[start:end], strict=True) if label != DISCARD]


def write_record(path: Path, record: dict) -> None:
    """Atomically, with the mode the umask gives (as every result file): a reader never sees half of it."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)


def groups(only: list[str] | None) -> list[str]:
    return [v.name for v in registry.VARIANTS if only is None or v.name in only or v.name == bm_instructions.BASELINE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per method")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="unwrapped requests per method first")
    parser.add_argument("--parallel", type=int, default=bm_instructions.PARALLEL, help="callgrind processes at once")
    parser.add_argument("--variant", action="append", help="only these variants (default: all; baseline always)")
    parser.add_argument("--worker-plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.worker_plan:
        worker(args.worker_group, args.requests, args.warmup, args.worker_plan)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: the attribution needs callgrind (apt-get install valgrind)")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # the run's environment is recorded by whoever runs it (ctxbench bench: run_instructions.json), as for the counts
    parameters = {"requests": args.requests, "warmup": args.warmup, "wrapped_warmup": WRAPPED_WARMUP}
    chosen = groups(args.variant)
    with tempfile.TemporaryDirectory(prefix="ctxbench-attribution-") as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            records = list(pool.map(lambda group: measure(group, args, Path(tmp)), chosen))
    reference = next(record for record in records if record["app"] == bm_instructions.BASELINE)
    for record in records:
        record |= {"counter": bm_instructions.COUNTER, "parameters": parameters, "versions": versions()}
        record["rules"] = {"components": list(attribution.COMPONENTS), "toggle_collect": TOGGLE}
        if args.variant and record is not reference:  # as bm_instructions.same_run_name: this run's baseline inside
            record[attribution.SAME_RUN] = reference
        path = output_file(args.output_dir, record["app"])
        write_record(path, record)
        print(f"wrote {path}")
    print(f"attribution: {len(chosen)} processes in {time.perf_counter() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
