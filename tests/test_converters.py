"""The KITTI, Caltech, push and BAIR converters on miniature datasets in their real formats.

Frames are flat-colour bands with distinct R, G and B, so colour order, crop geometry,
frame order and stepping can be read back pixel by pixel (with a tolerance for JPEG).
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from data_prep.tfrecord import parse_example
from fixtures_sources import (
    TOP,
    bair_record,
    caltech_colours,
    caltech_jpegs,
    encode_example,
    kitti_colours,
    kitti_drive,
    kitti_frames,
    push_colours,
    push_record,
    write_kitti_folder,
    write_kitti_zip,
    write_seq,
    write_tfrecord,
)
from vidgen.cli.prep import main
from vidgen.data.store import open_clips

JPEG_TOL = 6


def read_split(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, object]]:
    """{episode name: {frames, actions?, states?}} and the attributes of a clip file."""
    with open_clips(path) as f:
        starts = f["episode_starts"][()]
        episodes = {}
        for i, name in enumerate(f["episode_names"].asstr()[()]):
            rows = slice(starts[i], starts[i + 1])
            episodes[name] = {k: f[k][rows] for k in ("frames", "actions", "states") if k in f}
        return episodes, dict(f.attrs)


def expect_user_error(capsys: pytest.CaptureFixture[str], argv: list[str], *messages: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert all(message in err for message in messages) and "Traceback" not in err


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not list(out.iterdir())


def assert_close(actual: np.ndarray, colour: tuple[int, int, int], tol: int = 0) -> None:
    diff = np.abs(actual.astype(int) - np.array(colour)).max()
    assert diff <= tol, f"max difference {diff} from {colour}"


# ---------------------------------------------------------------- KITTI
# KITTI frames are 375x1242; 75x248 keeps the aspect. Covering 128x160 scales by 128/75 to
# 128x423 and keeps columns 131..290: source columns 76.8..170.5. The out-of-crop bands X
# must vanish, and the A|B edge at source column 124 lands at output 124 * 128 / 75 - 131.
K_SCALE, K_LEFT = 128 / 75, (round(248 * 128 / 75) - 160) // 2
K_EDGE = 124 * K_SCALE - K_LEFT


def check_kitti_episode(frames: np.ndarray, drive: str) -> None:
    number = int(drive[17:21])
    assert frames.shape[1:] == (128, 160, 3)
    for t, frame in enumerate(frames):
        a, b = kitti_colours(number, t)
        assert_close(frame[:8], TOP)  # the full height is kept: the top band stays
        assert_close(frame[12:, : int(K_EDGE) - 2], a)
        assert_close(frame[12:, int(K_EDGE) + 3 :], b)


@pytest.fixture()
def kitti_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "kitti_raw"
    for number, count in ((1, 3), (5, 2), (104, 2), (70, 1)):
        write_kitti_folder(raw, kitti_drive(number), kitti_frames(kitti_drive(number), count))
    for number in (19, 79):
        write_kitti_zip(raw, kitti_drive(number), kitti_frames(kitti_drive(number), 2))
    campus = kitti_drive(16, "2011_09_28")
    write_kitti_folder(raw, campus, kitti_frames(campus, 1))
    return raw


def test_kitti_layouts_splits_and_geometry(kitti_raw: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "kitti"
    argv = ["kitti", "--raw", str(kitti_raw), "--out", str(out), "--workers", "1"]
    assert main(argv) == 0
    assert "1 drive(s) outside the city/residential/road lists were skipped" in (
        capsys.readouterr().err
    )
    expected = {
        "train": ["city/" + kitti_drive(1), "residential/" + kitti_drive(19)],
        "val": ["city/" + kitti_drive(5)],
        "test": [
            "road/" + kitti_drive(70),
            "residential/" + kitti_drive(79),
            "city/" + kitti_drive(104),
        ],
    }
    first = {}
    for split, names in expected.items():
        episodes, attrs = read_split(out / f"{split}.h5")
        assert list(episodes) == names
        assert attrs["fps"] == 10 and attrs["channel_order"] == "RGB"
        assert "image_03" in attrs["rule"] and "command" in attrs
        for name, episode in episodes.items():
            check_kitti_episode(episode["frames"], name.split("/")[1])
        first.update({name: episode["frames"] for name, episode in episodes.items()})

    expect_user_error(capsys, argv, "already holds a dataset")
    argv[-1] = "2"  # the process pool must give the same frames
    assert main([*argv, "--force", "--category-unknown", "train"]) == 0
    train, _ = read_split(out / "train.h5")
    assert "uncategorized/2011_09_28_drive_0016_sync" in train
    for name, episode in train.items():
        if name in first:
            np.testing.assert_array_equal(episode["frames"], first[name])


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty drive", "drive 2011_09_26_drive_0002_sync has no image_03/data/*.png frames"),
        ("corrupt png", "0000000000.png is not a decodable image"),
        ("bad zip", "2011_09_26_drive_0019_sync.zip is not a readable zip file"),
        ("missing split", "holds no drive of PredNet's val split (2011_09_26_drive_0005_sync)"),
        ("wrong folder", "holds no KITTI raw drives"),
    ],
)
def test_kitti_bad_inputs(tmp_path: Path, capsys, case: str, message: str) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    for number in (1, 11, 5, 70):
        write_kitti_folder(raw, kitti_drive(number), kitti_frames(kitti_drive(number), 1))
    if case == "empty drive":
        (raw / "2011_09_26" / kitti_drive(2) / "image_03" / "data").mkdir(parents=True)
    elif case == "corrupt png":
        png = raw / "2011_09_26" / kitti_drive(1) / "image_03" / "data" / "0000000000.png"
        png.write_bytes(png.read_bytes()[:40])
    elif case == "bad zip":
        (raw / f"{kitti_drive(19)}.zip").write_bytes(b"PK\x03\x04 not really a zip")
    elif case == "missing split":
        shutil.rmtree(raw / "2011_09_26" / kitti_drive(5))
    else:
        raw = tmp_path / "empty"
        raw.mkdir()
    argv = ["kitti", "--raw", str(raw), "--out", str(out), "--workers", "1"]
    expect_user_error(capsys, argv, message)
    assert_nothing_written(out)
    if case in ("empty drive", "corrupt png", "bad zip"):
        assert main([*argv, "--skip-bad"]) == 0
        err = capsys.readouterr().err
        assert "skipped 1 bad item(s)" in err and message in err
        assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5", "val.h5"]


# ---------------------------------------------------------------- Caltech
# 48x64 frames (640x480's aspect) cover 128x160 at scale 8/3: 128x171, columns 5..164 kept.
C_EDGE = 32 * 128 / 48 - 5


@pytest.fixture()
def caltech_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "caltech"
    write_seq(raw / "set06" / "V000.seq", caltech_jpegs(10))
    write_seq(raw / "set07" / "V001.seq", caltech_jpegs(7), padded=True)
    return raw


def test_caltech_every_third_frame(caltech_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["caltech", "--raw", str(caltech_raw), "--out", str(out), "--workers", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["test.h5"]
    episodes, attrs = read_split(out / "test.h5")
    assert attrs["fps"] == 10 and "every 3rd frame" in attrs["rule"]
    assert list(episodes) == ["set06/V000", "set07/V001"]
    for name, kept in (("set06/V000", [0, 3, 6, 9]), ("set07/V001", [0, 3, 6])):
        frames = episodes[name]["frames"]
        assert frames.shape == (len(kept), 128, 160, 3)
        for frame, index in zip(frames, kept, strict=True):
            a, b = caltech_colours(index)
            assert_close(frame[:, : int(C_EDGE) - 3], a, JPEG_TOL)
            assert_close(frame[:, int(C_EDGE) + 4 :], b, JPEG_TOL)


@pytest.mark.parametrize(
    "case, message",
    [
        ("truncated", "V000.seq is truncated: frame 9 runs past the end of the file"),
        ("corrupt jpeg", "V000.seq is not a decodable image (corrupt or truncated)"),
        ("not seq", "V000.seq is not a Norpix .seq file"),
        ("no train sets", "holds no train video (set00/V*.seq ... set05/V*.seq)"),
        ("wrong folder", "is not a folder"),
    ],
)
def test_caltech_bad_inputs(caltech_raw: Path, tmp_path: Path, capsys, case, message) -> None:
    out, seq = tmp_path / "out", caltech_raw / "set06" / "V000.seq"
    argv = ["caltech", "--raw", str(caltech_raw), "--out", str(out), "--workers", "1"]
    data = bytearray(seq.read_bytes())
    if case == "truncated":
        seq.write_bytes(data[:-30])
    elif case == "corrupt jpeg":
        start = 1024 + sum(len(j) + 12 for j in caltech_jpegs(3)) + 4
        data[start + 2 : start + 40] = bytes(38)  # wipe the JPEG's tables, keep its markers
        seq.write_bytes(data)
    elif case == "not seq":
        seq.write_bytes(b"RIFF" + bytes(2000))
    elif case == "no train sets":
        argv.append("--with-train")
    else:
        argv[2] = str(tmp_path / "nowhere")
    expect_user_error(capsys, argv, message, *(["frame 3 of"] if case == "corrupt jpeg" else []))
    assert_nothing_written(out)
    if case == "truncated":
        assert main([*argv, "--skip-bad"]) == 0
        assert message in capsys.readouterr().err
        assert list(read_split(out / "test.h5")[0]) == ["set07/V001"]


# ---------------------------------------------------------------- push
# 512x640 JPEGs; the centre square is columns 64..575 and 8x area downsampling maps its
# halves A | B exactly onto output columns 0..31 | 32..63. Bands X must vanish.
@pytest.fixture()
def push_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "push"
    write_tfrecord(raw / "push_train" / "train-0-of-2", [push_record(0, 3), push_record(1, 3)])
    write_tfrecord(raw / "push_train" / "train-1-of-2", [push_record(2, 2)])
    write_tfrecord(raw / "push_testseen" / "seen-0-of-1", [push_record(3, 2)])
    write_tfrecord(raw / "push_testnovel" / "novel-0-of-1", [push_record(4, 2)])
    return raw


def test_push_splits_frames_actions_states(push_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["push", "--raw", str(push_raw), "--out", str(out), "--workers", "1"]) == 0
    expected = {
        "train": {"train-0-of-2/0000": 0, "train-0-of-2/0001": 1},
        "val": {"train-1-of-2/0000": 2},
        "test_seen": {"seen-0-of-1/0000": 3},
        "test_novel": {"novel-0-of-1/0000": 4},
    }
    for split, records in expected.items():
        episodes, attrs = read_split(out / f"{split}.h5")
        assert "centre-cropped to a square" in attrs["rule"]
        assert list(episodes) == list(records)
        for name, record in records.items():
            frames, actions, states = (episodes[name][k] for k in ("frames", "actions", "states"))
            assert frames.shape[1:] == (64, 64, 3) and actions.shape == states.shape
            for t, frame in enumerate(frames):
                a, b = push_colours(record, t)
                assert_close(frame[:, 1:31], a, JPEG_TOL)
                assert_close(frame[:, 33:63], b, JPEG_TOL)
                # The outer columns average in one source column whose chroma the JPEG
                # decoder blends with X; a crop off by even 8 pixels would be mostly X.
                assert_close(frame[:, 0], a, 2 * JPEG_TOL)
                assert_close(frame[:, 63], b, 2 * JPEG_TOL)
                want = np.float32([record, t, 0.5, -1.25, 2.0 * t])
                np.testing.assert_array_equal(actions[t], want)
                np.testing.assert_array_equal(
                    states[t], np.float32([100 + record, t, 0.1, 0.2, -t])
                )


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing key", "record 0 lacks the feature 'move/1/commanded_pose/vec_pitch_yaw'"),
        ("missing split", "lacks push_testnovel/ (the test_novel split)"),
    ],
)
def test_push_bad_inputs(push_raw: Path, tmp_path: Path, capsys, case, message) -> None:
    if case == "missing key":
        bad = push_record(5, 2, drop="move/1/commanded_pose/vec_pitch_yaw")
        write_tfrecord(push_raw / "push_testseen" / "seen-0-of-1", [bad])
    else:
        shutil.rmtree(push_raw / "push_testnovel")
    out = tmp_path / "out"
    expect_user_error(capsys, ["push", "--raw", str(push_raw), "--out", str(out)], message)
    assert_nothing_written(out)


# ---------------------------------------------------------------- BAIR
@pytest.fixture()
def bair_raw(tmp_path: Path) -> tuple[Path, dict[tuple[str, str], np.ndarray]]:
    """The BAIR layout, and the aux1 frames of each record by (folder, episode name)."""
    raw, images = tmp_path / "bair", {}
    layout = {
        "train/traj_0_to_255": [0, 1],
        "train/traj_256_to_511": [2],
        "train/traj_2304_to_2559": [3],
        "train/traj_512_to_767": [4],
        "test/traj_0_to_255": [5],
    }
    for file, records in layout.items():
        folder, stem = file.split("/")
        payloads = []
        for index, record in enumerate(records):
            payload, images[folder, f"{stem}/{index:03d}"] = bair_record(record)
            payloads.append(payload)
        write_tfrecord(raw / "softmotion30_44k" / f"{file}.tfrecords", payloads)
    return raw, images


def test_bair_savp_splits(bair_raw, tmp_path: Path) -> None:
    raw, images = bair_raw
    out = tmp_path / "out"
    assert main(["bair", "--raw", str(raw), "--out", str(out), "--workers", "1"]) == 0
    expected = {
        "train": [
            "traj_0_to_255/000",
            "traj_0_to_255/001",
            "traj_512_to_767/000",
            "traj_2304_to_2559/000",
        ],
        "val": ["traj_256_to_511/000"],
        "test": ["traj_0_to_255/000"],
    }
    for split, names in expected.items():
        episodes, attrs = read_split(out / f"{split}.h5")
        assert list(episodes) == names and "image_aux1" in attrs["rule"]
        for name, episode in episodes.items():
            aux1 = images["test" if split == "test" else "train", name]
            np.testing.assert_array_equal(episode["frames"], aux1)
            record = int(episode["actions"][0, 0])
            t = np.arange(30, dtype=np.float32)
            np.testing.assert_array_equal(episode["actions"][:, 1:3], np.stack([t, -t], 1))
            np.testing.assert_array_equal(episode["states"][:, 0], np.full(30, 10.0 * record))
    argv = ["bair", "--raw", str(raw), "--out", str(out), "--camera", "main", "--force"]
    assert main([*argv, "--workers", "2"]) == 0
    val, _ = read_split(out / "val.h5")
    np.testing.assert_array_equal(
        val["traj_256_to_511/000"]["frames"], 255 - images["train", "traj_256_to_511/000"]
    )


@pytest.mark.parametrize(
    "case, message",
    [
        ("bad crc", "traj_0_to_255.tfrecords: record 1 fails its CRC32C check"),
        ("truncated", "traj_512_to_767.tfrecords: record 0 is truncated"),
        ("not an example", "traj_0_to_255.tfrecords: record 1 is not a tf.train.Example"),
        ("missing test", "lacks test/"),
    ],
)
def test_bair_bad_inputs(bair_raw, tmp_path: Path, capsys, case: str, message: str) -> None:
    raw = bair_raw[0]
    train = raw / "softmotion30_44k" / "train"
    if case == "bad crc":
        data = bytearray((train / "traj_0_to_255.tfrecords").read_bytes())
        data[-100] ^= 0xFF  # inside record 1's payload
        (train / "traj_0_to_255.tfrecords").write_bytes(data)
    elif case == "truncated":
        path = train / "traj_512_to_767.tfrecords"
        path.write_bytes(path.read_bytes()[:-10])
    elif case == "not an example":
        write_tfrecord(train / "traj_0_to_255.tfrecords", [bair_record(0)[0], b"\xff\xff\xff"])
    else:
        shutil.rmtree(raw / "softmotion30_44k" / "test")
    out = tmp_path / "out"
    argv = ["bair", "--raw", str(raw), "--out", str(out), "--workers", "1"]
    expect_user_error(capsys, argv, message)
    assert_nothing_written(out)
    if case in ("bad crc", "not an example"):
        assert main([*argv, "--skip-bad"]) == 0
        assert message in capsys.readouterr().err
        assert list(read_split(out / "train.h5")[0])[:2] == [
            "traj_0_to_255/000",
            "traj_512_to_767/000",
        ]


def test_parse_example_all_encodings() -> None:
    example = parse_example(
        encode_example({"b": [b"x", b"yz"], "f": [1.5, -2.0], "i": np.array([3, -4, 2**40])})
    )
    assert example["b"] == [b"x", b"yz"]
    np.testing.assert_array_equal(example["f"], np.float32([1.5, -2.0]))
    np.testing.assert_array_equal(example["i"], [3, -4, 2**40])

    # Unpacked repeated values (legal protobuf, though TensorFlow writes packed ones).
    floats = b"".join(b"\x0d" + struct.pack("<f", v) for v in (0.25, 4.0))
    ints = b"\x08\x07\x08\x09"
    for kind, values, expected in ((2, floats, [0.25, 4.0]), (3, ints, [7, 9])):
        feature = bytes([kind << 3 | 2, len(values)]) + values
        entry = b"\x0a\x01k" + bytes([0x12, len(feature)]) + feature
        features = bytes([0x0A, len(entry)]) + entry
        parsed = parse_example(bytes([0x0A, len(features)]) + features)
        np.testing.assert_array_equal(parsed["k"], expected)
    with pytest.raises(ValueError):
        parse_example(b"\x0a\x05ab")
