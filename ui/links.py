"""Lesson links: a page's settings round-trip through its URL.

A page names its settings once (`Param`: the URL name, the widget's key, how text becomes the widget's value).
`apply_link` puts the values of a URL into the widgets before they are drawn (once per URL and session, then the
parameters leave the address bar: the page is the learner's again); a bad or stale parameter gives a notice naming
it and the default stays. `link_box` shows the URL that reproduces the page as it is now, for whoever opens it,
without the learner's key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import urlencode

import streamlit as st

from core.engine import config as C
from ui import keys as K
from ui.config_form import field_key
from ui.registry import plain
from ui.session import CREDENTIALS


@dataclass(frozen=True)
class Param:
    name: str  # in the URL
    key: str  # the widget's session-state key
    parse: Callable[[str], Any]  # URL text -> the widget's value; ValueError saying why not
    show: Callable[[Any], str] = str  # the widget's value -> URL text


def apply_link(page: str, params: Sequence[Param]) -> None:
    """Call before the page's widgets: the URL's values into their state, once per distinct URL and session."""
    given = {k: st.query_params.get(k) for k in st.query_params.keys() if k not in CREDENTIALS}
    if not given:
        return
    known = {p.name: p for p in params}
    problems, used = [], 0
    for name, raw in given.items():
        p = known.get(name)
        if p is None:
            problems.append(f"**{plain(name)}** is not a setting of this page")
            continue
        try:
            st.session_state[p.key] = p.parse(raw)
            used += 1
        except (ValueError, TypeError) as e:
            problems.append(f"**{plain(name)}={plain(str(raw)[:40])}**: {plain(str(e))}")
    st.session_state[K.LINK_APPLIED] = (page, tuple(sorted(given.items())))
    for name in given:
        del st.query_params[name]
    if used:
        st.toast(f"Settings from the link: {used} applied", icon=":material/link:")
    if problems:
        st.warning("Some settings in this link were not used, and their defaults are shown instead: "
                   + "; ".join(problems) + ".", icon=":material/link_off:")


def current_link(params: Sequence[Param]) -> str:
    """The page's URL with its settings as they are now (never a learner's or the teacher's key)."""
    values = {p.name: p.show(st.session_state[p.key]) for p in params if p.key in st.session_state}
    base = st.context.url or ""
    return base + ("?" + urlencode(values) if values else "")


def link_box(params: Sequence[Param], where=st) -> None:
    """A "Link to these settings" popover with the URL to copy."""
    with where.popover("Link to these settings", icon=":material/link:"):
        st.caption("Whoever opens this link sees this page with these settings (your learner key is not in it).")
        st.code(current_link(params), language=None, wrap_lines=True)


# --- the run settings, from TrainConfig's field metadata --------------------------------------------------
def config_params(prefix: str, fixed: Sequence[str] = ()) -> list[Param]:
    """One Param per TrainConfig field shown by config_form(prefix): parsed and checked as the command line does."""
    return [Param(name, field_key(prefix, name), _to_widget(name, opt), _from_widget(opt))
            for name, _, opt in C.config_options() if name not in fixed]


def _to_widget(name: str, opt: C.Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = opt.parse(name, text)  # ValueError names the field and says what is allowed
        if opt.kind == "sizes":
            return ", ".join(map(str, value))  # the widget is a text field
        if opt.kind == "optional_int":
            return value or 0  # 0 = all
        return value
    return parse


def _from_widget(opt: C.Option) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        if opt.kind == "bool":
            return "true" if value else "false"
        if opt.kind == "float":
            return f"{value:g}"
        return str(value)
    return show


# --- parsers for a page's own settings ----------------------------------------------------------------------
def whole(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        t = text.strip()
        if not (t.isascii() and t.isdigit()) or not lo <= int(t) <= hi:
            raise ValueError(f"a whole number from {lo} to {hi}")
        return int(t)
    return parse


def number(lo: float, hi: float, among: Sequence[float] | None = None) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"a number from {lo:g} to {hi:g}") from None
        if not lo <= v <= hi or v != v:
            raise ValueError(f"a number from {lo:g} to {hi:g}")
        if among is not None:
            match = [a for a in among if abs(a - v) <= 1e-12 * max(1.0, abs(a))]
            if not match:
                raise ValueError("one of " + ", ".join(f"{a:g}" for a in among))
            return match[0]
        return v
    return parse


def flag(text: str) -> bool:
    t = text.strip().lower()
    if t not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError("true or false")
    return t in ("true", "1", "yes", "on")


def flag_text(value: bool) -> str:
    return "true" if value else "false"


def choice(options: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError("one of " + ", ".join(map(str, options)))
        return text
    return parse


def show_number(value: float) -> str:
    return f"{value:g}"


def slug(text: str) -> str:
    """A label as a URL word: "Twins: BN vs no-BN" -> "twins-bn-vs-no-bn"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "").replace("β", "beta")).strip("-")


def part_param(name: str, key: str, labels: Sequence[str]) -> Param:
    """Which tab of a page is open (its key holds the tab's label), as a word in the URL."""
    by_slug = {slug(label): label for label in labels}

    def parse(text: str) -> str:
        if text not in by_slug:
            raise ValueError("one of " + ", ".join(by_slug))
        return by_slug[text]
    return Param(name, key, parse, slug)
