"""The run store's file primitives: nothing outside the runs folder is ever read, written or deleted.

- A run id must match the store's own format (RUN_ID), so `..`, `/abs`, `a/b` and the like never become paths.
- A run folder must be a real folder, not a symbolic link (`run_dir`).
- Files are opened with O_NOFOLLOW and must be regular files (`read_file`): a weights file linked to
  /etc/passwd is refused, not read. Writes go to a fresh temporary name (O_EXCL) and are renamed over the
  target, which replaces a link rather than following it.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import BinaryIO

RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")  # time.strftime("%Y%m%d-%H%M%S-") + 6 hex digits
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where the lstat checks below still hold
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not hang the server
MAX_SMALL_FILE = 1 << 20  # config.json, status.json, probes.json: far larger is not ours


class StoreFileError(OSError):
    """A file of a run cannot be used: missing, not a regular file, a link, too large or unreadable."""


class StoreFileMissing(StoreFileError):
    """The file is not there."""


class UnknownRunError(KeyError):
    """No run with this id (or an id that is not of the store's format)."""

    def __str__(self) -> str:  # KeyError's own str() adds quotes around the message
        return str(self.args[0]) if self.args else "unknown run"


class RunsFolderError(RuntimeError):
    """The runs folder itself cannot be used (a file, read-only, not creatable)."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def is_run_id(name: object) -> bool:
    return isinstance(name, str) and RUN_ID.fullmatch(name) is not None


def check_run_id(run_id: object) -> str:
    """The id itself, or UnknownRunError when it is not of the store's own format (never a path)."""
    if not is_run_id(run_id):
        raise UnknownRunError(f"No run {run_id!r}: run ids look like 20260101-120000-1a2b3c")
    return run_id


def created_from_id(run_id: str) -> float:
    """The creation time a run id records (local time, to the second); 0 for an impossible date."""
    try:
        return time.mktime(time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except (ValueError, OverflowError):
        return 0.0


def run_dir(root: Path, run_id: str) -> Path:
    """root/run_id after checking the id's format and that it is a real folder, not a link."""
    d = root / check_run_id(run_id)
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        raise UnknownRunError(f"No run {run_id!r}") from None
    if stat.S_ISLNK(st.st_mode):
        raise StoreFileError(f"{d} is a symbolic link: the store uses nothing outside {root}")
    if not stat.S_ISDIR(st.st_mode):
        raise StoreFileError(f"{d} is not a folder")
    return d


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file that is not a symbolic link for reading; StoreFileError saying why not."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        raise StoreFileMissing(f"{path.name} is missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise StoreFileError(f"{path.name} is a symbolic link (not followed)") from None
        raise StoreFileError(f"{path.name} cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode) or os.path.islink(path):  # islink: where O_NOFOLLOW is missing
        os.close(fd)
        raise StoreFileError(f"{path.name} is " + ("a symbolic link (not followed)" if os.path.islink(path) else
                                                   "not a regular file"))
    return os.fdopen(fd, "rb")


def read_file(path: Path, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of a regular file that is not a symbolic link, at most `limit` of them (StoreFileError if more)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise StoreFileError(f"{path.name} is {size:,} bytes, more than the {limit:,} a run writes")
        try:
            return f.read(limit)
        except OSError as e:
            raise StoreFileError(f"{path.name} cannot be read ({e.strerror})") from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old file or the new one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines and fsync; a symbolic link in place of the file is refused, not followed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
    with os.fdopen(fd, "a") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())


def remove_run_dir(root: Path, run_id: str) -> None:
    """Delete root/run_id: a link is unlinked (its target is left alone), a folder removed with everything in
    it (shutil.rmtree does not follow links inside). Failures raise OSError naming the path."""
    d = root / check_run_id(run_id)
    st = os.lstat(d)  # FileNotFoundError when it is gone
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        os.unlink(d)
    else:
        shutil.rmtree(d)


def check_runs_folder(root: Path) -> Path:
    """Create the runs folder if needed and prove it is writable; RunsFolderError naming the folder and the fix."""
    fix = ("Set RUNS_DIR (or --runs-dir on the command line) to a folder this program may write to, or make "
           f"{root} one.")
    if root.exists() and not root.is_dir():
        raise RunsFolderError(f"The runs folder {root} is a file, not a folder. {fix}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunsFolderError(f"The runs folder {root} cannot be created ({e.strerror}). {fix}") from None
    probe = root / f".write-test-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunsFolderError(f"The runs folder {root} is not writable ({e.strerror}). {fix}") from None
    return root
