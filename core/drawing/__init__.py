"""The Draw page's computations: canvas preprocessing, prediction, the saved drawings."""
