"""Staged runs: a command writes a new run next to its results and replaces them only once the whole run succeeded.

`staged_run(target)` yields a Stage whose `dir` (`<parent>/.staging-<name>-<pid>-<token>/`, same filesystem) the run
writes into. On success the previous results are replaced in one step a reader never sees half-done:

- swap (a directory its command owns): the staging directory and the target are exchanged by one renameat2 call
  (RENAME_EXCHANGE), then the old one is removed. Files of the target the run does not replace (`replaces` patterns)
  are carried over first, under a lock on the parent, so two commands sharing a directory never drop each other's.
- merge (a directory several commands add to, results/load/): after the whole run, each new file is moved in with
  os.replace; a failed move undoes the ones before it.

On an exception, Ctrl-C, SystemExit or `stage.fail(why)`, the staging directory is removed, the previous files stay
byte for byte and one line says so: "previous results kept (from <commit, date>)". `stage.publish_to(other)` sends the
run somewhere else whatever happens (an incomplete soak). A SIGKILLed run's staging directory is never read (readers
open fixed paths, never dot-directories) and is removed by the next staged run in the same parent: liveness is an
flock on `<staging>.lock`, which the kernel releases when its process dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import fnmatch
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = ".staging-"
LOCK_SUFFIX = ".lock"
OLD_SUFFIX = ".old"  # the previous results during a two-rename swap, where renameat2 cannot exchange
SWAP, MERGE = "swap", "merge"
DESCRIBE_READS = 20  # newest result files read to say which run was kept (results/load/ holds thousands)


@dataclass
class Stage:
    """Where a run writes (`dir`), where it lands on success (`target`), and what the run decided about it."""

    target: Path
    dir: Path
    failed: str | None = None
    redirect: Path | None = None

    def fail(self, why: str) -> None:
        """The run ended without an exception but did not succeed: publish nothing, keep the previous results."""
        self.failed = why

    def publish_to(self, other: Path | None) -> None:
        """Whatever happens from now on, this run's files go to `other` (replacing it), never to the target;
        None: to the target again."""
        self.redirect = other


def staging_prefix(target: Path) -> str:
    return f"{PREFIX}{target.name}-{os.getpid()}-"


def target_of(entry: Path) -> Path | None:
    """The target a staging entry (`.staging-<name>-<pid>-<token>[.old|.lock]`) was made for."""
    name = entry.name.removesuffix(LOCK_SUFFIX).removesuffix(OLD_SUFFIX)
    parts = name.removeprefix(PREFIX).rsplit("-", 2)
    return entry.with_name(parts[0]) if name.startswith(PREFIX) and len(parts) == 3 else None


def _try_lock(path: Path) -> int | None:
    """An fd holding `path`'s flock, or None when a live run holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def clean_stale(parent: Path) -> list[Path]:
    """Remove what SIGKILLed staged runs left in `parent` (their lock is free); restore a target a swap had moved."""
    removed = []
    if not parent.is_dir():
        return removed
    bases = {entry.name.removesuffix(LOCK_SUFFIX).removesuffix(OLD_SUFFIX) for entry in parent.glob(f"{PREFIX}*")}
    for base in sorted(bases):
        staging, lock = parent / base, parent / f"{base}{LOCK_SUFFIX}"
        fd = _try_lock(lock)
        if fd is None and lock.exists():
            continue  # a live run
        try:
            old, target = parent / f"{base}{OLD_SUFFIX}", target_of(staging)
            if old.exists() and target is not None and not target.exists():
                os.rename(old, target)  # killed between the two renames of a fallback swap: the old run comes back
            for path in (staging, old):
                if path.exists():
                    shutil.rmtree(path)
                    removed.append(path)
            lock.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
    return removed


def _own_lock(parent: Path, target: Path) -> tuple[int, Path]:
    """Create and flock a new `<staging>.lock` (the staging directory is made after it: never without a lock)."""
    while True:
        base = parent / f"{staging_prefix(target)}{secrets.token_hex(4)}"
        lock = base.with_name(base.name + LOCK_SUFFIX)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd, base
        os.close(fd)  # a cleaner took it for stale between open and flock: start again under a new name


@contextlib.contextmanager
def _parent_lock(parent: Path) -> Iterator[None]:
    """Publishes into one parent happen one at a time (carry-over, then swap): an flock on the directory itself."""
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Exchange two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(a))


