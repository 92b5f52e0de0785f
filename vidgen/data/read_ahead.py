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


class ReadAheadLoader(DataLoader):
    """A DataLoader, without worker processes, whose iteration reads up to ``read_ahead``
    batches ahead in a thread. It stays a DataLoader (Lightning rebuilds loaders from their
    arguments, e.g. for ``overfit_batches``); only iteration differs. An error while reading
    is raised where its batch would have arrived."""

    read_ahead = 2

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers:
            return super().__iter__()
        return read_ahead(super().__iter__(), self.read_ahead)


def read_ahead(batches: Iterator[Any], depth: int) -> Iterator[Any]:
    """``batches``, produced by a thread up to ``depth`` items ahead of the consumer."""
    ready: queue.Queue = queue.Queue(depth)
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
            for batch in batches:
                if not offer(batch):
                    return
            offer(_END)
        except BaseException as err:  # handed to the consumer, raised there
            offer(_Failure(err))

    reader = threading.Thread(target=read, name="vidgen-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = ready.get(timeout=1.0)
            except queue.Empty:
                if reader.is_alive() or not ready.empty():
                    continue
                raise RuntimeError("the read-ahead thread ended without a batch") from None
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:  # also when the consumer stops early (max_steps, an error)
        stop.set()
        if reader is not threading.current_thread():
            reader.join()
