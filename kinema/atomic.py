"""Atomic writes: build the output under a temporary sibling name, then switch it into place.

An interrupted or failed write never leaves a half-written file or folder at the destination,
and an existing one there is only replaced once the new one is complete (and synced to disk).

A file is switched with one rename. A folder (a checkpoint, a folder of frames) that already
exists is switched with one `renameat2(RENAME_EXCHANGE)` on Linux: the new folder and the old
one trade names in a single step, so `path` is always a complete folder, old or new. Where the
kernel or filesystem cannot exchange, it takes two renames (old aside, new in); a kill between
them leaves `path` missing with the old folder beside it, which `recover` puts back. Leftovers
of killed writes (`.NAME.*.part`, `.NAME.*.old`) are removed by `recover`, which a process
holding the folder's lock (a training run) calls at start.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import WriteError

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _fault(point: str) -> None:
    """Called between the steps of a folder switch ("written", "aside", "switched"); does nothing.
    Tests replace it to kill the process at each step and check what a restart finds."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, folder: bool = False, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success switch it into place, else delete it.

    With `folder=True` the temporary path is a fresh directory, switched in at the end; `path`
    must then be absent or an empty directory, unless `replace=True`: then an existing folder is
    replaced as a whole. A file destination that exists must be a regular file: kinema never
    replaces a device, a pipe or a folder with a file (as root, `--json /dev/null` would).
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    check_destination(path, folder=folder, replace=replace)
    try:
        if folder:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if folder else 0o666) & ~umask)  # mkstemp/mkdtemp make 0600/0700
        _sync(tmp)
        _fault("written")
        if folder:
            _switch_folder(tmp, path)
        else:
            check_destination(path)  # still a file (or nothing): the work may have taken minutes
            os.replace(tmp, path)
        _sync_dir(parent)
    except BaseException as e:
        discard(tmp)
        if isinstance(e, OSError):
            raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
        raise


def check_destination(path: Path, *, folder: bool = False, replace: bool = False) -> None:
    """Refuse a destination that atomic_path must not replace, before any work is done: a missing
    parent folder, an existing non-regular file (device, pipe, socket) or a folder where a file is
    meant, or (for folders) an existing non-empty folder without `replace`."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise WriteError(f"cannot write {path}: folder {parent} does not exist")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
    if folder:
        if not stat.S_ISDIR(st.st_mode):
            raise WriteError(f"cannot write {path}: it exists and is not a folder")
        if not replace and any(path.iterdir()):
            raise WriteError(f"cannot write {path}: the folder exists and is not empty")
    elif not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise WriteError(f"cannot write {path}: it exists and is {kind}; kinema only replaces regular files")


def _switch_folder(tmp: Path, path: Path) -> None:
    """Put the complete folder `tmp` at `path`, replacing what is there in one step if possible."""
    if not os.path.lexists(path):
        os.rename(tmp, path)  # rename(2) onto a missing name: atomic
        _fault("switched")
        return
    check_destination(path, folder=True, replace=True)
    if exchange(tmp, path):  # tmp now holds the old folder
        _fault("switched")
        discard(tmp)
        return
    old = path.with_name(f"{tmp.name.removesuffix('.part')}.old")  # .NAME.XXXX.old
    os.rename(path, old)
    _fault("aside")
    os.rename(tmp, path)
    _fault("switched")
    discard(old)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names `a` and `b` (Linux renameat2 RENAME_EXCHANGE). False where the
    kernel, the C library or the filesystem cannot: the caller falls back to two renames."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


_RENAMEAT2: list = []


def _renameat2():
    if not _RENAMEAT2:
        fn = None
        if os.name == "posix" and os.uname().sysname == "Linux":
            try:
                fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # glibc >= 2.28, musl
            except OSError:
                fn = None
            if fn is not None:
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                fn.restype = ctypes.c_int
        _RENAMEAT2.append(fn)
    return _RENAMEAT2[0]


def recover(path: str | os.PathLike) -> list[Path]:
    """Tidy what killed writes of `path` left beside it, and return what was removed. If `path`
    is missing but an old copy was set aside (a kill between the two renames of the fallback),
    the old copy is put back first: a complete folder, never a half-written one. Only call this
    while holding the lock of the folder `path` lives in: another writer's work in progress
    looks the same as a leftover."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return []
    olds = sorted(parent.glob(f".{path.name}.*.old"), key=lambda q: q.stat().st_mtime)
    if not os.path.lexists(path) and olds:
        os.rename(olds.pop(), path)  # the newest complete copy
    leftovers = olds + sorted(parent.glob(f".{path.name}.*.part"))
    for q in leftovers:
        discard(q)
    return leftovers


def discard(p: Path) -> None:
    """Delete a file or folder if it is there."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _sync(p: Path) -> None:
    """Flush a file, or every file of a folder, to disk: a switch must not publish data that a
    power cut could still lose."""
    files = [q for q in p.rglob("*") if q.is_file()] if p.is_dir() else [p]
    for q in files:
        fd = os.open(q, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if p.is_dir():
        _sync_dir(p)


def _sync_dir(p: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem syncs directories
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
