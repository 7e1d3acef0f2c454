"""The run-settings form, generated from TrainConfig's fields (core/engine/config.py): one widget per field,
so a new run option appears here with no code of its own."""
from __future__ import annotations

import math
from typing import Any, Sequence

import streamlit as st

from core.engine import config as C


def field_key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def slider_log_values(lo: float, hi: float, default: float, extra: float | None = None) -> list[float]:
    """1 and 3 per decade from lo to hi, with the default (and `extra`: a value from a lesson link) among them: a log
    scale to slide along."""
    values = {default} | ({float(extra)} if isinstance(extra, (int, float)) and lo <= extra <= hi else set())
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        values |= {v for v in (10.0 ** e, 3 * 10.0 ** e) if lo <= v <= hi}
    return sorted(float(f"{v:.6g}") for v in values)


def _widget(col, prefix: str, name: str, default: Any, opt: C.Option, values: dict[str, Any]) -> Any:
    key, label = field_key(prefix, name), opt.label
    # Every widget is given its current value as its default: the value a lesson link (ui/links.py) or an earlier run
    # left in the session, else the field's default. Left without a default while the session held a value, a widget
    # that a browser drew afresh (the run before was interrupted before its page reached the browser, as a rerun does
    # under load) showed its own default, the minimum or first option, and sent that back: batch size 1, learning
    # rate 1e-06 (benchmarks/bench_class.py).
    given = key in st.session_state
    current = st.session_state[key] if given else default
    if opt.kind == "choice":
        choices = list(opt.choices())
        index = choices.index(current) if current in choices else choices.index(default) if default in choices else 0
        return col.selectbox(label, choices, index=index, key=key, format_func=opt.choice_label or str, help=opt.help)
    if opt.kind == "bool":
        return col.toggle(label, value=bool(current), key=key, help=opt.help)
    if opt.kind == "int":
        return int(col.number_input(label, int(opt.lo), int(opt.hi), value=int(current), step=1, key=key,
                                    help=opt.help))
    if opt.kind == "optional_int":
        n = int(col.number_input(label, 0, int(opt.hi), value=int(current or 0), step=1, key=key, help=opt.help))
        return n or None
    if opt.kind == "float" and opt.log:
        grid = slider_log_values(opt.lo, opt.hi, default, current if given else None)
        near = min(grid, key=lambda v: abs(v - float(current)))  # the grid holds `current`, rounded to 6 digits
        return float(col.select_slider(label, grid, value=near, key=key, format_func=lambda v: f"{v:g}",
                                       help=opt.help + " (log scale)"))
    if opt.kind == "float":
        return float(col.number_input(label, float(opt.lo), float(opt.hi), value=float(current), step=0.001,
                                      format="%.4g", key=key, help=opt.help))
    if opt.kind == "sizes":
        text = current if isinstance(current, str) else ", ".join(map(str, default))
        return opt.parse(name, col.text_input(label, value=text, key=key, help=opt.help))  # ValueError names the field
    raise TypeError(f"no widget for option kind {opt.kind!r} ({name})")


def config_form(prefix: str, columns: int = 4, fixed: dict[str, Any] | None = None,
                main: Sequence[str] | None = None, more_label: str = "More settings") -> C.TrainConfig | None:
    """Widgets for every TrainConfig field not in `fixed`, in a grid; the config, or None after showing what is
    wrong. A field whose `applies` says it does not matter for the other values is not shown. With `main`, those
    fields come first and every other one (a new field too) goes into an expander labelled `more_label`."""
    values: dict[str, Any] = dict(fixed or {})
    errors = []
    options = [(n, d, o) for n, d, o in C.config_options() if n not in values]
    first = [o for o in options if main is None or o[0] in main]
    rest = [o for o in options if main is not None and o[0] not in main]
    _grid(first, prefix, columns, values, errors)
    if rest:
        with st.expander(more_label):
            _grid(rest, prefix, columns, values, errors)
    if not errors:
        try:
            return C.make_config(values)
        except ValueError as e:
            errors.append(str(e))
    st.error("Cannot start: " + "; ".join(errors))
    return None


def _grid(options: list, prefix: str, columns: int, values: dict[str, Any], errors: list[str]) -> None:
    cols = st.columns(columns)
    shown = 0
    for name, default, opt in options:
        if opt.applies is not None and not opt.applies(values):
            continue
        try:
            values[name] = _widget(cols[shown % columns], prefix, name, default, opt, values)
        except ValueError as e:
            errors.append(str(e))
        shown += 1
