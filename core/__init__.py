"""Training engine of the dashboard: data, models, trainer, run store. Never imports streamlit."""
from core.config import DATASETS, TrainConfig, parse_hidden
from core.data import DataUnavailableError, load_dataset
from core.runs import DuplicateRunError, RunInfo, RunStore, WeightsError
from core.snapshot import EpochMetrics, RunSnapshot
from core.training import Trainer, evaluate

__all__ = ["DATASETS", "TrainConfig", "parse_hidden", "DataUnavailableError", "load_dataset", "DuplicateRunError",
           "RunInfo", "RunStore", "WeightsError", "EpochMetrics", "RunSnapshot", "Trainer", "evaluate"]
