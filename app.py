"""Navigation only: every page in pages/ is listed here (st.navigation turns auto-discovery off).

The navigation goes out before anything heavy is imported: on the first page view after a server start, importing
PyTorch takes seconds, and the menu and a note show meanwhile instead of a blank page. (In class mode the menu
depends on who is looking, which takes the run store: it goes out after the imports.)"""
import os
import sys

import streamlit as st

st.set_page_config(page_title="MNIST teaching dashboard", page_icon=":material/psychology:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/monitoring:"),
    st.Page("pages/runs.py", title="Runs & evaluation", icon=":material/table_view:"),
    st.Page("pages/batchnorm.py", title="BatchNorm lab", icon=":material/compare:"),
    st.Page("pages/tuning.py", title="Tuning lab", icon=":material/tune:"),
    st.Page("pages/softmax.py", title="Softmax explorer", icon=":material/functions:"),
    st.Page("pages/frameworks.py", title="Frameworks", icon=":material/code:"),
    st.Page("pages/draw.py", title="Draw a digit", icon=":material/draw:"),
]
# The menu in a bar at the top: the pages get the whole width (a sidebar keeps 300 px down to a 769 px window),
# and where the bar is too narrow the pages that do not fit go into its "more" menu.
class_mode = bool(os.environ.get("TEACHER_KEY", "").strip())  # core.store.learners.teacher_key, before torch loads
page = None if class_mode else st.navigation(PAGES, position="top")
starting = "torch" not in sys.modules
if starting:
    notice = st.empty()
    notice.caption(":material/hourglass_top: Loading PyTorch: the first page after the server starts takes a few "
                   "seconds more.")

import core  # noqa: E402 F401 - before anything loads torch: applies the CPU threading policy (core/engine/cpu.py)
import ui  # noqa: E402 F401 - makes direct page URLs work on a fresh server (ui/navigation.py)
from ui.live import watch_runs  # noqa: E402
from ui.session import known_viewer, viewer  # noqa: E402

if starting:
    notice.empty()
if page is None:
    who = known_viewer()  # class mode: the teacher, a learner known by the key in the URL, or None (not joined yet)
    if who is not None and who.teacher:
        PAGES.append(st.Page("pages/class_room.py", title="Class", icon=":material/groups:"))
    page = st.navigation(PAGES, position="top")
who = viewer()  # a learner not known yet joins here, after the navigation: the form's rerun stays on the page the link named
watch_runs(who.by)  # every tab redraws when a run of its viewer starts, pauses or ends elsewhere (ui/live.py)
page.run()
