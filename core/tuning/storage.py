"""Where studies live: a journal file under the runs folder by default, or any storage URL Optuna accepts.

The journal (Optuna's JournalFileBackend) is an append-only log of every study operation: it survives a
server restart, and several processes on one machine can work on one study through it (a lock file
serialises their appends). A URL with a scheme (sqlite:///studies.db, postgresql://user@host/db) is an RDB
storage instead: that is how one study spreads over several machines. Storage objects are kept one per URL
per process: a journal is replayed once and then read incrementally.

A journal is checked as it is read and written (core/tuning/journal.py): a torn last line is cut off (and kept
beside it) before anything is appended, a damaged line is named with its file and line number, a journal that
cannot be written says so (JournalError); one that is a folder, a link, a device or a pipe is refused.
"""
from __future__ import annotations

import os
import socket
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from core.store.runs import resolve_runs_dir
from core.tuning.journal_file import JOURNAL_NAME, JournalError, check_journal_path  # noqa: F401

if TYPE_CHECKING:
    import optuna

HEARTBEAT_SECONDS = 10  # RDB storages: a worker's liveness signal, and how long silence means it died
GRACE_SECONDS = 60

_lock = threading.Lock()
_storages: dict[str, "optuna.storages.BaseStorage"] = {}


def default_storage_url(runs_dir: str | os.PathLike | None = None) -> str:
    return str(resolve_runs_dir(runs_dir) / JOURNAL_NAME)


def is_rdb_url(url: str) -> bool:
    return "://" in url


def describe(url: str) -> str:
    if is_rdb_url(url):
        scheme, _, rest = url.partition("://")
        return f"{scheme} database ({rest.rpartition('@')[2]})"  # never show a password
    return f"journal file {url}"


def open_storage(url: str) -> "optuna.storages.BaseStorage":
    """The storage for `url` (a journal file path, or an RDB URL); ValueError with the reason when it cannot
    be opened (JournalError for a damaged journal)."""
    with _lock:
        if url not in _storages:
            _storages[url] = _open(url)
        return _storages[url]


def repairs(url: str) -> list[str]:
    """What this process repaired in the journal at `url` (torn tails cut off, and where their bytes are)."""
    with _lock:
        storage = _storages.get(url)
    return list(getattr(getattr(storage, "_backend", None), "repairs", []))


# --- processes: who holds a trial ------------------------------------------------------------------------
def _start_ticks(pid: int) -> str | None:
    """When a process started (Linux): with the pid, it tells a live worker from a new process with an old pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_id() -> str:
    """This process, as a trial records its worker: host:pid:start."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid()) or ''}"


def is_dead(worker: str) -> bool:
    """Whether the process `worker` names (host:pid:start) has ended; False for another machine's, whose
    liveness only an RDB storage's heartbeat can tell."""
    host, _, rest = worker.partition(":")
    pid, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    return bool(ticks) and _start_ticks(int(pid)) not in (None, ticks)


def _open(url: str) -> "optuna.storages.BaseStorage":
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is the page's and the CLI's job
    if not is_rdb_url(url):
        path = Path(url)
        check_journal_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JournalError(f"storage: cannot use the journal file {url} ({e.strerror or e})") from None
        # An open-file lock (not the default symlink) keeps the runs folder free of links.
        from core.tuning.journal import journal_backend

        return JournalStorage(journal_backend(str(path)))
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] == "sqlite" and rest.lstrip("/") in ("", ":memory:"):
        raise ValueError(f"storage: {url} is a database in memory, which each connection sees empty and which ends "
                         "with the process; give a file, such as sqlite:///studies.db")
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}  # wait for the other writer
    try:
        with warnings.catch_warnings():  # the heartbeat has been "experimental" since Optuna 2.8; it is what RDB has
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # A worker that dies mid-trial (another machine's included) stops beating; after the grace period the
            # next worker fails its trial and queues the parameters again.
            storage = RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                 grace_period=GRACE_SECONDS,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
        if url.startswith("sqlite"):
            _write_ahead_log(storage.engine)
        return storage
    except ImportError as e:
        raise ValueError(f"storage: the database driver for {describe(url)} is not installed ({e})") from None
    except Exception as e:  # SQLAlchemy's URL and connection errors have many types
        reason = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise ValueError(f"storage: cannot open {describe(url)} ({reason})") from None


def _write_ahead_log(engine) -> None:
    """SQLite in write-ahead-log mode with normal syncing: a commit appends to the log instead of rewriting the
    database and syncing it twice, which cut the storage's time per trial several-fold here
    (benchmarks/bench_tuning.py); a crash can lose the last commits, never the file's consistency."""
    from sqlalchemy import event

    def pragmas(conn, _record) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener are replaced by new ones that have it
