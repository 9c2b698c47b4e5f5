"""Where the instructions go: the callgrind parser, the one mapping table, per-task component tracking, the sums."""

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from microbench import attribution, bm_attribution
from scripts.bench import attribution as summary
from scripts.report import attribution as report_attribution

LIBPYTHON = "/usr/lib/libpython3.11.so.1.0"
PYDANTIC = "/venv/lib/pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so"
# A dump as callgrind writes it with --dump-line=no: compressed names, and a call's inclusive cost after `calls=`.
SYNTHETIC_DUMP = f"""# callgrind format
version: 1
positions: line
events: Ir
summary: 1975

ob=(1) {LIBPYTHON}
fl=(1) /build/Python/ceval.c
fn=(1) _PyEval_EvalFrameDefault
0 1000
cfl=(2) /build/Python/context.c
cfn=(2) PyContextVar_Set
calls=3 0
0 150
cfl=(2)
cfn=(3) context_run
calls=1 0
0 400

fl=(2)
fn=(2)
0 150

fn=(3)
0 25
cob=(2) {PYDANTIC}
cfl=(3) src/validators/mod.rs
cfn=(4) pydantic_core::validate
calls=1 0
0 375

fl=(4) /build/Python/hamt.c
fn=(5) hamt_node_assoc
0 50

ob=(2)
fl=(3)
fn=(4)
0 375

ob=(1)
fl=(1)
fn=(6) PyContextVar_Get
0 1
fi=(5) /build/Include/object.h
0 374
"""


def test_self_costs_count_each_function_once_and_skip_call_lines() -> None:
    costs = attribution.self_costs(SYNTHETIC_DUMP.splitlines())
    assert costs[(LIBPYTHON, "/build/Python/ceval.c", "_PyEval_EvalFrameDefault")] == 1000  # not + 150 + 400
    assert costs[(LIBPYTHON, "/build/Python/context.c", "PyContextVar_Set")] == 150
    assert costs[(LIBPYTHON, "/build/Python/context.c", "context_run")] == 25  # its call's 375 is pydantic's
    assert costs[(PYDANTIC, "src/validators/mod.rs", "pydantic_core::validate")] == 375
    assert costs[(LIBPYTHON, "/build/Python/hamt.c", "hamt_node_assoc")] == 50
    assert costs[(LIBPYTHON, "/build/Include/object.h", "PyContextVar_Get")] == 374  # an inlined file: its own source
    assert sum(costs.values()) == 1975  # exactly the dump's summary: nothing counted twice, nothing lost


def test_the_synthetic_profile_maps_to_its_components() -> None:
    found = attribution.attribute(attribution.self_costs(SYNTHETIC_DUMP.splitlines()), attribution.DEPENDENCIES)
    assert found == Counter(
        {
            attribution.DEPENDENCIES: 1000,  # interpreter code no rule names: the component running (the label)
            attribution.CONTEXTVARS: 150 + 50 + 1 + 374,  # context.c, hamt.c, and a ContextVar function's inlined code
            attribution.STEP_DRIVER: 25,  # context_run, not an ordinary ContextVar operation
            attribution.VALIDATION: 375,  # pydantic-core, whatever component called it
        }
    )
    assert sum(found.values()) == 1975


@pytest.mark.parametrize(
    ("library", "source", "function", "component"),
    [
        (LIBPYTHON, "/b/Python/context.c", "PyContextVar_Get", attribution.CONTEXTVARS),
        (LIBPYTHON, "/b/Python/context.c", "_contextvars_ContextVar_reset", attribution.CONTEXTVARS),
        (LIBPYTHON, "/b/Python/context.c", "context_run", attribution.STEP_DRIVER),
        (LIBPYTHON, "/b/Python/bltinmodule.c", "map_next", attribution.STEP_DRIVER),
        (PYDANTIC, "src/input/mod.rs", "anything", attribution.VALIDATION),
        (LIBPYTHON, "/b/Include/object.h", "PyContextVar_Set", attribution.CONTEXTVARS),  # inlined code
        (LIBPYTHON, "/b/Objects/dictobject.c", "PyDict_GetItem", attribution.LOGGING),  # the label: what ran
    ],
)
def test_c_rules(library: str, source: str, function: str, component: str) -> None:
    assert attribution.component_of(library, source, function, attribution.LOGGING) == component


