"""vidgen: video prediction and generative video models on PyTorch Lightning, Hydra and HDF5."""

__version__ = "0.1.0"
