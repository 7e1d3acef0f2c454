"""What the pages share: session-state keys, the run-settings form, plotly figure builders, the cached run
registry. Importing it also makes a direct page URL work on a fresh server (ui/navigation.py)."""
from ui.navigation import require_navigation

require_navigation()
