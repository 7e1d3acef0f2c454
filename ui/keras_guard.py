"""Keep Streamlit away from Keras' state: importing `ui` calls this.

After every script run Streamlit calls keras.backend.clear_session() once Keras is imported
(streamlit/runtime/scriptrunner/script_runner.py, _clean_problem_modules), meant for scripts that build Keras
models at the top level. This dashboard builds them only in training threads, and the call hurts twice:
clear_session swaps Keras' thread-local state for fresh objects under a Keras run that is tracing its training
step in another thread (the run then fails with "'NoneType' object is not callable"), and it runs a full
gc.collect() after every script run, the ~200 ms pause .streamlit/config.toml turns off with
runner.postScriptGC = false. So the cleanup keeps its other part (closing matplotlib figures) and leaves Keras
alone. tests/test_frameworks_page.py fails when a Streamlit upgrade renames what this replaces.
"""
import sys

from streamlit.runtime.scriptrunner import script_runner


def _clean_problem_modules_but_keras() -> None:
    if "matplotlib.pyplot" in sys.modules:
        try:
            sys.modules["matplotlib.pyplot"].close("all")
        except Exception:  # as Streamlit does: a failed cleanup must not break the app
            pass


def keep_keras_state() -> None:
    script_runner._clean_problem_modules = _clean_problem_modules_but_keras
