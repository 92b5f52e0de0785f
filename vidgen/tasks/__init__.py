"""LightningModules: losses, schedules, logging and the rollout contract.

There is no registry: ``vidgen.loading`` accepts any LightningModule defined in a module of
this package. A deterministic frame-to-frame network needs no task of its own
(``FramePredictorTask``).
"""

from vidgen.tasks.base import PredictorTask, VidgenTask
from vidgen.tasks.billiards import BilliardsTask
from vidgen.tasks.cdna import ActionConditionedTask
from vidgen.tasks.frame_predictor import FramePredictorTask
from vidgen.tasks.prednet import PredNetTask
from vidgen.tasks.vgan import VGANFutureTask, VGANTask

__all__ = [
    "ActionConditionedTask",
    "BilliardsTask",
    "FramePredictorTask",
    "PredNetTask",
    "PredictorTask",
    "VGANFutureTask",
    "VGANTask",
    "VidgenTask",
]
