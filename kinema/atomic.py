"""Atomic writes: build the output under a temporary sibling name, then rename it into place.

An interrupted or failed write never leaves a half-written file at the destination, and an
existing file there is only replaced once the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import WriteError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, folder: bool = False, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path`, else delete it.

    With `folder=True` the temporary path is a fresh directory, renamed over `path` at the end
    (which must then be absent or an empty directory, unless `replace=True`: then an existing
    folder is moved aside, the new one renamed in, and the old one deleted).
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise WriteError(f"cannot write {path}: folder {parent} does not exist")
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
        old = None
        if folder and path.is_dir() and (replace or not any(path.iterdir())):
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
        raise
