"""Navigation only: every page in pages/ is listed here (st.navigation turns auto-discovery off)."""
import core  # noqa: F401 - first: applies the CPU threading policy before anything loads torch (core/engine/cpu.py)
import streamlit as st

import ui  # noqa: F401 - makes direct page URLs work on a fresh server (ui/navigation.py)
from ui.live import watch_runs
from ui.session import known_viewer, viewer

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
who = known_viewer()  # class mode (TEACHER_KEY set): the teacher, a learner known by the key in the URL, or None
if who is not None and who.teacher:
    PAGES.append(st.Page("pages/class_room.py", title="Class", icon=":material/groups:"))
page = st.navigation(PAGES)
viewer()  # a learner not known yet joins here, after the navigation: the form's rerun stays on the page the link named
watch_runs()  # every tab redraws when a run starts, pauses or ends elsewhere (ui/live.py)
page.run()
