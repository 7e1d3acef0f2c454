"""Navigation only: every page in pages/ is listed here (st.navigation turns auto-discovery off)."""
import streamlit as st

st.set_page_config(page_title="MNIST teaching dashboard", page_icon=":material/psychology:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/monitoring:"),
    st.Page("pages/runs.py", title="Runs & evaluation", icon=":material/table_view:"),
    st.Page("pages/batchnorm.py", title="BatchNorm lab", icon=":material/compare:"),
    st.Page("pages/softmax.py", title="Softmax explorer", icon=":material/functions:"),
    st.Page("pages/draw.py", title="Draw a digit", icon=":material/draw:"),
]
st.navigation(PAGES).run()
