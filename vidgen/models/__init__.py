"""The networks, re-exported by class name for configs (``_target_: vidgen.models.PredNet``).

There is no registry: ``vidgen.loading`` accepts any nn.Module defined in a module of this
package, so a new family is one new module here, a model config and an experiment config.
"""

from vidgen.models.action_conditioned import ActionConditionedConvLSTM
from vidgen.models.billiards import (
    ConstantVelocity,
    FrameCentricPredictor,
    ObjectCentricPredictor,
)
from vidgen.models.convlstm import ConvLSTMCell, hard_sigmoid
from vidgen.models.prednet import PredNet
from vidgen.models.vgan import FutureGenerator, VideoDiscriminator, VideoGenerator

__all__ = [
    "ActionConditionedConvLSTM",
    "ConstantVelocity",
    "FrameCentricPredictor",
    "ObjectCentricPredictor",
    "ConvLSTMCell",
    "FutureGenerator",
    "PredNet",
    "VideoDiscriminator",
    "VideoGenerator",
    "hard_sigmoid",
]
