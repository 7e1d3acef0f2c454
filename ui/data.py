"""Is the dataset on disk? Checked once per page view (file presence, sizes and headers: core.engine.data.check_dataset),
before any button that trains is offered: a page shows how to get the data where its action is, and keeps
those buttons off until the files are there."""
from __future__ import annotations

import streamlit as st

from core.engine.data import RAW_FILES, DataCheck, DataUnavailableError, check_dataset, load_dataset, spec_label
from core.store.pace import PROBE
from ui.registry import plain

MISSING_HEADLINE = "is not on disk"  # every page's notice says "<dataset> is not on disk"; the browser test looks for it


def data_check(dataset: str = "mnist") -> DataCheck:
    """The dataset's state now, in DATA_DIR (or ./data): the folder the run store trains from. With the data there,
    this machine's pace starts being measured (once per process, in the background: every page's estimates)."""
    check = check_dataset(dataset)
    if check.ok:
        PROBE.start()
    return check


def blocked_help(check: DataCheck) -> str | None:
    """The tooltip of a button that cannot train yet (None when it can)."""
    return None if check.ok else f"Needs {spec_label(check.spec)} on disk: see the message at the top of the page."


def data_notice(check: DataCheck, key: str) -> bool:
    """Nothing when the data is there (True); else what is wrong and the ways to get it, with a button that
    downloads it now (False). `key`: the page's prefix for the button's key."""
    if check.ok:
        return True
    name = spec_label(check.spec)
    with st.container(border=True, key=f"{key}_data_notice"):
        if check.missing:
            st.error(f"**{name} {MISSING_HEADLINE}**, so nothing on this page can train yet. "
                     f"{len(check.missing)} of its {len(RAW_FILES)} files are missing from `{check.raw}`.",
                     icon=":material/cloud_off:")
        else:
            st.error(plain(check.problem()), icon=":material/broken_image:")
        st.markdown(
            f"- **Online:** press *Download {name}* below, or run `make run` (it fetches MNIST "
            f"first) or `.venv/bin/python -m core.fetch {check.spec.name}`.\n"
            f"- **Offline:** copy the four uncompressed IDX files ({', '.join(RAW_FILES)}) into `{check.raw}`, or "
            f"start the dashboard with `DATA_DIR` set to a folder that already holds `{check.spec.folder}/raw/`.")
        c1, c2, _ = st.columns([1, 1, 3])
        if c1.button(f"Download {name}", key=f"{key}_data_download", icon=":material/download:", type="primary"):
            try:
                with st.spinner(f"Downloading {name}…"):
                    load_dataset(check.spec.name)
                st.rerun()
            except DataUnavailableError as e:
                st.error(plain(str(e)))
        c2.button("Check again", key=f"{key}_data_recheck", icon=":material/refresh:",
                  help="After copying the files: look at the folder again")
    return False


def data_line(check: DataCheck, what: str = "This", where: str = "at the top of the page") -> None:
    """One line where another action needs the data (the notice with the ways to get it is `where`)."""
    if not check.ok:
        name = spec_label(check.spec)
        state = MISSING_HEADLINE if check.missing else "is damaged"
        st.warning(f"{name} {state}: {what} cannot run until it is there (how to get it: {where}).",
                   icon=":material/cloud_off:")
