"""TFRecord files of ``tf.train.Example`` protos, read without TensorFlow.

The framing (TensorFlow's ``core/lib/io/record_writer.cc``) is, per record: uint64 length
(little-endian), uint32 masked CRC32C of those 8 bytes, the payload, uint32 masked CRC32C
of the payload. The payload is an ``Example`` (``core/example/example.proto``):
``Example{features=1} -> Features{map<string, Feature> feature=1} -> Feature{bytes_list=1 |
float_list=2 | int64_list=3} -> *List{repeated value=1}``; the few lines of wire-format
decoding it needs are here, so neither TensorFlow nor generated protobuf code is needed.
Used by the Google push (Finn et al. 2016) and BAIR robot pushing (Ebert et al. 2017)
converters, whose records are one episode each, keyed by step (``StepFeatures``).
"""

from __future__ import annotations

import argparse
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import google_crc32c
import numpy as np

from data_prep.common import Converted, write_converted
from vidgen.errors import VidgenError

Feature = list[bytes] | np.ndarray
Example = dict[str, Feature]
Episode = tuple[np.ndarray, np.ndarray, np.ndarray]  # frames, actions, states
# One step's image feature as a frame: (bytes, where, feature key) -> uint8 [H, W, 3] RGB.
FrameReader = Callable[[bytes, str, str], np.ndarray]
FPS = 10.0  # nominal: the records carry no frame rate (noted in the file attributes)

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TensorFlow's masked CRC32C: rotate right by 15 bits, then add a constant."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: Path, problems: list[str] | None = None) -> Iterator[tuple[int, bytes]]:
    """(index, payload) of each record of ``path``, checking both CRCs.

    A problem raises VidgenError, or, when ``problems`` is a list, is appended to it: a
    record whose payload fails its CRC is then skipped, while a truncated file or a
    corrupt length ends the file, since no later record boundary can be trusted.
    """

    def fail(message: str) -> None:
        if problems is None:
            raise VidgenError(message)
        problems.append(message)

    with open(path, "rb") as f:
        index = 0
        while header := f.read(12):
            where = f"{path}: record {index}"
            if len(header) < 12:
                return fail(f"{where} is truncated (the file ends inside its header).")
            length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
            if masked_crc(length_bytes) != length_crc:
                return fail(f"{where} has a corrupt length (CRC mismatch); the file is damaged.")
            length = struct.unpack("<Q", length_bytes)[0]
            payload, footer = f.read(length), f.read(4)
            if len(payload) < length or len(footer) < 4:
                return fail(f"{where} is truncated (the file ends inside it).")
            if masked_crc(payload) != struct.unpack("<I", footer)[0]:
                fail(f"{where} fails its CRC32C check (corrupt data).")
            else:
                yield index, payload
            index += 1


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 64:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise ValueError("varint longer than 64 bits")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of a serialized message; values of wire types 1,
    2 and 5 are views into ``buf``."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        else:
            if wire == 2:
                size, pos = _varint(buf, pos)
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
            else:
                raise ValueError(f"unsupported wire type {wire}")
            if pos + size > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos : pos + size], pos + size
        yield number, wire, value


def _feature(buf: memoryview) -> Feature:
    for kind, _, body in _fields(buf):
        values = [(wire, value) for number, wire, value in _fields(body) if number == 1]
        if kind == 1:
            return [bytes(value) for _, value in values]
        if kind == 2:  # packed floats (TensorFlow's own writer) or one float per field
            floats = [np.frombuffer(value, "<f4") for _, value in values]
            return np.concatenate(floats) if floats else np.zeros(0, np.float32)
        if kind == 3:
            ints: list[int] = []
            for wire, value in values:
                if wire == 0:
                    ints.append(value)
                else:
                    pos = 0
                    while pos < len(value):
                        number, pos = _varint(value, pos)
                        ints.append(number)
            # Varints hold int64 as two's complement in 64 bits.
            return np.array([i - (1 << 64) if i >> 63 else i for i in ints], dtype=np.int64)
    return []


def parse_example(data: bytes) -> Example:
    """A serialized ``tf.train.Example`` as {key: list of bytes | float32 or int64 array}."""
    example: Example = {}
    for number, _, features in _fields(memoryview(data)):
        if number != 1:
            continue
        for entry_number, _, entry in _fields(features):
            if entry_number != 1:
                continue
            key, value = "", memoryview(b"")
            for field, _, item in _fields(entry):
                if field == 1:
                    key = bytes(item).decode("utf-8")
                elif field == 2:
                    value = item
            example[key] = _feature(value)
    return example


