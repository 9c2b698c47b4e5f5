"""Result files get the mode the umask gives (0644 under 0022), like any file a program writes, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.common import results
from scripts.common.environment import ROOT


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    os.umask(previous)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_the_atomic_writer_gives_the_umask_mode(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    written = [
        results.write_json(tmp_path / "a.json", {"x": 1}),
        results.write_text(tmp_path / "deeper" / "b.md", "text\n"),
    ]
    plain = tmp_path / "plain"
    plain.write_text("as open() makes it")
    assert [mode(path) for path in written] == [0o666 & ~mask] * 2 == [mode(plain)] * 2


def test_a_result_rewritten_in_place_gets_the_umask_mode_again(tmp_path: Path, umask: None) -> None:
    path = tmp_path / "summary.json"
    os.umask(0o077)
    results.write_json(path, {})
    assert mode(path) == 0o600
    os.umask(0o022)
    results.write_json(path, {})
    assert mode(path) == 0o644


def test_the_report_command_writes_a_report_others_can_read(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "scripts.cli", "report", "--results-dir", str(tmp_path), "--no-rebuild"]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o022)
    )
    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "REPORT.md") == 0o644
