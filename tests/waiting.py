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


def wait_ended(store, timeout: float = 120) -> None:
    """Until no run of `store` is live."""
    wait_until(lambda: not any(r.live for r in store.list()), timeout, 0.05, "every run to end")


def texts(at) -> str:
    """Every text an AppTest page shows in markdown, captions, alerts and metrics, in one string."""
    return " ".join(str(e.value) for coll in (at.markdown, at.caption, at.info, at.warning, at.error, at.success,
                                               at.metric) for e in coll)
