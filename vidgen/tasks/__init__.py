"""LightningModules: losses, schedules, logging and the rollout contract."""

from vidgen.tasks.base import PredictorTask
from vidgen.tasks.prednet import PredNetTask

TASKS = {"prednet": PredNetTask}

__all__ = ["TASKS", "PredNetTask", "PredictorTask"]
