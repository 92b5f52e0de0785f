"""Read the next batches in a background thread while the model computes.

A loader without worker processes reads in the training process, between steps. A thread
overlaps that read with the step: torch releases the GIL inside its operators, so the
thread reads (h5py, numpy) while the model's convolutions run. Workers would do the same at
the cost of a process and of copying every batch through shared memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class PrefetchingLoader:
    """Iterates ``loader`` up to ``depth`` batches ahead in a thread. Everything else
    (``len``, ``sampler`` for Lightning's ``set_epoch``, ``batch_size``, ``dataset``) is the
    loader's own. An error while reading is raised where the batch would have arrived."""

    def __init__(self, loader: DataLoader, depth: int = 2) -> None:
        self.loader, self.depth = loader, depth

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        ready: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def offer(item: object) -> bool:
            """Put ``item`` unless the consumer has gone; False once it has."""
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for batch in self.loader:
                    if not offer(batch):
                        return
                offer(_END)
            except BaseException as err:  # handed to the consumer, raised there
                offer(_Failure(err))

        reader = threading.Thread(target=read, name="vidgen-prefetch", daemon=True)
        reader.start()
        try:
            while (item := ready.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:  # also when the consumer stops early (max_steps, an error)
            stop.set()
            reader.join()
