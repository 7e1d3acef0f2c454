"""Training engine of the dashboard: data, models, trainer, run store. Never imports streamlit.

The CPU threading policy is applied first, before anything imports torch (core/engine/cpu.py)."""
from core.engine.cpu import apply_thread_policy

apply_thread_policy()

from core.engine.config import TrainConfig, parse_hidden  # noqa: E402
from core.engine.data import DATASETS, DataUnavailableError, load_dataset  # noqa: E402
from core.engine.snapshot import EpochMetrics, RunSnapshot  # noqa: E402
from core.engine.torch_loop import evaluate  # noqa: E402
from core.engine.trainer import Trainer  # noqa: E402
from core.store.runs import DuplicateRunError, RunInfo, RunStore, WeightsError  # noqa: E402

__all__ = ["DATASETS", "TrainConfig", "parse_hidden", "DataUnavailableError", "load_dataset", "DuplicateRunError",
           "RunInfo", "RunStore", "WeightsError", "EpochMetrics", "RunSnapshot", "Trainer", "evaluate"]
