"""One writer per run directory and per prepared-data directory.

Two ``--resume`` of one run, or two prepares into one ``--out``, would otherwise interleave
(duplicated epochs, more checkpoints than ``keep_checkpoints``, a dataset replaced under a
reader). :func:`hold` takes an exclusive ``flock`` on a sibling lock file ``.<name>.lock`` (a
sibling, because a prepared directory is replaced as a whole); a second process is refused at
once with the holder's pid and host. The kernel drops the lock when its holder exits, even on
SIGKILL, so a crash never leaves a stale lock. ``flock`` is per machine (and per NFS server):
two machines writing one run on shared storage are not serialised by it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import BusyError


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def hold(path: str | Path, what: str) -> Iterator[None]:
    """Hold the lock of ``path`` for the block, or raise :class:`BusyError` naming the holder."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
            raise BusyError(f"{what}: {Path(path)} is in use by {holder} (lock {lock}); wait for it to finish or "
                            f"stop it, then try again. Nothing was changed.") from None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} (since {stamp})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
