"""Samplers that keep one recipe whatever the number of processes.

Training: every epoch draws ``num_samples`` window indices from a generator seeded by
(seed, epoch), the same draw on every rank, and rank r keeps draw[r::W]. With the global
batch B split into B / W per rank, step k of all ranks together reads draw[kB : (k + 1)B],
exactly the batch one process reads at step k, so 1, 2 or 8 devices take the same steps on
the same windows. Evaluation: rank r reads windows r, r + W, r + 2W, ...; every window is
scored once, none is padded in twice to even out the ranks.

Both subclass ``DistributedSampler`` so that Lightning keeps them even when its
``use_distributed_sampler`` is on; neither needs ``torch.distributed`` to be initialised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
from torch.utils.data import DistributedSampler


def epoch_draw(dataset_size: int, num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """``num_samples`` indices below ``dataset_size``: whole random permutations one after
    another (each window once per pass, as ``RandomSampler``), from the (seed, epoch) stream."""
    rng = np.random.default_rng([seed, epoch])
    passes = -(-num_samples // dataset_size)
    return np.concatenate([rng.permutation(dataset_size) for _ in range(passes)])[:num_samples]


class EpochSampler(DistributedSampler):
    """This rank's share of ``num_samples`` random windows per epoch (all windows once when
    ``num_samples`` is None). The draw is cut to a multiple of ``num_replicas`` so that every
    rank yields as many indices; with per-rank batches of B / W and ``drop_last`` no step
    that one process would take is lost."""

    def __init__(
        self,
        dataset: Sized,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        drawn = len(dataset) if num_samples is None else num_samples
        self.total_size = drawn - drawn % num_replicas
        self.num_samples = self.total_size // num_replicas

    def __iter__(self) -> Iterator[int]:
        draw = epoch_draw(len(self.dataset), self.total_size, self.seed, self.epoch)
        return iter(draw[self.rank :: self.num_replicas].tolist())


class ShardSampler(DistributedSampler):
    """Windows rank, rank + W, ... in order: disjoint shards that together cover the split
    once. Ranks may hold one window more than others; evaluation sums, it needs no pairs."""

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))
