"""What a run's files say, checked field by field. Nothing read from disk is trusted: a value that is not what
the store writes is left out and reported in `problems` (the Runs page shows them), the good rest is kept.
Only a run whose settings cannot be read at all is "damaged" (DamagedRunError, with the reason)."""
from __future__ import annotations

import json
import math
import re
import struct
import time
from dataclasses import MISSING, dataclass, fields
from typing import Any

from core.engine.config import TrainConfig, config_from_dict
from core.engine.snapshot import STATUSES, EpochMetrics

MAX_NAME = 200  # characters of a run's name
OWNER = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")  # a learner's public id (core/store/learners.py); "" is everyone
MAX_ERROR = 2000  # characters of a status message
MAX_SHOWN = 3  # skipped lines described one by one in a problem
EARLIEST = 946684800.0  # 2000-01-01: a run's 'created' time is after it...
FUTURE_SLACK = 86400.0  # ...and not more than a day ahead of this machine's clock (another machine's may differ)


class DamagedRunError(ValueError):
    """A run folder whose settings (config.json) cannot be read: the run cannot be shown or used."""


@dataclass(frozen=True)
class Meta:
    config: TrainConfig
    name: str | None  # None: use the config's label
    created: float | None  # None: use the time in the run id
    group: str | None
    tags: dict | None = None  # e.g. {"study": name, "trial": 3}
    owner: str = ""  # the learner who started it ("": everyone, as every run without class mode)


def _json(raw: bytes, what: str) -> Any:
    """Decoded JSON, or ValueError saying what is wrong (not UTF-8, not JSON, nested too deep)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} is not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to be ours") from None
    except ValueError as e:  # JSONDecodeError, and integers too long to convert
        raise ValueError(f"{what} is not valid JSON ({e})") from None


def _short(x: Any) -> str:
    """A value read from disk, as a message shows it: its repr, cut short."""
    r = repr(x)
    return r if len(r) <= 40 else r[:37] + "..."


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_name(name: object) -> str:
    """A run's name: one line of printable text, 1 to MAX_NAME characters (ValueError naming what is wrong).
    Printable excludes line breaks, control and escape codes and the invisible direction marks that make a
    name read other than it is written (U+202E): the same rule for a name typed in and a name read from disk."""
    if not isinstance(name, str):
        raise ValueError(f"name: a run's name is text, got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise ValueError("name: a run's name cannot be empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"name: at most {MAX_NAME} characters, got {len(name)}")
    if any(not c.isprintable() for c in name):
        raise ValueError("name: one line of printable text (no line breaks, control or direction codes)")
    return name


def _created_ok(x: Any, now: float) -> bool:
    return _is_real(x) and math.isfinite(x) and EARLIEST <= x <= now + FUTURE_SLACK


def parse_meta(raw: bytes, problems: list[str], now: float | None = None) -> Meta:
    """config.json -> Meta. DamagedRunError when the settings cannot be used; odd name/created/group/tags are
    replaced (and reported) instead. `now`: this machine's time, which a 'created' time cannot be far after."""
    try:
        meta = _json(raw, "config.json")
    except ValueError as e:
        raise DamagedRunError(str(e)) from None
    if not isinstance(meta, dict):
        raise DamagedRunError(f"config.json holds {type(meta).__name__}, not an object")
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise DamagedRunError("config.json has no 'config' object with the run's settings")
    known = {f.name for f in fields(TrainConfig)}
    if unknown := sorted(str(k) for k in cfg if k not in known):
        problems.append(f"config.json: unknown settings ignored: {', '.join(unknown)[:200]}")
    try:
        config = config_from_dict(cfg)
    except (ValueError, TypeError) as e:  # TypeError: a field given twice or of an odd kind, if ever
        raise DamagedRunError(f"config.json: {e}") from None
    name = meta.get("name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        problems.append(f"config.json: the name {_short(name)} is not text; the settings are shown instead")
        name = None
    elif isinstance(name, str) and len(name) > MAX_NAME:
        problems.append(f"config.json: the name is {len(name):,} characters long; the first {MAX_NAME} are shown")
        name = name[:MAX_NAME]
    if name is not None:
        try:
            name = check_name(name)
        except ValueError:  # what rename() refuses is not shown either: repr shows its codes as codes
            problems.append(f"config.json: the name {_short(name)} is not one line of printable text (it holds line "
                            "breaks, control or direction codes); the settings are shown instead: rename the run")
            name = None
    created = meta.get("created")
    if created is not None and not _created_ok(created, time.time() if now is None else now):
        when = (f" ({time.strftime('%Y-%m-%d', time.gmtime(created))})" if _is_real(created) and math.isfinite(created)
                and 0 <= created < 253402300800 else "")  # up to 9999-12-31: what strftime can name
        problems.append(f"config.json: 'created' is {_short(created)}{when}, not a time this run can have been "
                        "made at; the run id's time is used")
        created = None
    group = meta.get("group")
    if group is not None and not isinstance(group, str):
        problems.append(f"config.json: 'group' is {_short(group)}, not text; ignored")
        group = None
    tags = meta.get("tags")
    if tags is not None and not (isinstance(tags, dict) and len(tags) <= 20 and all(
            isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool))) for k, v in tags.items())):
        problems.append(f"config.json: 'tags' is {_short(tags)}, not a few named values; ignored")
        tags = None
    owner = meta.get("owner")
    if owner is None:
        owner = ""
    elif not (isinstance(owner, str) and (owner == "" or OWNER.fullmatch(owner))):
        problems.append(f"config.json: the owner {_short(owner)} is not a learner's id; the run belongs to everyone")
        owner = ""
    return Meta(config, name, float(created) if created is not None else None, group, tags, owner)


