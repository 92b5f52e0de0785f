"""mp4 writing (decoded back with PyAV) and the animated grid layout."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from matplotlib import colormaps

from vidgen.errors import VidgenError
from vidgen.viz.grid import Panel, error_heatmap, rollout_panels, video_grid
from vidgen.viz.video import to_uint8_frames, write_mp4


def decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "fps": float(stream.average_rate),
        }
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return frames, info


def gradient_frames(t=9, h=24, w=32):
    """Smooth moving gradients: H.264 at crf 18 reproduces them within a few levels
    (noise would be ~85 levels off)."""
    y, x = np.mgrid[0:h, 0:w]
    frames = [np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 20 * i)], -1) for i in range(t)]
    return np.asarray(frames, dtype=np.uint8)


def test_mp4_decodes_with_frame_count_size_fps_and_faststart(tmp_path):
    frames = gradient_frames()
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=12.5)
    decoded, info = decode(path)
    assert decoded.shape == frames.shape  # 9 frames of 24x32
    assert info == {"codec": "h264", "pix_fmt": "yuv420p", "fps": 12.5}
    assert np.abs(decoded.astype(int) - frames).mean() < 6  # yuv420p halves chroma detail
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: index first
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no partial file left


def test_float_channels_first_and_uint8_encode_the_same(tmp_path):
    frames = gradient_frames(t=4)
    as_float = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # T C H W
    np.testing.assert_array_equal(to_uint8_frames(as_float), frames)  # the same pixels go in
    # The codec's threads may split work differently from run to run (an occasional run here
    # differs by 1.2 on average from the usual one), so each video is held to the source
    # frames within the codec's loss (2.9 on average here; a swapped or rescaled channel is
    # tens) rather than to each other.
    for name, video in (("a", frames), ("b", as_float)):
        decoded, _ = decode(write_mp4(video, tmp_path / f"{name}.mp4", fps=10))
        assert np.abs(decoded.astype(np.int16) - frames).mean() < 6


def test_odd_sizes_are_padded_and_upscaling_is_nearest(tmp_path):
    frames = np.zeros((3, 15, 17, 3), np.uint8)
    frames[:, :5, :5] = 255  # a white block in the top-left corner
    decoded, _ = decode(write_mp4(frames, tmp_path / "odd.mp4", fps=5))
    assert decoded.shape == (3, 16, 18, 3)
    big, _ = decode(write_mp4(frames, tmp_path / "big.mp4", fps=5, upscale=3))
    assert big.shape == (3, 46, 52, 3)  # 45x51, padded to even
    assert big[:, 2:13, 2:13].min() > 230 and big[:, 18:40, 18:40].max() < 25


@pytest.mark.parametrize(
    "frames, fps, match",
    [
        (np.zeros((4, 8, 8), np.uint8), 10, "must be"),
        (np.zeros((0, 8, 8, 3), np.uint8), 10, "no frames"),
        (np.zeros((4, 8, 8, 3), np.int64), 10, "uint8 or float"),
        (np.zeros((4, 8, 8, 3), np.uint8), 0, "fps must be positive"),
    ],
)
def test_bad_frames_fail_in_one_sentence_and_write_nothing(tmp_path, frames, fps, match):
    with pytest.raises(VidgenError, match=match):
        write_mp4(frames, tmp_path / "bad.mp4", fps=fps)
    assert not list(tmp_path.iterdir())


def test_grid_layout_cells_borders_and_gray_for_unknown():
    b, t, h, w, context = 2, 3, 4, 40, 1
    known = torch.full((b, t, 3, h, w), 0.2)
    predicted = torch.full((b, t, 3, h, w), 0.8)
    predicted[1] = float("nan")  # nothing to show for the second clip
    video = video_grid([Panel("a", known), Panel("b", predicted, True)], context, upscale=2)
    top, cell_h, cell_w = 36, 2 * h + 4, 2 * w + 4  # header: counter, labels, timeline
    assert video.shape == (t, top + b * cell_h, 2 * cell_w, 3)
    inner = (slice(2, 2 + 2 * h), slice(2, 2 + 2 * w))

    def cell(step, row, col):
        y, x = top + row * cell_h, col * cell_w
        return video[step, y : y + cell_h, x : x + cell_w]

    assert (cell(0, 0, 0)[inner] == 51).all() and (cell(2, 1, 0)[inner] == 51).all()
    assert (cell(1, 0, 1)[inner] == 204).all()
    assert (cell(1, 1, 1)[inner] == 128).all()  # NaN shows as mid gray
    # Predicted columns turn their border red from the first predicted frame on.
    assert cell(0, 0, 1)[0, 0].tolist() == [60, 60, 60]
    assert cell(1, 0, 1)[0, 0].tolist() == cell(2, 1, 1)[0, 0].tolist() == [230, 50, 50]
    assert cell(2, 0, 0)[0, 0].tolist() == [60, 60, 60]
    # Timeline: green for the context third, red after it, a white cursor moving with t.
    bar = video[:, 33]
    assert bar[0, 20].tolist() == [60, 170, 90] and bar[0, 100].tolist() == [230, 50, 50]
    assert bar[0, 0].tolist() == [255, 255, 255] and bar[2, 112].tolist() == [255, 255, 255]
    assert not (video[0, :16] == video[1, :16]).all()  # the frame counter changes


def test_error_heatmap_is_the_inferno_colour_of_the_scaled_error():
    pred, truth = torch.full((1, 2, 3, 2, 2), 0.25), torch.full((1, 2, 3, 2, 2), 0.5)
    truth[0, 1] = float("nan")
    heat = error_heatmap(pred, truth)
    expected = colormaps["inferno"](128 / 255)[:3]  # |0.25 - 0.5| / 0.5 of the scale
    assert heat[0, 0, :, 0, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert heat[0, 1].isnan().all()


def test_rollout_panels_hold_context_and_mark_missing_truth():
    context, horizon = 3, 4
    truth = torch.rand(2, context + 2, 3, 4, 4)  # the clip ends 2 frames into the future
    predictions = torch.rand(2, horizon, 3, 4, 4)
    seen, gt, pred, error = rollout_panels(truth, predictions, context)
    assert [p.label for p in (seen, gt, pred, error)] == ["context", "truth", "prediction", "error"]
    assert all(p.frames.shape == (2, context + horizon, 3, 4, 4) for p in (seen, gt, pred, error))
    assert torch.equal(seen.frames[:, -1], truth[:, context - 1])
    assert torch.equal(pred.frames[:, context:], predictions) and pred.predicted
    known = context + 2
    assert gt.frames[:, known:].isnan().all() and not gt.frames[:, :known].isnan().any()
    assert error.frames[:, :context].isnan().all() and error.frames[:, context + 2 :].isnan().all()
    assert not error.frames[:, context : context + 2].isnan().any()
