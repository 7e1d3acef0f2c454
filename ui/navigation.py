"""Direct page URLs (/train, /runs, ...) on a fresh server, in one place: importing `ui` calls this.

Streamlit decides once per process, at the first session, whether the app is a legacy pages/-folder app:
with a pages/ folder next to app.py it is, until some session runs st.navigation (the docs: "As soon as any
session of your app executes the st.navigation command, your app will ignore the pages/ directory"). So
when the very first request of a server is /train, Streamlit runs pages/train.py on its own, without app.py:
wrong titles, no navigation. No setting changes that; the supported alternative is a page folder with
another name, and this project keeps pages/. The workaround: switch the process to app.py's navigation
once and rerun. tests/test_navigation.py fails when a Streamlit upgrade changes what this relies on, and
the browser test opens /train first on a fresh server.
"""
import streamlit as st


def require_navigation() -> None:
    """(AppTest resets the legacy flag before every run and has its own Runtime: left alone there.)"""
    from streamlit.runtime import Runtime
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and type(Runtime._instance) is Runtime:
        PagesManager.uses_pages_directory = False
        st.rerun()