def test_layers_by_the_module_of_their_class() -> None:
    assert attribution.layer_component("apps.contextvar_asgi", False) == attribution.MIDDLEWARE
    assert attribution.layer_component("apps.request_state", True) == attribution.BASEHTTP
    assert attribution.layer_component("opentelemetry.instrumentation.asgi", False) == attribution.LIBRARY
    assert attribution.layer_component("asgi_correlation_id.middleware", False) == attribution.LIBRARY
    assert attribution.layer_component("starlette.middleware.errors", False) == attribution.REST


def test_every_component_is_described_and_every_root_names_one() -> None:
    assert set(attribution.DESCRIPTIONS) == set(attribution.COMPONENTS)
    assert {rule.component for rule in attribution.C_RULES} <= set(attribution.COMPONENTS)
    assert {component for component, _, _ in attribution.PYTHON_ROOTS} <= set(attribution.COMPONENTS)


def test_the_breakdown_adds_up_and_states_the_residual() -> None:
    reference = {attribution.REST: 1000.0, attribution.VALIDATION: 100.0}
    subject = {attribution.REST: 1010.0, attribution.VALIDATION: 350.0, attribution.CONTEXTVARS: 5.0}
    found = summary.breakdown(subject, reference, measured_added=270.0)
    assert found["components"][attribution.VALIDATION] == 250.0
    assert found["components"][attribution.MIDDLEWARE] == 0.0  # every component present, in order
    assert list(found["components"]) == list(attribution.COMPONENTS)
    assert found["attributed"] == sum(found["components"].values()) == 265.0
    assert found["residual"] == 5.0
    assert found["largest"] == attribution.VALIDATION


def test_the_probe_follows_each_task_across_awaits() -> None:
    """Code of a task that runs while another task's root is suspended is not charged to that root."""
    probe = bm_attribution.Probe()
    original_run = asyncio.events.Handle._run
    original_create = asyncio.base_events.BaseEventLoop.create_task
    seen: list[tuple[str, str]] = []

    async def validating() -> None:
        seen.append(("validating", probe.active[-1]))
        await asyncio.sleep(0)  # the other task runs here
        seen.append(("validating again", probe.active[-1]))

    async def logging_task() -> None:
        seen.append(("other task", probe.active[-1]))

    root = bm_attribution.root(probe, validating, attribution.VALIDATION)

    async def main() -> None:
        first = asyncio.get_running_loop().create_task(root())
        second = asyncio.get_running_loop().create_task(logging_task())
        await asyncio.gather(first, second)

    try:
        bm_attribution.wrap_loop(probe)
        asyncio.run(main())
    finally:
        asyncio.events.Handle._run = original_run
        asyncio.base_events.BaseEventLoop.create_task = original_create
    assert seen == [
        ("validating", attribution.VALIDATION),
        ("other task", attribution.REST),
        ("validating again", attribution.VALIDATION),
    ]
    assert attribution.VALIDATION in probe.labels  # a dump closed the validation run


def write_record(directory: Path, app: str, components: dict[str, float], same_run: dict | None = None) -> dict:
    record = {
        "app": app,
        "methods": {
            "get": {"components": components, "total": sum(components.values()), "wrapper_events_per_request": 9}
        },
    }
    if same_run is not None:
        record[attribution.SAME_RUN] = same_run
    attribution.attribution_path(directory, app).write_text(json.dumps(record))
    return record


def counted(variant: str, instructions: float, added: float | None) -> dict:
    return {"variant": variant, "method": "get", "instructions": instructions, "vs_baseline": {"added": added}}


def test_the_summary_compares_each_variant_with_its_own_runs_baseline(tmp_path: Path) -> None:
    base = write_record(tmp_path, "baseline", {attribution.REST: 1000.0})
    write_record(tmp_path, "explicit", {attribution.REST: 1000.0, attribution.VALIDATION: 300.0})
    own_base = {"methods": {"get": {"components": {attribution.REST: 990.0}}}}
    write_record(tmp_path, "explicit_scope", {attribution.REST: 1040.0}, same_run=own_base)
    rows = [counted("baseline", 1e6, None), counted("explicit", 1.3e6, 302.0), counted("explicit_scope", 1.05e6, 49.0)]
    found = summary.summarize(tmp_path, rows, ["baseline", "explicit", "explicit_scope"], "baseline")
    by = {row["variant"]: row for row in found["rows"]}
    assert by["explicit"]["components"][attribution.VALIDATION] == 300.0
    assert by["explicit"]["residual"] == 2.0
    assert by["explicit_scope"]["components"][attribution.REST] == 50.0  # against its run's 990, not 1000
    assert by["explicit_scope"]["run"] == "own"
    assert by["explicit_scope"]["residual"] == -1.0
    assert found["max_abs_residual"] == 2.0
    assert "components" not in by["baseline"]
    assert by["baseline"]["absolute"][attribution.REST] == base["methods"]["get"]["components"][attribution.REST]


