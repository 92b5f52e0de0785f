"""Model registry: config names map to ``nn.Module`` classes."""

from vidgen.models.billiards import (
    ConstantVelocity,
    FrameCentricPredictor,
    ObjectCentricPredictor,
)
from vidgen.models.cdna import ActionConditionedConvLSTM
from vidgen.models.convlstm import ConvLSTMCell, hard_sigmoid
from vidgen.models.prednet import PredNet
from vidgen.models.vgan import FutureGenerator, VideoDiscriminator, VideoGenerator

MODELS = {
    "cdna": ActionConditionedConvLSTM,
    "billiards_oc": ObjectCentricPredictor,
    "billiards_fc": FrameCentricPredictor,
    "constant_velocity": ConstantVelocity,
    "prednet": PredNet,
    "vgan": VideoGenerator,
    "vgan_future": FutureGenerator,
}

__all__ = [
    "ActionConditionedConvLSTM",
    "ConstantVelocity",
    "FrameCentricPredictor",
    "ObjectCentricPredictor",
    "MODELS",
    "ConvLSTMCell",
    "FutureGenerator",
    "PredNet",
    "VideoDiscriminator",
    "VideoGenerator",
    "hard_sigmoid",
]
