"""What the pages share: session-state keys, the run-settings form, plotly figure builders, the cached run
registry. Importing it also makes a direct page URL work on a fresh server (ui/navigation.py) and keeps
Streamlit from clearing Keras' state after every script run (ui/keras_guard.py).

pandas is imported here, whole, before any page runs: plotly looks it up in sys.modules without importing it, so a
chart drawn in one session while another session's thread was still importing pandas (Streamlit does, lazily) failed
with "partially initialized module 'pandas' has no attribute 'Series'": on a fresh server opened by several learners at
once, their Train pages showed that error (benchmarks/bench_class.py). Every session imports `ui` first (app.py), and
an import another thread has begun waits until it is done."""
import pandas  # noqa: F401

from ui.keras_guard import keep_keras_state
from ui.navigation import require_navigation

keep_keras_state()
require_navigation()
