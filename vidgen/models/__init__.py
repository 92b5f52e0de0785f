"""Model registry: config names map to ``nn.Module`` classes."""

from vidgen.models.convlstm import ConvLSTMCell, hard_sigmoid
from vidgen.models.prednet import PredNet

MODELS = {"prednet": PredNet}

__all__ = ["MODELS", "ConvLSTMCell", "PredNet", "hard_sigmoid"]
