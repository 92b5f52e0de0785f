"""Writers of miniature datasets in their real source formats, for the converter tests.

Written independently of ``data_prep`` (their own CRC masking, protobuf encoding and .seq
header), so a reader bug is not mirrored by its fixture.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import google_crc32c
import numpy as np


def png_bytes(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def bands(height: int, width: int, edges: Sequence[int], colours: Sequence[tuple]) -> np.ndarray:
    """An RGB image of vertical flat-colour bands: colours[i] fills columns edges[i]..edges[i+1]."""
    image = np.zeros((height, width, 3), np.uint8)
    for left, right, colour in zip(edges[:-1], edges[1:], colours, strict=True):
        image[:, left:right] = colour
    return image


def kitti_member(drive: str, index: int) -> str:
    return f"{drive[:10]}/{drive}/image_03/data/{index:010d}.png"


def write_kitti_folder(raw: Path, drive: str, frames: Sequence[np.ndarray]) -> Path:
    """``raw/<date>/<drive>/image_03/data/NNNNNNNNNN.png`` (written last frame first, so
    the order on disk is not the order of the names)."""
    data = raw / drive[:10] / drive / "image_03" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for index in reversed(range(len(frames))):
        (data / f"{index:010d}.png").write_bytes(png_bytes(frames[index]))
    return data


def write_kitti_zip(raw: Path, drive: str, frames: Sequence[np.ndarray]) -> Path:
    """``raw/<drive>.zip`` laid out as KITTI's per-drive downloads, with an image_02 decoy."""
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / f"{drive}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in reversed(range(len(frames))):
            archive.writestr(kitti_member(drive, index), png_bytes(frames[index]))
            decoy = kitti_member(drive, index).replace("image_03", "image_02")
            archive.writestr(decoy, png_bytes(np.zeros_like(frames[index])))
    return path


def write_seq(path: Path, jpegs: Sequence[bytes], fps: float = 30.0, padded: bool = False) -> None:
    """A Norpix .seq file of JPEG frames, header as Piotr Dollar's seqIo writes it.

    ``padded`` adds the 8 empty bytes some writers put after each timestamp.
    """
    height, width = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    header = bytearray(1024)
    struct.pack_into("<I", header, 0, 0xFEED)
    header[4:24] = "Norpix seq".encode("utf-16-le")
    struct.pack_into("<iI", header, 28, 3, 1024)
    fields = (width, height, 24, 8, width * height * 3, 102, len(jpegs), 0, 0)
    struct.pack_into("<9I", header, 548, *fields)
    struct.pack_into("<d", header, 584, fps)
    body = bytearray()
    for index, jpeg in enumerate(jpegs):
        body += struct.pack("<I", len(jpeg) + 4) + jpeg
        body += struct.pack("<IHH", 1_300_000_000 + index, index % 1000, 0)
        if padded:
            body += bytes(8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(header) + bytes(body))


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: Mapping[str, object]) -> bytes:
    """A serialized tf.train.Example: bytes or lists of bytes -> bytes_list, integer arrays
    -> packed int64_list, anything else -> packed float_list."""
    entries = b""
    for key, value in features.items():
        if isinstance(value, bytes):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, bytes) for v in value):
            feature = _field(1, b"".join(_field(1, v) for v in value))
        elif np.asarray(value).dtype.kind in "iu":
            feature = _field(3, _field(1, b"".join(_varint(int(v)) for v in value)))
        else:
            feature = _field(2, _field(1, np.asarray(value, "<f4").tobytes()))
        entries += _field(1, _field(1, key.encode()) + _field(2, feature))
    return _field(1, entries)


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path: Path, payloads: Sequence[bytes]) -> None:
    """TFRecord framing of ``payloads``, as TensorFlow's record writer lays it out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bytearray()
    for payload in payloads:
        length = struct.pack("<Q", len(payload))
        out += length + struct.pack("<I", _masked_crc(length))
        out += payload + struct.pack("<I", _masked_crc(payload))
    path.write_bytes(bytes(out))


# ------------------------------------------------- the miniature datasets' contents
# Flat bands with distinct R, G and B that change with the frame, so colour order, frame
# order and crop geometry can be read back. X marks columns every crop must remove.
X, TOP = (255, 0, 255), (0, 255, 0)
KITTI_SIZE = (75, 248)  # 375x1242 scaled by 1/5


def kitti_colours(drive: int, t: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The two central bands of frame t of a drive (by its number)."""
    return (20 + 40 * t, 180 - 30 * t, drive), (240 - 40 * t, 30 + 20 * t, 255 - drive)


def kitti_frames(drive: str, count: int) -> list[np.ndarray]:
    """KITTI-shaped frames: bands X | A | B | X under a TOP band (rows 0..5)."""
    number = int(drive[17:21])
    frames = []
    for t in range(count):
        a, b = kitti_colours(number, t)
        frame = bands(*KITTI_SIZE, [0, 60, 124, 188, KITTI_SIZE[1]], [X, a, b, X])
        frame[:6] = TOP
        frames.append(frame)
    return frames


def kitti_drive(number: int, date: str = "2011_09_26") -> str:
    return f"{date}_drive_{number:04d}_sync"


def caltech_colours(i: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The left and right halves of frame i; neighbours differ by 15+ levels per channel."""
    return (10 + 20 * i, 200 - 15 * i, 90), (230 - 20 * i, 40 + 15 * i, 160)


def caltech_jpegs(count: int) -> list[bytes]:
    return [jpeg_bytes(bands(48, 64, [0, 32, 64], caltech_colours(i))) for i in range(count)]


def push_colours(record: int, t: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The halves of the centre square of step t of a push record."""
    return (30 + 50 * t, 200 - 40 * t, 20 * record), (220 - 50 * t, 20 + 40 * t, 250)


def push_record(record: int, steps: int, drop: str | None = None) -> bytes:
    """A push Example with the real keys, without feature ``drop``; actions and states
    encode (record, t) so their alignment with the frames can be checked."""
    features: dict[str, object] = {}
    for t in range(steps):
        a, b = push_colours(record, t)
        image = bands(512, 640, [0, 64, 320, 576, 640], [X, a, b, X])
        features[f"move/{t}/image/encoded"] = jpeg_bytes(image)
        features[f"move/{t}/commanded_pose/vec_pitch_yaw"] = [record, t, 0.5, -1.25, 2.0 * t]
        features[f"move/{t}/endeffector/vec_pitch_yaw"] = [100 + record, t, 0.1, 0.2, -t]
    features.pop(drop, None)
    return encode_example(features)


def bair_record(record: int) -> tuple[bytes, np.ndarray]:
    """A 30-step BAIR Example and its aux1 frames (image_main holds their negative)."""
    aux1 = np.random.default_rng(record).integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    features: dict[str, object] = {}
    for t in range(30):
        features[f"{t}/image_aux1/encoded"] = aux1[t].tobytes()
        features[f"{t}/image_main/encoded"] = (255 - aux1[t]).tobytes()
        features[f"{t}/action"] = [record, t, -t, 0.5]
        features[f"{t}/endeffector_pos"] = [10 * record, t, 1.5]
    return encode_example(features), aux1