def parse_status(raw: bytes) -> tuple[str, str | None]:
    """status.json -> (status, message); ValueError saying what is wrong."""
    st = _json(raw, "status.json")
    if not isinstance(st, dict):
        raise ValueError(f"status.json holds {type(st).__name__}, not an object")
    status, error = st.get("status"), st.get("error")
    if status not in STATUSES:
        raise ValueError(f"status.json: {_short(status)} is not a status")
    if error is not None and not isinstance(error, str):
        raise ValueError(f"status.json: the message is {type(error).__name__}, not text")
    return status, error[:MAX_ERROR] if error else error


_EPOCH_FIELDS = {f.name: f for f in fields(EpochMetrics)}
_REQUIRED = {n for n, f in _EPOCH_FIELDS.items() if f.default is MISSING and f.default_factory is MISSING}


def _loss_ok(v: Any) -> bool:
    """A cross-entropy: not negative; inf and nan are what a diverging run measures, kept as they are."""
    return _is_real(v) and (v >= 0 or math.isnan(v))


def parse_epoch(rec: dict, expected: int, epochs: int) -> EpochMetrics:
    """One epoch record; ValueError saying what is wrong with it."""
    if unknown := sorted(set(rec) - set(_EPOCH_FIELDS)):
        raise ValueError(f"unknown field {_short(unknown[0])}")
    if missing := sorted(_REQUIRED - set(rec)):
        raise ValueError(f"no {missing[0]!r} field")
    e = rec["epoch"]
    if not _is_int(e) or e != expected:
        raise ValueError(f"epoch {_short(e)} where epoch {expected} comes next")
    if e > epochs:
        raise ValueError(f"epoch {e} of a run of {epochs} epochs")
    for k in ("train_acc", "test_acc"):
        if k in rec and not (_is_real(rec[k]) and 0 <= rec[k] <= 1):
            raise ValueError(f"{k} {_short(rec[k])} is not between 0 and 1")
    for k in ("train_loss", "test_loss"):
        if k in rec and not _loss_ok(rec[k]):
            raise ValueError(f"{k} {_short(rec[k])} is not a loss")
    if "seconds" in rec and not (_is_real(rec["seconds"]) and math.isfinite(rec["seconds"]) and rec["seconds"] >= 0):
        raise ValueError(f"seconds {_short(rec['seconds'])} is not a duration")
    return EpochMetrics(**{k: float(v) if k != "epoch" and _is_real(v) else v for k, v in rec.items()})


