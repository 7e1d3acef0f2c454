"""Every page calls require_navigation() first."""
import streamlit as st


def require_navigation() -> None:
    """On a fresh server, a first request for /train (say) finds a pages/ folder and Streamlit runs that
    page on its own, in its old multipage mode, without app.py: wrong titles, no st.navigation.
    Switch the process to app.py's navigation once and rerun. (AppTest resets that mode before every
    run, so there the rerun would only swallow button clicks: it is left alone.)"""
    from streamlit.runtime import Runtime
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and type(Runtime._instance) is Runtime:
        PagesManager.uses_pages_directory = False
        st.rerun()
