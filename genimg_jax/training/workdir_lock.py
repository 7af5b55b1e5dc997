"""One writer per workdir: `<workdir>/lock` names the run that holds it (host, pid, since when).

Two runs writing one workdir interleave checkpoints and logs of different runs, so a second run stops with one line
naming the holder. The lock is a file created with O_EXCL (atomic on local file systems and on NFS v3+), removed
when the run ends however it ends short of SIGKILL. A lock left behind by a dead process is taken over, but only
when the holder ran on this host: a pid can only be checked here. A lock of another host is never taken over
(that run may be alive); the message says so and that deleting the file releases it.

An object store (gs://) has no exclusive create that epath exposes: there the lock is checked, written and read
back, which stops a run started while another holds the lock, though two runs started within the same moment could
both pass.

With several processes, process 0 holds the one lock of the run and every process learns whether it got it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
from collections.abc import Iterator

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from genimg_jax.config import ConfigError
from genimg_jax.training import paths

LOCK_NAME = "lock"


def _holder() -> dict:
    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": since, "processes": jax.process_count()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _read(path: epath.Path) -> dict | None:
    """The holder recorded in `path`, {} if the file is unreadable or half written, None if there is no file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}


def _create(path: epath.Path, holder: dict) -> bool:
    """Create the lock naming `holder`; False if it exists already."""
    if not paths.is_local(path):  # no O_EXCL on an object store: check, write, and read back who won
        if path.exists():
            return False
        path.write_text(json.dumps(holder) + "\n")
        return _read(path) == holder
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps(holder) + "\n")
    return True


def _is_stale(holder: dict) -> bool:
    return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))


def _take_over(path: epath.Path, stale: dict, holder: dict) -> bool:
    """Replace the stale lock `stale` by one naming `holder`, unless another run replaced it first.

    The stale file is moved aside under a name of our own (atomic); if what was moved is not the lock we judged
    stale, another run took it over in between, and it is put back.
    """
    if not paths.is_local(path):  # no rename-then-link there; the same check-write-read as `_create`
        path.unlink(missing_ok=True)
        return _create(path, holder)
    aside = path.with_name(f"{LOCK_NAME}.stale-{holder['pid']}")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return _create(path, holder)
    moved = _read(aside)
    if moved != stale:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
        aside.unlink()
        return False
    aside.unlink()
    return _create(path, holder)


def _describe(holder: dict) -> str:
    if not holder:
        return "an unreadable lock"
    return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('since')}"


def _acquire(workdir: epath.Path, holder: dict) -> str | None:
    """Take the lock for `holder`; None on success, else why not (one line)."""
    path = workdir / LOCK_NAME
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # the lock may vanish or change hands between the steps
            if _create(path, holder):
                return None
            current = _read(path)
            if current is None:
                continue
            if current and _is_stale(current):
                if _take_over(path, current, holder):
                    print(f"took over the lock of {workdir} from {_describe(current)}, which is no longer running")
                    return None
                continue
            where = "" if current.get("host") == socket.gethostname() else " (another host: it cannot be checked here)"
            return (
                f"workdir {workdir} is in use by {_describe(current)}{where}; wait for that run to end, use another "
                f"--workdir, or delete {path} if that run is dead"
            )
        return f"workdir {workdir}: could not take its lock {path}; another run is starting there"
    except OSError as error:
        return f"cannot write to workdir {workdir} ({error.strerror or error}: {error.filename or path})"


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of `workdir` for the run (process 0 takes it); ConfigError naming the holder if it is taken."""
    workdir = paths.absolute(workdir)
    holder = _holder()
    created = not workdir.exists()  # a run stopped by bad input before writing anything leaves no workdir behind
    problem = _acquire(workdir, holder) if jax.process_index() == 0 else None
    if jax.process_count() > 1:
        refused = multihost_utils.broadcast_one_to_all(np.int32(problem is not None))
        problem = problem or (f"workdir {workdir} is locked (see process 0)" if refused else None)
    if problem:
        raise ConfigError(problem)
    try:
        yield
    finally:
        if jax.process_index() == 0 and _read(workdir / LOCK_NAME) == holder:
            (workdir / LOCK_NAME).unlink()
            if created and paths.is_local(workdir) and not any(workdir.iterdir()):
                workdir.rmdir()
