"""The HDF5 clip store, window sampling, Dataset and LightningDataModule."""

from vidgen.data.datamodule import VideoDataModule
from vidgen.data.dataset import ClipDataset, collate_windows, to_model_batch
from vidgen.data.store import FORMAT_NAME, FORMAT_VERSION, ClipWriter, open_clips, summarize
from vidgen.data.windows import window_span, window_starts

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ClipDataset",
    "ClipWriter",
    "VideoDataModule",
    "collate_windows",
    "open_clips",
    "summarize",
    "to_model_batch",
    "window_span",
    "window_starts",
]
