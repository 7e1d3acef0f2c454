"""The journal file, as Optuna's JournalFileBackend and JournalFileOpenLock keep it, made safe to reopen after
any crash. Optuna loads only when a journal is opened (`journal_backend`): the classes are made then.

- A last line cut short (a writer stopped in the middle of it: a power cut, a full disk, a kill during a large
  write) is skipped by Optuna's reader, but the next append lands on it and turns two operations into one
  broken line in the middle of the file, for good. So, once the journal's lock is held and before anything is
  appended, such a tail is cut back to the last newline. Only a writer holding the lock appends, so an
  unterminated tail seen under the lock is a dead writer's; no reader has used it (Optuna records a line only
  once it ends in a newline). The bytes cut off are kept beside the journal (studies.journal.torn-<time>-<hex>),
  and `Journal.repairs` says so.
- A whole line that is not an operation (not UTF-8, not JSON, not Optuna's) stops reading with JournalError
  naming the file, the line and what to do. Optuna would raise a bare JSONDecodeError or UnicodeDecodeError at
  the line after it, or, for a bad last line, skip it silently until the next append.
- A failed write (a read-only file or folder) raises JournalError naming the file and the fix.
"""
from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from core.tuning.journal_file import JournalError, check_journal_path

if TYPE_CHECKING:
    from optuna.storages.journal import JournalFileBackend

TAIL_CHUNK = 1 << 16  # bytes read at a time, backwards from the end, to find a torn tail's last newline
N_OPERATIONS = 11  # Optuna's journal operations are numbered 0-10 (JournalOperation)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_log = logging.getLogger(__name__)


def journal_backend(path: str) -> "JournalFileBackend":
    """Optuna's journal file backend for `path`, with the repairs and messages above; JournalError when the path
    cannot be a journal."""
    return _classes()(path)


@functools.cache
def _classes() -> type:
    """The Journal class, made on first use (it subclasses Optuna's, which loads here, not at import)."""
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    from optuna.storages.journal._file import get_lock_file

    class RepairingLock(JournalFileOpenLock):
        """Optuna's open-file lock (the same lock file as every Optuna process on this journal); once it is held,
        the journal is made to end on a whole line."""

        def __init__(self, journal: "Journal") -> None:
            super().__init__(journal.path)
            self.journal = journal

        def acquire(self) -> bool:
            super().acquire()
            try:
                self.journal.cut_torn_tail()
            except BaseException:
                self.release()
                raise
            return True


    class Journal(JournalFileBackend):
        """Optuna's journal file backend whose appends never land on a torn last line, whose reads name the file
        and line of any damage, and whose failed writes say why."""

        def __init__(self, path: str) -> None:
            check_journal_path(Path(path))
            self.path = path
            self.repairs: list[str] = []  # what this process repaired, for the page and the command line to show
            try:
                super().__init__(path, lock_obj=RepairingLock(self))
            except OSError as e:
                raise JournalError(f"storage: cannot use the journal file {path} ({e.strerror or e})") from None
            if self._torn():  # repaired now, so that this process can say so before its first write
                try:
                    self._locked(lambda: None)
                except JournalError as e:
                    self.repairs.append(f"{path}: its last line is cut short and could not be cut off ({e}); the "
                                        "studies can be read, not changed")

        def _locked(self, fn: Callable[[], Any]) -> Any:
            try:
                with get_lock_file(self._lock):
                    return fn()
            except OSError as e:
                raise JournalError(self._cannot_write(e)) from None

        def _cannot_write(self, e: OSError) -> str:
            return (f"cannot write the journal file {self.path} ({e.strerror or e}): make it and its folder (where "
                    "its lock file goes) writable, or give another file with --storage or STUDY_STORAGE")

        def _torn(self) -> bool:
            try:
                with open(self.path, "rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    return size > 0 and os.pread(f.fileno(), 1, size - 1) != b"\n"
            except OSError:
                return False

        def cut_torn_tail(self) -> None:
            """Cut a last line that does not end in a newline back to the previous newline, keeping the bytes cut
            off in a file beside the journal. Only while the journal's lock is held."""
            fd = os.open(self.path, os.O_RDWR | _NOFOLLOW)
            try:
                size = os.fstat(fd).st_size
                if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
                    return
                end = size
                while end > 0:  # the last newline, a chunk at a time from the end
                    start = max(0, end - TAIL_CHUNK)
                    i = os.pread(fd, end - start, start).rfind(b"\n")
                    end = start + i + 1 if i >= 0 else start
                    if i >= 0:
                        break
                tail = os.pread(fd, size - end, end)
                kept = Path(self.path).with_name(f"{Path(self.path).name}.torn-{time.strftime('%Y%m%d-%H%M%S')}-"
                                                  f"{uuid.uuid4().hex[:6]}")
                with os.fdopen(os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644), "wb") as f:
                    f.write(tail)
                    f.flush()
                    os.fsync(f.fileno())
                os.ftruncate(fd, end)  # only after the cut bytes are safe beside it
                os.fsync(fd)
            finally:
                os.close(fd)
            note = (f"{self.path}: its last line was cut short ({len(tail):,} bytes: a writer stopped in the middle of "
                    f"it). Those bytes were cut off before anything was appended and kept in {kept}; every whole line, "
                    "and so every trial recorded, is as it was")
            self.repairs.append(note)
            _log.warning(note)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            try:
                super().append_logs(logs)
            except OSError as e:  # the lock file (a read-only folder) or the journal itself (a read-only file)
                raise JournalError(self._cannot_write(e)) from None

        def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
            line = log_number_from  # log n is line n + 1 of the file
            try:
                size = os.stat(self.path).st_size  # whole lines within it must all be read (the file only grows)
                for log in super().read_logs(log_number_from):
                    if not (isinstance(log, dict) and isinstance(log.get("op_code"), int)
                            and 0 <= log["op_code"] < N_OPERATIONS and isinstance(log.get("worker_id"), str)):
                        raise ValueError("not an operation of a study")
                    line += 1
                    yield log
                start = self._log_number_offset.get(line)
                if start is not None and start < size:  # Optuna skips a bad last line silently: find it
                    with open(self.path, "rb") as f:
                        if b"\n" in os.pread(f.fileno(), size - start, start):
                            raise ValueError("not an operation of a study")
            except OSError as e:
                raise JournalError(f"cannot read the journal file {self.path} ({e.strerror or e})") from None
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, Optuna's "Invalid log format.", ours
                raise JournalError(
                    f"the journal file {self.path} is damaged at line {line + 1} ({str(e)[:120]}): no study in it "
                    "can be read until that line is removed or mended. Keep a copy of the file, then delete that line "
                    "with a text editor (its study loses that one operation), or move the file away to start an empty "
                    "one; the trials' runs stay in the runs folder either way") from None

    return Journal
