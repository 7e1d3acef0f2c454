"""The run store: every run on disk and in memory."""
