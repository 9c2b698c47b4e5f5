"""`probe(...)` for the user's own tests: the README's example runs here, and bad usage raises one exception type."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctxbench import ProbeResult, ProbeUsageError, StaleValue, probe
from ctxbench.probing import api, command

ROOT = Path(__file__).resolve().parents[1]
PROBE_APPS = ROOT / "tests" / "probe_apps"
TIMEOUT_S = 280  # a run may wait for the machine lock (another ctxbench run)


def readme_example() -> tuple[str, str]:
    """(file name, source) of the README's pytest example: the python block that imports `probe` from ctxbench."""
    readme = (ROOT / "README.md").read_text()
    source = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "from ctxbench" in block)
    name = source.splitlines()[0].lstrip("# ").split(":")[0]  # `# tests/test_context_leaks.py: ...`
    return Path(name).name, source


def run_example(project: Path) -> subprocess.CompletedProcess[str]:
    name, source = readme_example()
    (project / name).write_text(source)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def test_the_readmes_pytest_example_fails_on_a_leaking_app_and_passes_the_fix(tmp_path: Path) -> None:
    project = tmp_path / "svc"  # a user's project: their app as main.py, the example among their tests
    project.mkdir()
    shutil.copy(PROBE_APPS / "set_only_app.py", project / "set_only_app.py")
    shutil.copy(PROBE_APPS / "set_only_app.py", project / "main.py")
    leaking = run_example(project)
    assert leaking.returncode == 1, leaking.stdout + leaking.stderr
    assert "stale state found on: uvloop-httptools" in leaking.stdout  # the failure shows the probe's report
    assert "tenant" in leaking.stdout
    shutil.copy(PROBE_APPS / "fresh_context_app.py", project / "main.py")
    fixed = run_example(project)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_the_result_holds_the_verdict_rows_and_stale_values_as_objects() -> None:
    result = probe(
        "set_only_app:app",
        app_dir=PROBE_APPS,
        servers="uvloop-httptools",  # one label, not its characters
        identity_headers="X-Tenant-ID",
        requests=60,
    )
    assert isinstance(result, ProbeResult)
    assert result.verdict == "stale" and result.exit_code == 1
    assert [row.traffic for row in result.rows] == ["concurrent GET /", "pipelined GET /"]
    assert {row.verdict for row in result.rows} == {"clean", "stale"}
    tenant = next(value for value in result.stale if value.name == "tenant")
    assert isinstance(tenant, StaleValue) and tenant.module == "set_only_app" and tenant.type == "str"
    assert tenant.requests == tenant.kept + tenant.replaced > 0 and tenant.data_leaks > 0
    assert tenant.server == "uvloop-httptools" and tenant.traffic == "pipelined GET /"
    assert result.report().startswith(result.table) and result.summary in result.report()
    assert result.fix and result.fix in result.report()


@pytest.mark.parametrize(
    ("keywords", "expected"),
    [
        ({"app": "nocolon"}, "MODULE:APP"),
        ({"servers": ["no-such-label"]}, "unknown server label"),
        ({"front": "no-such-front"}, "unknown front"),
        ({"paths": ["no-slash"]}, "must start with /"),
        ({"identity_headers": ["bad header"]}, "not a header name"),
        ({"identity_format": "base64"}, "unknown identity format"),
        ({"fail_on": "some"}, "unknown stale state to fail on"),
        ({"requests": 1}, "requests"),
        ({"requests": "60"}, "must be an integer"),
        ({"python": "/nonexistent/bin/python"}, "no Python interpreter"),
        ({"app_dir": "/nonexistent"}, "no such app directory"),
        ({"json_path": "/nonexistent/dir/out.json"}, "no such directory"),
        ({"app": "nosuchmodule:app"}, "cannot import 'nosuchmodule'"),
    ],
)
def test_bad_usage_raises_one_exception_type(keywords: dict, expected: str) -> None:
    arguments = {"app": "plain_asgi:app", "app_dir": PROBE_APPS, "servers": ["asyncio-h11"], **keywords}
    with pytest.raises(ProbeUsageError, match=re.escape(expected)):
        probe(arguments.pop("app"), **arguments)


def test_the_cli_is_a_thin_layer_over_the_function() -> None:
    """Every option of `ctxbench probe` is a keyword of `probe` (the CLI parses, calls it, prints its report)."""
    import argparse
    import inspect

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    options = {action.dest for action in parser._actions if action.dest not in ("help", "app")}
    renamed = {"server": "servers", "path": "paths", "identity_header": "identity_headers", "json": "json_path"}
    keywords = set(inspect.signature(api.probe).parameters)
    assert {renamed.get(option, option) for option in options} <= keywords