def step_count(example: Example, pattern: str) -> int:
    """Steps in an example whose per-step keys match ``pattern`` (group 1: the step)."""
    regex = re.compile(pattern)
    steps = [int(m.group(1)) for key in example if (m := regex.match(key))]
    return max(steps) + 1 if steps else 0


def bytes_feature(example: Example, key: str, where: str) -> bytes:
    """The single bytes value of ``example[key]``; a VidgenError naming ``where`` otherwise."""
    value = example.get(key)
    if value is None:
        raise VidgenError(f"{where} lacks the feature {key!r}.")
    if not isinstance(value, list) or len(value) != 1:
        raise VidgenError(f"{where}: feature {key!r} is not a single bytes value.")
    return value[0]


def float_feature(example: Example, key: str, where: str, count: int) -> np.ndarray:
    """``example[key]`` as ``count`` float32s; a VidgenError naming ``where`` otherwise."""
    value = example.get(key)
    if value is None:
        raise VidgenError(f"{where} lacks the feature {key!r}.")
    if not isinstance(value, np.ndarray) or value.dtype != np.float32 or len(value) != count:
        raise VidgenError(f"{where}: feature {key!r} is not {count} floats.")
    return value


def convert_records(
    path: Path,
    convert: Callable[[Example, str], Episode],
    skip_bad: bool,
    name_format: str,
) -> Converted:
    """Each record of ``path`` as an episode named ``name_format.format(path=path,
    index=index)`` whose (frames, actions, states) ``convert(example, where)`` gives; with
    ``skip_bad`` a bad record is left out and described in the problems instead of raising."""
    problems: list[str] = []
    episodes = []
    for index, payload in read_records(path, problems if skip_bad else None):
        where = f"{path}: record {index}"
        try:
            try:
                example = parse_example(payload)
            except (ValueError, UnicodeDecodeError):
                raise VidgenError(f"{where} is not a tf.train.Example.") from None
            frames, actions, states = convert(example, where)
        except VidgenError as err:
            if not skip_bad:
                raise
            problems.append(str(err))
            continue
        name = name_format.format(path=path, index=index)
        episodes.append((name, {"frames": frames, "actions": actions, "states": states}))
    return episodes, problems


@dataclass(frozen=True)
class StepFeatures:
    """A dataset's per-step feature keys, ``{}`` standing for the step t: the image, the
    action at frame t and the state, with their float counts; ``name`` is the dataset's in
    messages, ``source`` in the written files."""

    image: str
    action: str
    state: str
    action_size: int
    state_size: int
    name: str
    source: str

    def episode(self, example: Example, where: str, frame: FrameReader) -> Episode:
        """(frames uint8 [T, H, W, 3] RGB, actions [T, A], states [T, S]) of one record."""
        steps = step_count(example, re.escape(self.image).replace(r"\{\}", r"(\d+)") + "$")
        if not steps:
            raise VidgenError(
                f"{where} has no {self.image.format('<t>')} features; is it {self.name} data?"
            )
        frames, actions, states = [], [], []
        for t in range(steps):
            key = self.image.format(t)
            frames.append(frame(bytes_feature(example, key, where), where, key))
            actions.append(float_feature(example, self.action.format(t), where, self.action_size))
            states.append(float_feature(example, self.state.format(t), where, self.state_size))
        return np.stack(frames), np.stack(actions), np.stack(states)

    def write(
        self,
        args: argparse.Namespace,
        jobs: Sequence[tuple[str, Path]],
        frame: FrameReader,
        name_format: str,
        attrs: Mapping[str, object],
    ) -> None:
        """Every record of the (split, file) ``jobs`` as an episode into ``args.out``
        (``write_converted``), ``attrs`` completed with the action and state keys."""
        attrs = {
            **attrs,
            "actions_feature": self.action.format("<t>"),
            "states_feature": self.state.format("<t>"),
            "fps_note": "nominal; the source records carry no frame rate",
        }
        convert = partial(
            convert_records,
            convert=partial(self.episode, frame=frame),
            skip_bad=args.skip_bad,
            name_format=name_format,
        )
        write_converted(args, jobs, convert, self.source, FPS, attrs, f"{self.name} files")
