"""Learners of a class (class mode: the teacher's setting TEACHER_KEY is set).

A learner chooses a display name once and gets an unguessable key; the key is the credential (kept in the page
URL, so a reload or a bookmark keeps who they are, on any device) and is never shown to anyone else. Runs record
the learner's public id, never the key. The book lives in the runs folder as learners.json, holding each key's
SHA-256 only: a copy of the folder does not let anyone act as a learner.

Read like every file of the runs folder: a book that cannot be read is moved aside (kept, named, and said), not
trusted and not lost.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.store.files import StoreFileError, StoreFileMissing, atomic_write_json, read_file
from core.store.records import OWNER

FILE = "learners.json"
TEACHER_ENV = "TEACHER_KEY"
MAX_NAME = 40
MAX_LEARNERS = 10_000


class LearnerError(ValueError):
    """A display name that cannot be used (empty, too long, not one line, taken)."""


@dataclass(frozen=True)
class Learner:
    id: str  # public: what runs record as their owner ("l-" + 8 hex digits)
    name: str  # the display name they chose


def teacher_key() -> str | None:
    """The teacher's key, or None: class mode is off (one learner, no names, nothing in the way)."""
    key = os.environ.get(TEACHER_ENV, "").strip()
    return key or None


def is_teacher(key: str | None) -> bool:
    expected = teacher_key()
    return bool(expected and key) and hmac.compare_digest(str(key).encode(), expected.encode())


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_display_name(name: object) -> str:
    if not isinstance(name, str):
        raise LearnerError("a display name is text")
    name = " ".join(name.split())
    if not name:
        raise LearnerError("choose a display name (1 to 40 characters)")
    if len(name) > MAX_NAME:
        raise LearnerError(f"a display name has at most {MAX_NAME} characters, got {len(name)}")
    if not all(c.isprintable() for c in name) or any(0x202a <= ord(c) <= 0x202e or 0x2066 <= ord(c) <= 0x2069
                                                     for c in name):
        raise LearnerError("a display name is one line of plain text")
    return name


class LearnerBook:
    """The class's learners, thread-safe (every session of the server registers and looks up here)."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / FILE
        self.problem: str | None = None  # what was wrong with the file when it was read, for the teacher's page
        self._lock = threading.Lock()
        self._by_digest: dict[str, Learner] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = read_file(self.path)
        except StoreFileMissing:
            return
        except StoreFileError as e:
            self.problem = f"{FILE} cannot be used ({e}); a new list of learners was started"
            return
        try:
            data = json.loads(raw.decode("utf-8"))
            entries = data["learners"]
            if not isinstance(entries, list) or len(entries) > MAX_LEARNERS:
                raise ValueError("no list of learners")
            for e in entries:
                lid, name, digest = e["id"], check_display_name(e["name"]), e["key_sha256"]
                if not (isinstance(lid, str) and OWNER.fullmatch(lid) and isinstance(digest, str)
                        and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
                    raise ValueError(f"entry {str(lid)[:20]!r} is not a learner")
                self._by_digest[digest] = Learner(lid, name)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as e:
            aside = self.path.with_name(f"{FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(self.path, aside)
                kept = f"kept as {aside.name}"
            except OSError:
                kept = "left where it is"
            self._by_digest = {}
            self.problem = (f"{FILE} could not be read ({type(e).__name__}: {str(e)[:80]}); it was {kept}, and a new "
                            "list of learners was started: learners choose their names again")

    def _save(self) -> None:
        entries = [{"id": l.id, "name": l.name, "key_sha256": d} for d, l in self._by_digest.items()]
        atomic_write_json(self.path, {"learners": entries})

    def register(self, name: str) -> tuple[Learner, str]:
        """A new learner with this display name, and their key (shown to them once, in their URL)."""
        name = check_display_name(name)
        with self._lock:
            if any(l.name.casefold() == name.casefold() for l in self._by_digest.values()):
                raise LearnerError(f"{name!r} is taken in this class: choose another name")
            if len(self._by_digest) >= MAX_LEARNERS:
                raise LearnerError("this class is full")
            taken = {l.id for l in self._by_digest.values()}
            lid = f"l-{secrets.token_hex(4)}"
            while lid in taken:
                lid = f"l-{secrets.token_hex(4)}"
            key = secrets.token_urlsafe(18)  # 144 bits
            self._by_digest[_digest(key)] = Learner(lid, name)
            self._save()
            return self._by_digest[_digest(key)], key

    def lookup(self, key: str | None) -> Learner | None:
        if not key or not isinstance(key, str) or len(key) > 200:
            return None
        with self._lock:
            return self._by_digest.get(_digest(key))

    def all(self) -> list[Learner]:
        with self._lock:
            return sorted(self._by_digest.values(), key=lambda l: l.name.casefold())

    def name_of(self, learner_id: str) -> str:
        """A learner's display name by id ('everyone' for runs without an owner, the id for an unknown one)."""
        if not learner_id:
            return "everyone"
        with self._lock:
            return next((l.name for l in self._by_digest.values() if l.id == learner_id), learner_id)
