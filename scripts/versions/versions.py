"""`make versions`: the in-process verdicts, the matrix and a bounded real-server leak hunt on every declared stack.

Each stack runs in its own virtualenv (scripts/versions/envs.py): the in-process half in the stack's interpreter
(scripts/versions/in_stack.py, a subprocess), the leak hunt with the stack's uvicorn serving and ctxbench's own locust
driving it. One JSON per stack under results/versions/, written atomically, with the stack's environment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from apps.harness import registry
from loadtests import scenarios
from scripts.common import environment
from scripts.common import results as resultfiles
from scripts.common.arguments import MAX_SECONDS, non_negative, output_dir, positive_int, seconds
from scripts.common.lock import exclusive_run
from scripts.common.staged import staged_run
from scripts.load import servers
from scripts.load.bounded_run import RunSpec, cells_of, execute
from scripts.load.settings import HUNT_STOP_AT, QUICK_DURATION_S, QUICK_USERS_PER_SCENARIO, QUICK_WARMUP_S
from scripts.versions import envs, report
from scripts.versions.stacks import BY_NAME, STACKS, Stack, lock_problems

VERSIONS_DIR = resultfiles.RESULTS / "versions"
VARIANTS = registry.tagged(registry.VERSION_MATRIX)
# The two uvicorn defaults users run (uvloop + httptools with uvicorn[standard], asyncio + h11 without), each next to
# its --reset-contextvars twin where the stack's uvicorn has the flag.
HUNT_CONFIGS = (servers.UVLOOP_HTTPTOOLS, servers.ASYNCIO_H11)
# 200 mixed requests per in-process scenario: the chained leaks are deterministic (every request after the first
# starts in its predecessor's context), so more requests only cost time on eight stacks.
REQUESTS = 200
# per variant x server config, as the leak hunt runs its cells: the run stops once every scenario cell has a downstream
# leak or HUNT_STOP_AT requests (its clean bound at <= 1%), at the latest after DURATION_S
DURATION_S, WARMUP_S = QUICK_DURATION_S, QUICK_WARMUP_S
INSIDE_TIMEOUT_S = 600


def inside(env: envs.Env, requests: int, variants: tuple[str, ...]) -> dict:
    """The stack's in-process verdicts and matrix, computed by its own interpreter (cwd = repo root)."""
    with tempfile.TemporaryDirectory(prefix="ctxbench-versions-") as tmp:
        out = Path(tmp) / "inside.json"
        command = [str(env.python), "-m", "scripts.versions.in_stack", str(out), str(requests), *variants]
        # subprocess.run kills the child on Ctrl-C (any exception) before re-raising: nothing is left running
        try:
            done = subprocess.run(
                command, cwd=environment.ROOT, timeout=INSIDE_TIMEOUT_S, check=False, stderr=subprocess.PIPE, text=True
            )
        except subprocess.TimeoutExpired:
            return {"status": "error", "reason": f"the in-process run took longer than {INSIDE_TIMEOUT_S} s"}
        except OSError as exc:
            return {"status": "error", "reason": f"the stack's interpreter could not start: {exc}"}
        if done.returncode != 0 or not out.exists():
            sys.stderr.write(done.stderr or "")
            tail = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
            last = tail[-1][:300] if tail else "no output"
            return {"status": "error", "reason": f"exited with {done.returncode}: {last}"}
        try:
            return json.loads(out.read_text())
        except ValueError as exc:
            return {"status": "error", "reason": f"unreadable result: {exc}"}


