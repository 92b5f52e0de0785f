"""LightningModules: losses, schedules, logging and the rollout contract."""

from vidgen.tasks.base import PredictorTask
from vidgen.tasks.billiards import BilliardsTask
from vidgen.tasks.cdna import ActionConditionedTask
from vidgen.tasks.prednet import PredNetTask
from vidgen.tasks.vgan import VGANFutureTask, VGANTask

TASKS = {
    "cdna": ActionConditionedTask,
    "billiards": BilliardsTask,
    "prednet": PredNetTask,
    "vgan": VGANTask,
    "vgan_future": VGANFutureTask,
}

__all__ = [
    "ActionConditionedTask",
    "BilliardsTask",
    "TASKS",
    "PredNetTask",
    "PredictorTask",
    "VGANFutureTask",
    "VGANTask",
]
