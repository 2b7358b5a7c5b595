"""A small file system that fills up: a size-limited tmpfs, for full-disk tests.

Mounting takes root, as CI runs; the mount is undone whatever the test did (lazily,
should a file still be open in it).
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import errno
import os
from pathlib import Path
import shutil
import subprocess


@contextlib.contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[Path]:
    """Mount a tmpfs of `size` bytes on `folder` (made if need be) for the block."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    assert mount is not None
    assert umount is not None
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run([umount, "--lazy", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write a ballast file into `folder` until its file system is full; return it."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            os.write(fd, b"\xa5" * 65536)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return ballast


def free_bytes(folder: Path) -> int:
    """Bytes the file system of `folder` has free."""
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize
