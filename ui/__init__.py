"""What the pages share: session-state keys, the run-settings form, plotly figure builders, the cached run
registry. Importing it also makes a direct page URL work on a fresh server (ui/navigation.py) and keeps
Streamlit from clearing Keras' state after every script run (ui/keras_guard.py)."""
from ui.keras_guard import keep_keras_state
from ui.navigation import require_navigation

keep_keras_state()
require_navigation()
