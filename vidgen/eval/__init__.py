"""Metrics per future timestep and the baselines every model is compared with."""

from vidgen.eval.baselines import BASELINES, CopyLastFrame
from vidgen.eval.metrics import METRIC_NAMES, PerStepMetrics, frame_metrics

__all__ = ["BASELINES", "METRIC_NAMES", "CopyLastFrame", "PerStepMetrics", "frame_metrics"]
