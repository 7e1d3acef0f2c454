"""ui/navigation.py relies on three Streamlit internals to make a direct page URL work on a fresh server.
If an upgrade renames or removes one of them, this fails and says which (the browser test then shows
whether /train still opens with the app's navigation)."""
import inspect


def test_streamlit_internals_the_navigation_workaround_uses():
    from streamlit.runtime import Runtime
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import script_runner

    assert hasattr(PagesManager, "uses_pages_directory"), "PagesManager.uses_pages_directory is gone"
    assert hasattr(Runtime, "_instance"), "Runtime._instance is gone"
    # The legacy pages/ mode that the workaround switches off still exists, and is chosen by that flag.
    assert "PagesManager.uses_pages_directory" in inspect.getsource(script_runner), "the pages/ mode changed"
    assert hasattr(script_runner, "_mpa_v1")