def test_the_report_names_the_largest_part_and_splits_explicit(tmp_path: Path) -> None:
    write_record(tmp_path, "baseline", {attribution.REST: 1000.0})
    write_record(tmp_path, "explicit", {attribution.REST: 1040.0, attribution.VALIDATION: 250_000.0})
    write_record(tmp_path, "explicit_scope", {attribution.REST: 1040.0, attribution.DEPENDENCIES: 40_000.0})
    rows = [counted("explicit", 2e6, 250_100.0), counted("explicit_scope", 1.5e6, 40_150.0)]
    section = summary.summarize(tmp_path, rows, ["baseline", "explicit", "explicit_scope"], "baseline")
    bench = {"instructions": {"attribution": section}}
    assert report_attribution.largest_phrase(report_attribution.rows_by_variant(bench)["explicit"]).startswith(
        f"largest: {attribution.VALIDATION}"
    )
    (line,) = report_attribution.explicit_lines(bench)
    assert "`explicit_scope` +40,150" in line and "`explicit` +250,100" in line
    assert "adds +209,950" in line and f"{attribution.VALIDATION} +250,000" in line
    table = report_attribution.bench_lines(bench)
    assert any(line.startswith("| `explicit` | +250.1 |") for line in table)
    assert any(line.startswith("| `explicit_scope` | +40.1 |") for line in table)


def test_a_variant_counted_alone_keeps_only_its_own_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ctxbench bench --mode instructions --variant X runs the counts, then the attribution; X's two files stay (each
    holds that run's baseline), the run's own baseline files go: the reference run's baseline is not replaced."""
    import argparse
    import contextlib
    import subprocess

    from scripts.bench import bench

    ran: list[str] = []
    real_run = subprocess.run

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        if "--output-dir" not in command:  # the environment's own calls (git)
            return real_run(command, **kwargs)
        ran.append(Path(command[1]).name)
        output = Path(command[command.index("--output-dir") + 1])
        for app in ("explicit_scope", "baseline", "baseline_aa"):
            prefix = "attribution_" if ran[-1] == "bm_attribution.py" else "instructions_"
            if not (prefix == "attribution_" and app == "baseline_aa"):
                (output / f"{prefix}{app}.json").write_text("{}")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.setattr(bench, "exclusive_run", contextlib.nullcontext)
    args = argparse.Namespace(variant=["explicit_scope"], seed=0, mode="instructions")
    assert bench.count_instructions(args, bench.MODES["instructions"], tmp_path) == 0
    assert ran == ["bm_instructions.py", "bm_attribution.py"]
    kept = {path.name for path in tmp_path.glob("*.json")}
    assert kept == {"instructions_explicit_scope.json", "attribution_explicit_scope.json"}
    replaced = bench.replaced_files(bench.MODES["instructions"], ("explicit_scope",))
    assert "attribution_explicit_scope.json" in replaced and "attribution_baseline.json" not in replaced


def test_the_worker_wraps_a_real_app_and_labels_its_components(tmp_path: Path) -> None:
    """Outside callgrind (os.getppid is then only a call): the roots and layers are found, and each component runs."""
    import subprocess
    import sys

    plan = tmp_path / "plan.json"
    command = [sys.executable, str(Path(bm_attribution.__file__)), "--worker-plan", str(plan)]
    command += ["--worker-group", "explicit", "--requests", "1", "--warmup", "1"]
    subprocess.run(command, check=True, cwd=Path(bm_attribution.__file__).parents[1])
    found = json.loads(plan.read_text())
    assert "fastapi.dependencies.utils.request_params_to_args" in found["roots"]
    assert found["layers"] >= 5  # Starlette's, FastAPI's, RequestGuard, the audit layer, down to the router
    labels = set(found["labels"])
    for component in (attribution.MIDDLEWARE, attribution.DEPENDENCIES, attribution.VALIDATION, attribution.LOGGING):
        assert component in labels
    assert [segment["method"] for segment in found["segments"]] == ["get", "post"]