def hunt_one(env: envs.Env, variant: str, config: servers.ServerConfig, duration_s: float, warmup_s: float) -> dict:
    """One bounded run of every scenario at once; per scenario the leak/lost/other counts, or why it could not run."""
    users = QUICK_USERS_PER_SCENARIO * len(scenarios.SCENARIOS)
    spec = RunSpec(variant, scenarios.EACH, users, duration_s, warmup_s, config, tag="versions", stop_at=HUNT_STOP_AT)
    try:
        with exclusive_run():  # the load sweeps hold the same lock between runs; we wait for the machine
            result = execute(spec, python=str(env.python))
    except Exception as exc:  # the harness failed (the server did not start, a timeout): no verdict, never a leak
        text = str(exc).strip()
        return {"status": "cannot run", "reason": text.splitlines()[-1][:300] if text else type(exc).__name__}
    by_scenario = {
        cell["run"]["scenario"]: {
            key: cell["failures_total"].get(key, 0)
            for key in ("requests", "leak", "lost", "other", "dropped", "failures")
        }
        for cell in cells_of(result)
    }
    return {
        "status": "ran",
        "scenarios": by_scenario,
        "locust_exit_code": result["locust"]["exit_code"],
        "left_behind": result["processes"]["left_behind"],
        "server_command": result["commands"]["server"],
        "server_died": result.get("server_exited"),  # exit code of a server that died mid-run: not a verdict
    }


def hunt(env: envs.Env, variants: tuple[str, ...], reset: bool, duration_s: float, warmup_s: float) -> dict:
    runs: dict[str, dict[str, dict]] = {}
    for variant in variants:
        for plain in HUNT_CONFIGS:
            twin = servers.get(plain.reset_twin) if plain.reset_twin else None
            for config in (plain, twin) if twin else (plain,):
                if config.reset_setting and not reset:
                    runs.setdefault(variant, {})[config.label] = {
                        "status": "n/a",
                        "reason": f"uvicorn {env_version(env)} has no {servers.RESET_FLAG}",
                    }
                    continue
                started = time.monotonic()
                cell = hunt_one(env, variant, config, duration_s, warmup_s)
                runs.setdefault(variant, {})[config.label] = cell
                print(f"    hunt {variant:<24} {config.label:<24} {summary(cell)} ({time.monotonic() - started:.0f}s)")
    return {
        "configs": [c.label for plain in HUNT_CONFIGS for c in (plain, servers.get(plain.reset_twin))],
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "users_per_scenario": QUICK_USERS_PER_SCENARIO,
        "stop_at": HUNT_STOP_AT,
        "reset_flag": reset,
        "runs": runs,
    }


_FROZEN: dict[Path, dict[str, str]] = {}


def env_version(env: envs.Env, package: str = "uvicorn") -> str | None:
    if env.root not in _FROZEN:
        _FROZEN[env.root] = envs.freeze(env)
    return _FROZEN[env.root].get(package)


def summary(cell: dict) -> str:
    if cell["status"] != "ran":
        return f"{cell['status']}: {cell.get('reason', '')}"
    totals = {key: sum(s[key] for s in cell["scenarios"].values()) for key in ("requests", "leak", "lost", "other")}
    return f"leak={totals['leak']} lost={totals['lost']} other={totals['other']} of {totals['requests']}"


def stack_environment(env: envs.Env, measured: dict, parameters: dict) -> dict:
    """describe()'s fields, with the stack's own interpreter and packages in place of the orchestrator's."""
    described = environment.describe(parameters)
    frozen = envs.freeze(env)
    described["orchestrator_python"] = described["python"]
    described["python"] = measured.get("python")
    described["implementation"] = measured.get("implementation")
    described["packages"] = {name: frozen.get(name) for name in environment.PACKAGES}
    described["pip_freeze"] = frozen
    described["venv"] = str(
        env.root.relative_to(environment.ROOT) if env.root.is_relative_to(environment.ROOT) else env.root
    )
    return described


def stack_record(stack: Stack) -> dict:
    return {
        "name": stack.name,
        "python": stack.python,
        "pins": dict(stack.pins),
        "why": stack.why,
        "lock": str(stack.lock.relative_to(environment.ROOT)) if stack.lock.is_relative_to(environment.ROOT) else "",
    }