def _parse_step(rec: dict, last: int) -> tuple[int, float]:
    if set(rec) != {"step", "loss"}:
        raise ValueError("a step record has exactly 'step' and 'loss'")
    s, loss = rec["step"], rec["loss"]
    if not _is_int(s) or s <= last:
        raise ValueError(f"step {_short(s)} does not follow step {last}")
    if not (_is_real(loss) and math.isfinite(loss) and loss >= 0):
        raise ValueError(f"loss {_short(loss)} is not a finite loss")
    return s, float(loss)


def parse_metrics(raw: bytes, epochs: int, problems: list[str]) -> tuple[list[tuple[int, float]], list[EpochMetrics]]:
    """metrics.jsonl -> (step losses, epoch history). A line that is not a record the store writes is skipped
    and counted; a half-written last line (the program stopped while writing it) is expected after a kill."""
    steps: list[tuple[int, float]] = []
    history: list[EpochMetrics] = []
    skipped: list[str] = []
    lines = raw.split(b"\n")
    torn = bool(lines) and lines[-1] != b""  # every whole line ends with a newline
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = _json(line, "the line")
            if not isinstance(rec, dict):
                raise ValueError(f"{type(rec).__name__}, not a record")
            if "step" in rec:
                steps.append(_parse_step(rec, steps[-1][0] if steps else 0))
            elif "epoch" in rec:
                history.append(parse_epoch(rec, len(history) + 1, epochs))
            else:
                raise ValueError("neither a step nor an epoch record")
        except ValueError as e:
            why = "cut short (the program stopped while writing it)" if torn and i == len(lines) else str(e)
            skipped.append(f"line {i}: {why}")
    if skipped:
        shown = "; ".join(skipped[:MAX_SHOWN]) + ("; …" if len(skipped) > MAX_SHOWN else "")
        problems.append(f"metrics.jsonl: {len(skipped)} line{'s' if len(skipped) > 1 else ''} skipped ({shown})")
    return steps, history


# --- the weights file's header -------------------------------------------------------------------------
HEADER_LIMIT = 1 << 20  # a safetensors header of this model is a few kB


def weights_header_size(head: bytes) -> int:
    """Length of the JSON header that follows the 8-byte size at the start of a safetensors file."""
    if len(head) < 8:
        raise ValueError("shorter than a safetensors header")
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= HEADER_LIMIT:
        raise ValueError("not a safetensors file (header size out of range)")
    return n


def weights_header(header: bytes, epochs: int) -> tuple[int | None, EpochMetrics | None, dict[str, tuple]]:
    """What a safetensors header written by save_weights says: (epoch, that epoch's metrics, {tensor name:
    (shape, end offset)}); epoch and metrics are None for weights saved before the store recorded them.
    ValueError when the header is damaged."""
    head = _json(header, "the weights file's header")
    if not isinstance(head, dict):
        raise ValueError("the weights file's header is not an object")
    tensors = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        shape, offsets = (t.get("shape"), t.get("data_offsets")) if isinstance(t, dict) else (None, None)
        if not (isinstance(shape, list) and all(_is_int(s) and s >= 0 for s in shape) and isinstance(offsets, list)
                and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
            raise ValueError(f"the weights file's entry for {_short(name)} is damaged")
        tensors[name] = (tuple(shape), offsets[1])
    meta = head.get("__metadata__")
    if not isinstance(meta, dict) or "epoch" not in meta:
        return None, None, tensors
    epoch = meta["epoch"]
    if not (isinstance(epoch, str) and epoch.isascii() and epoch.isdigit() and len(epoch) < 10):
        raise ValueError(f"the weights file's epoch {_short(epoch)} is not a whole number")
    metrics = None
    if isinstance(meta.get("metrics"), str):
        rec = _json(meta["metrics"].encode(), "the weights file's metrics")
        if isinstance(rec, dict):
            metrics = parse_epoch(rec, int(epoch), epochs)
    return int(epoch), metrics, tensors
