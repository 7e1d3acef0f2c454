"""Training engine of the dashboard: data, models, trainer, run store. Never imports streamlit."""
from core.engine.config import DATASETS, TrainConfig, parse_hidden
from core.engine.data import DataUnavailableError, load_dataset
from core.store.runs import DuplicateRunError, RunInfo, RunStore, WeightsError
from core.engine.snapshot import EpochMetrics, RunSnapshot
from core.engine.trainer import Trainer, evaluate

__all__ = ["DATASETS", "TrainConfig", "parse_hidden", "DataUnavailableError", "load_dataset", "DuplicateRunError",
           "RunInfo", "RunStore", "WeightsError", "EpochMetrics", "RunSnapshot", "Trainer", "evaluate"]