def run_stack(env: envs.Env, options: argparse.Namespace, out: Path) -> Path:
    """Everything for one stack whose env is ready; the JSON lands in `out` (results/versions/ or its staging)."""
    variants = tuple(options.variant or VARIANTS)
    print(f"  in-process verdicts and matrix ({options.requests} requests per scenario)", flush=True)
    measured = inside(env, options.requests, variants)
    reset = servers.has_reset_flag(env.python)
    if options.skip_hunt:
        hunted: dict = {"status": "skipped", "reason": "--skip-hunt"}
    else:
        print(f"  leak hunt: {len(variants)} variants, {servers.RESET_FLAG}: {'yes' if reset else 'no'}", flush=True)
        hunted = hunt(env, variants, reset, options.duration, options.warmup)
    parameters = {"requests_per_scenario": options.requests, "variants": list(variants)}
    data = {
        "stack": stack_record(env.stack),
        "status": "ran",
        "environment": stack_environment(env, measured, parameters),
        "inprocess": measured,
        "hunt": hunted,
    }
    return resultfiles.write_json(out / f"{env.stack.name}.json", data)


def skipped(stack: Stack, note: str, out: Path, status: str = "skipped") -> Path:
    data = {"stack": stack_record(stack), "status": status, "note": note, "environment": environment.describe()}
    return resultfiles.write_json(out / f"{stack.name}.json", data)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", action="append", choices=list(BY_NAME), help="only these stacks (default: all)")
    parser.add_argument(
        "--variant", action="append", choices=VARIANTS, help="only these variants (default: the version-matrix group)"
    )
    parser.add_argument("--requests", type=positive_int(), default=REQUESTS, help="in-process requests per scenario")
    parser.add_argument("--duration", type=seconds(), default=DURATION_S, help="measured seconds per leak-hunt run")
    parser.add_argument(
        "--warmup", type=non_negative(MAX_SECONDS), default=WARMUP_S, help="warm-up seconds per leak-hunt run"
    )
    parser.add_argument("--skip-hunt", action="store_true", help="in-process verdicts and matrix only")
    parser.add_argument("--lock", action="store_true", help="recompile every stack's lock with uv, then stop")
    parser.add_argument("--results-dir", type=output_dir, default=resultfiles.RESULTS, help="where results/ lives")


def run(args: argparse.Namespace) -> int:
    chosen = [BY_NAME[name] for name in args.stack] if args.stack else list(STACKS)
    if args.lock:
        for stack in chosen:
            print(f"compiled {envs.compile_lock(stack)}")
        return 0
    stale = [problem for stack in chosen for problem in lock_problems(stack)]
    if stale:
        print("stale stack locks (recompile with `ctxbench versions --lock`):\n  " + "\n  ".join(stale))
        return 1
    started = time.monotonic()
    versions_dir = args.results_dir / "versions"
    # Staged, swap with carry-over (scripts.common.staged): results/versions/ is this command's alone, but a run of
    # some stacks (--stack) replaces only their files; the other stacks' are carried over. Nothing is replaced unless
    # every chosen stack was run, skipped or marked "cannot run" with its reason; VERSIONS.md and the chart are drawn
    # after, from the files.
    with staged_run(versions_dir, replaces=()) as stage:
        for index, stack in enumerate(chosen, start=1):
            print(f"[{index}/{len(chosen)}] {stack.name} (Python {stack.python}; {pins_text(stack)})", flush=True)
            try:
                env = envs.ensure(stack)
            except envs.Unavailable as exc:
                print(f"  skipped: {exc}")
                skipped(stack, str(exc), stage.dir)
                continue
            except subprocess.SubprocessError as exc:
                print(f"  skipped: its virtualenv could not be built ({exc})")
                skipped(stack, f"virtualenv could not be built: {exc}", stage.dir)
                continue
            stack_started = time.monotonic()
            try:
                path = run_stack(env, args, stage.dir)
            except Exception as exc:  # e.g. a TimeoutExpired asking its uvicorn: mark this stack, go on with the others
                text = str(exc).strip()
                reason = f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"[:300]
                print(f"  cannot run: {reason}", flush=True)
                path = skipped(stack, reason, stage.dir, status="cannot run")
            print(f"  staged {path.name} ({time.monotonic() - stack_started:.0f}s)", flush=True)
    for path in report.render(args.results_dir):
        print(f"wrote {path}")
    print(f"version matrix done in {time.monotonic() - started:.0f}s")
    return 0


def pins_text(stack: Stack) -> str:
    return ", ".join(f"{name} {version}" for name, version in stack.pins.items())


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace()))
