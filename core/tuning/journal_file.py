"""What a journal file path must be, and the error a journal gives: no Optuna needed to check or to catch it."""
from __future__ import annotations

import os
import stat
from pathlib import Path

JOURNAL_NAME = "studies.journal"  # a file, not a folder: the run store lists folders only


class JournalError(ValueError):
    """A journal file that cannot be read or written; the message names the file and what to do."""


def check_journal_path(path: Path) -> None:
    """A journal is a regular file (or not there yet): never a folder, a link, a device or a pipe."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise JournalError(f"storage: cannot use the journal file {path} ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise JournalError(f"storage: {path} is a folder; give a journal file path such as {path / JOURNAL_NAME}")
    if stat.S_ISLNK(st.st_mode):
        raise JournalError(f"storage: {path} is a symbolic link, which is not followed; give the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise JournalError(f"storage: {path} is not a regular file (a device or a pipe); give a journal file "
                           f"path such as {path.parent / JOURNAL_NAME} in a folder you may write to")
