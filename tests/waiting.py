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


def open_part(at, key: str, label: str):
    """Open one part (a tab) of a page and run it: pages run and draw only the open part, which AppTest picks
    through the tabs' key in session state."""
    at.session_state[key] = label
    return at.run()


def parts(page: str) -> tuple[str | None, tuple]:
    """(tabs' key, their labels) of a page drawn in parts; (None, (None,)) for a page drawn whole."""
    from ui import keys as K

    return {"pages/runs.py": (K.RUNS_TAB, K.RUNS_PARTS), "pages/batchnorm.py": (K.BN_TAB, K.BN_PARTS),
            "pages/tuning.py": (K.TUNE_TAB, K.TUNE_PARTS), "pages/softmax.py": (K.SM_TAB, K.SM_PARTS)}.get(page, (None, (None,)))
