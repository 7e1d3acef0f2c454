"""Every wait in the tests has a deadline."""
import time
from typing import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 60, every: float = 0.01, what: str = "condition") -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
