"""Files that hold what callers said (reports, spools, the hub's store): this user's only."""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any


def make_private_dirs(path: Path) -> None:
    """mkdir -p, creating each missing folder 0700 whatever the umask (existing ones are left alone)."""
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    for d in reversed(missing):  # mkdir(parents=True) would not apply the mode to all of them
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)


def open_private(path: Path, **kw: Any) -> IO[Any]:
    """open(path, "w"): a new file is created 0600, whatever the umask; an existing file keeps
    the mode its owner gave it."""
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        return os.fdopen(fd, "w", **kw)
    except BaseException:
        os.close(fd)
        raise
