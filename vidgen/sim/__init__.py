"""Procedural video worlds.

``WORLDS`` maps a world's name to its ``simulate(num_frames, size, seed, config)`` function,
which returns a dict of numpy arrays with at least uint8 ``frames`` [T, H, W, 3].
"""

from collections.abc import Callable

import numpy as np

from vidgen.sim import billiards, bouncing_balls, pusher
from vidgen.sim.billiards import BilliardsConfig
from vidgen.sim.bouncing_balls import BouncingBallsConfig
from vidgen.sim.pusher import PusherConfig

WORLDS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "bouncing_balls": bouncing_balls.simulate,
    "billiards": billiards.simulate,
    "pusher": pusher.simulate,
}

__all__ = ["WORLDS", "BilliardsConfig", "BouncingBallsConfig", "PusherConfig"]
