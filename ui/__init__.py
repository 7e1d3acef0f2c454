"""What the pages share: session-state keys, plotly figure builders, the cached run registry."""
