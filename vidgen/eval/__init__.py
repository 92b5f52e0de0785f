"""Metrics per future timestep and the baselines every model is compared with."""

from vidgen.eval.baselines import BASELINES, CopyLastFrame
from vidgen.eval.metrics import FRAME_SUM_NAMES, METRIC_NAMES, PerStepMetrics, frame_metrics

__all__ = [
    "BASELINES",
    "FRAME_SUM_NAMES",
    "METRIC_NAMES",
    "CopyLastFrame",
    "PerStepMetrics",
    "frame_metrics",
]
