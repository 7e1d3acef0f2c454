"""The Draw page's "My drawings": the learner's saved drawings, how the selected model reads them, deleting
and exporting them, and every entry of the drawings folder that is not a whole drawing, with the reason."""
from __future__ import annotations

import streamlit as st

from core.drawing.collection import Collection, DrawingsError, DrawingStore, score
from ui import keys as K
from ui.registry import plain


def my_drawings(model) -> None:
    drawings = DrawingStore()
    found = drawings.scan()
    if found.problem:
        st.error(plain(found.problem))
        return
    if not found.drawings:
        st.caption("Nothing saved yet. Label a drawing and save it to measure the model on your own handwriting.")
    else:
        s = score(model, found.drawings)
        st.metric("Accuracy of the selected model on my drawings", f"{s.accuracy:.1%}",
                  help=f"{s.correct} of {len(s.rows)}")
        if s.confusions:
            st.caption("Confused: " + ", ".join(f"{t} read as {p} ({c}x)" for t, p, c in s.confusions))
        st.dataframe(s.rows, hide_index=True)
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        labels = {d.id: f"{d.id} (a {d.label})" for d in found.drawings}
        # a choice whose drawing is gone (deleted in another tab) is dropped before the widget reads it
        st.session_state[K.DRAW_MINE_DELETE_PICK] = [i for i in st.session_state.get(K.DRAW_MINE_DELETE_PICK, [])
                                                     if i in labels]
        pick = c1.multiselect("Delete saved drawings", list(labels), format_func=labels.get,
                              key=K.DRAW_MINE_DELETE_PICK, placeholder="Choose drawings to delete")
        if c2.button("Delete", key=K.DRAW_MINE_DELETE, disabled=not pick):
            _delete(drawings.delete, pick)
        st.download_button("Export my drawings (zip)", drawings.export_zip,  # zipped only when clicked
                           file_name="my-drawings.zip", mime="application/zip", key=K.DRAW_MINE_EXPORT)
    odd_entries(drawings, found)


def odd_entries(drawings: DrawingStore, found: Collection) -> None:
    """Each entry of the folder that is not a whole drawing: its name, why, and a button that deletes it."""
    if not found.odd:
        return
    with st.expander(f"{len(found.odd)} entr{'y' if len(found.odd) == 1 else 'ies'} of the drawings folder "
                     "cannot be used as drawings", expanded=True):
        st.caption(f"In {plain(str(drawings.root))}; deleting a link removes the link, never what it points to.")
        for i, e in enumerate(found.odd):
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.markdown(f"{plain(repr(e.name))}: {plain(e.reason)}")  # repr: control and direction codes shown as codes
            if e.deletable and c2.button("Delete", key=f"{K.DRAW_ODD_DELETE}{i}"):
                _delete(drawings.delete_odd, [e.name])


def _delete(fn, names: list[str]) -> None:
    try:
        for name in names:
            fn(name)
    except DrawingsError as e:
        st.error(plain(str(e)))
        return
    st.session_state.pop(K.DRAW_MINE_DELETE_PICK, None)
    st.rerun()