def exchange(staging: Path, target: Path) -> None:
    """Afterwards `target` holds the new run and `staging` the previous one."""
    if _renameat2_exchange(staging, target):
        return
    # Two renames: a reader may find the target missing for an instant, never half of it; a kill in between is
    # undone by clean_stale (the `.old` directory goes back).
    old = staging.with_name(staging.name + OLD_SUFFIX)
    os.rename(target, old)
    os.rename(staging, target)
    os.rename(old, staging)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _carry_over(target: Path, staging: Path, replaces: tuple[str, ...]) -> None:
    """Copy into the new run what it does not replace: the target's entries it neither wrote nor matches."""
    for entry in target.iterdir():
        if (staging / entry.name).exists() or _matches(entry.name, replaces) or entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name)
        else:
            shutil.copy2(entry, staging / entry.name)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _merge(staging: Path, target: Path) -> None:
    """Move every new file in; on a failure put back what was there (a hard link kept it) and remove the rest."""
    target.mkdir(parents=True, exist_ok=True)
    moved: list[tuple[Path, Path | None]] = []
    entries = [p for p in sorted(staging.rglob("*")) if p.is_file() and not _hidden(p.relative_to(staging))]
    try:
        for number, entry in enumerate(entries):
            destination, saved = target / entry.relative_to(staging), None
            destination.parent.mkdir(parents=True, exist_ok=True)  # a record in a folder (results/load/hunt/)
            if destination.exists():
                saved = staging / f".previous-{number}"
                os.link(destination, saved)
            os.replace(entry, destination)
            moved.append((destination, saved))
    except BaseException:
        for destination, saved in reversed(moved):
            if saved is not None:
                os.replace(saved, destination)
            else:
                destination.unlink(missing_ok=True)
        raise


def _publish(stage: Stage, mode: str, replaces: tuple[str, ...], finalize: Callable[[Path], None] | None) -> Path:
    destination = stage.redirect or stage.target
    with _parent_lock(destination.parent):
        if mode == MERGE and stage.redirect is None:
            if finalize:
                finalize(stage.dir)
            _merge(stage.dir, destination)
            return destination
        if destination.is_dir() and stage.redirect is None:
            _carry_over(destination, stage.dir, replaces)
        if finalize:
            finalize(stage.dir)
        if destination.exists():
            exchange(stage.dir, destination)
        else:
            os.rename(stage.dir, destination)
    return destination


def _json_environment(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    environment = data.get("environment") if isinstance(data, dict) else None
    return environment if isinstance(environment, dict) else None


def previous_origin(target: Path, patterns: tuple[str, ...] = ("*",)) -> str | None:
    """`<commit>, <date>` of the newest previous result (its environment block), the file's mtime without one."""
    import datetime as dt

    if not target.is_dir():
        return None
    files = [p for p in target.iterdir() if p.is_file() and not p.name.startswith(".") and _matches(p.name, patterns)]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for path in [p for p in files if p.suffix == ".json"][:DESCRIBE_READS]:
        environment = _json_environment(path)
        commit = ((environment or {}).get("git") or {}).get("commit")
        if commit:
            dirty = " (dirty)" if environment["git"].get("dirty") else ""
            return f"{commit[:10]}{dirty}, {environment.get('created_utc', '?')}"
    if not files:
        return None
    stamp = dt.datetime.fromtimestamp(files[0].stat().st_mtime, dt.UTC).isoformat(timespec="seconds")
    return f"unknown commit, file time {stamp}"


def kept_line(target: Path, patterns: tuple[str, ...], why: str) -> str:
    origin = previous_origin(target, patterns)
    kept = f"previous results kept (from {origin})" if origin else "previous results kept (there were none)"
    return f"{kept}: {target} is as it was; this run {why}"


def _why(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "was interrupted"
    if isinstance(error, SystemExit):
        return f"exited ({error.code})"
    return f"failed ({type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''})"


@contextlib.contextmanager
def staged_run(
    target: Path,
    *,
    mode: str = SWAP,
    replaces: tuple[str, ...] = ("*",),
    finalize: Callable[[Path], None] | None = None,
    origin: tuple[str, ...] | None = None,
) -> Iterator[Stage]:
    """Run the body against a fresh staging directory; publish it into `target` only if the body succeeded.

    `replaces` (swap): the target's entries this run replaces; the rest is carried over ("*": the run owns it all).
    `finalize(staging)`: runs just before the swap, on the merged directory (a summary over every file in it).
    `origin`: the files that say which run is kept (default: those it replaces, or all).
    """
    target = Path(os.path.abspath(target))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(parent)
    fd, base = _own_lock(parent, target)
    lock = base.with_name(base.name + LOCK_SUFFIX)
    stage = Stage(target, base)
    described = origin or (replaces if mode == SWAP and replaces else ("*",))
    try:
        base.mkdir()
        try:
            yield stage
        except BaseException as error:
            if stage.redirect is not None:
                _publish_elsewhere(stage, _why(error), described)
            else:
                print(kept_line(target, described, _why(error)), file=sys.stderr, flush=True)
            raise
        if stage.failed is not None and stage.redirect is None:
            print(kept_line(target, described, stage.failed), file=sys.stderr, flush=True)
            return
        if stage.redirect is not None:
            _publish_elsewhere(stage, stage.failed or "did not complete", described)
            return
        try:
            _publish(stage, mode, replaces, finalize)
        except BaseException as error:
            print(kept_line(target, described, f"could not be published: {_why(error)}"), file=sys.stderr)
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(base)  # the staging directory, or (after a swap) the previous results
        lock.unlink(missing_ok=True)
        os.close(fd)


def _publish_elsewhere(stage: Stage, why: str, described: tuple[str, ...]) -> None:
    assert stage.redirect is not None
    line = kept_line(stage.target, described, why)
    try:
        _publish(stage, SWAP, ("*",), None)
    except BaseException as error:
        print(f"{line}; its own results could not be written: {_why(error)}", file=sys.stderr, flush=True)
        raise
    print(f"{line}; its results: {stage.redirect}", file=sys.stderr, flush=True)
