"""Converters from source formats into vidgen clip files; one module per source.

Each module has ``add_arguments(parser)`` and ``run(args)``; ``vidgen-prep NAME`` runs it.
"""

from data_prep import bair, caltech, info, kitti, push, synthetic, video

SOURCES = {
    "synthetic": synthetic,
    "video": video,
    "kitti": kitti,
    "caltech": caltech,
    "push": push,
    "bair": bair,
    "info": info,
}
