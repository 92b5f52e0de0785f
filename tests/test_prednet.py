"""PredNet (Lotter et al. 2016) and the shared ConvLSTM cell, checked against hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from benchmarks.reference_prednet import reference_prednet
from vidgen.models import ConvLSTMCell, PredNet, hard_sigmoid
from vidgen.models.convlstm import tanh
from vidgen.models.prednet import conv3x3_of_upsampled, fold_for_upsampled

PAPER_STACK = (3, 48, 96, 192)
SMALL_STACK = (3, 4, 8)


def _hs(z):
    """Keras-2 hard sigmoid, written out independently of the module under test."""
    return torch.clamp(0.2 * z + 0.5, min=0.0, max=1.0)


def _randomize_biases(module, seed, scale=0.3):
    """Glorot weights keep their init; non-zero biases make every code path matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.copy_((torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1) * scale)
    return module


def _small_model(seed=0):
    torch.manual_seed(seed)
    return _randomize_biases(PredNet(SMALL_STACK).double(), seed)


def _frames(b, t, c, h, w, seed=0):
    return torch.rand(b, t, c, h, w, generator=torch.Generator().manual_seed(seed)).double()


# --- hard_sigmoid -----------------------------------------------------------------------------


def test_hard_sigmoid_is_keras2_not_torch():
    x = torch.tensor([-3.0, -2.5, -1.0, 0.0, 1.0, 2.4, 2.5, 3.0], requires_grad=True)
    y = hard_sigmoid(x)
    expected = torch.tensor([0.0, 0.0, 0.3, 0.5, 0.7, 0.98, 1.0, 1.0])
    torch.testing.assert_close(y.detach(), expected)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0, 0.2, 0.2, 0.2, 0.2, 0, 0]))
    # torch's hardsigmoid has slope 1/6 and clips at +-3.
    assert not torch.allclose(y.detach(), F.hardsigmoid(x.detach()))
    assert F.hardsigmoid(torch.tensor(1.0)).item() == pytest.approx(2 / 3)


def test_hard_sigmoid_does_not_modify_input():
    x = torch.linspace(-4, 4, 9)
    before = x.clone()
    hard_sigmoid(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-6), (torch.float64, 1e-15)])
def test_tanh_matches_torch_in_value_and_gradient(dtype, tol):
    # A channel slice of an NHWC tensor, as the gates are, with saturated and tiny values.
    gates = torch.randn(2, 8, 5, 6, dtype=dtype).contiguous(memory_format=torch.channels_last)
    gates[0, :, 0, 0] = torch.tensor([-40.0, 40.0, 1e-9, -1e-9, 0.0, 20.0, -20.0, 0.5])
    x = gates[:, 4:].detach().requires_grad_()
    expected = torch.tanh(x)
    y = tanh(x)
    torch.testing.assert_close(y, expected, atol=tol, rtol=0)
    grad = torch.randn_like(y)
    y.backward(grad)
    torch.testing.assert_close(x.grad, grad * (1 - expected.detach() ** 2), atol=tol, rtol=0)
    low_precision = x.detach().bfloat16()  # other dtypes keep torch's kernel, bit for bit
    assert torch.equal(tanh(low_precision), torch.tanh(low_precision))


# --- ConvLSTMCell -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "act", "forget_bias"),
    [
        ({}, _hs, 0.0),
        ({"gate_activation": "sigmoid", "forget_bias": 1.0}, torch.sigmoid, 1.0),
    ],
)
def test_convlstm_cell_matches_hand_computation(kwargs, act, forget_bias):
    torch.manual_seed(0)
    cell = _randomize_biases(ConvLSTMCell(3, 4, kernel_size=3, **kwargs).double(), seed=1)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    h0 = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    c0 = torch.randn(2, 4, 5, 6, dtype=torch.float64)

    h, (h_state, c) = cell(x, (h0, c0))

    xh = torch.cat([x, h0], dim=1)  # the cell concatenates [x, h_prev]
    w, b = cell.conv.weight, cell.conv.bias

    def pre(k):  # gate k's own 3x3 'same' conv
        return F.conv2d(xh, w[4 * k : 4 * k + 4], b[4 * k : 4 * k + 4], padding=1)

    i, f, o, g = act(pre(0)), act(pre(1) + forget_bias), act(pre(2)), torch.tanh(pre(3))
    c_expected = f * c0 + i * g
    h_expected = o * torch.tanh(c_expected)
    torch.testing.assert_close(c, c_expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, h_expected, rtol=0, atol=1e-12)
    assert h_state is h


def test_convlstm_cell_without_recurrent_input_and_zero_state():
    torch.manual_seed(0)
    cell = _randomize_biases(ConvLSTMCell(5, 2, recurrent_input=False).double(), seed=2)
    assert cell.conv.in_channels == 5
    x = torch.randn(1, 5, 4, 4, dtype=torch.float64)
    h, (_, c) = cell(x)  # state=None means zeros, so c = i * g
    gates = F.conv2d(x, cell.conv.weight, cell.conv.bias, padding=1)
    i, _, o, g = gates.chunk(4, dim=1)
    c_expected = _hs(i) * torch.tanh(g)
    torch.testing.assert_close(c, c_expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, _hs(o) * torch.tanh(c_expected), rtol=0, atol=1e-12)


def test_convlstm_cell_layer_norm():
    torch.manual_seed(0)
    cell = _randomize_biases(ConvLSTMCell(3, 4, gate_activation="sigmoid", norm=True), seed=3)
    x, h0, c0 = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    h, (_, c) = cell(x, (h0, c0))
    gates = F.group_norm(
        F.conv2d(torch.cat([x, h0], 1), cell.conv.weight, cell.conv.bias, padding=1),
        1,
        cell.gate_norm.weight,
        cell.gate_norm.bias,
    )
    i, f, o, g = gates.chunk(4, dim=1)
    c_expected = F.group_norm(
        torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g),
        1,
        cell.cell_norm.weight,
        cell.cell_norm.bias,
    )
    torch.testing.assert_close(c, c_expected)
    torch.testing.assert_close(h, torch.sigmoid(o) * torch.tanh(c_expected))


def test_convlstm_cell_rejects_unknown_activation():
    with pytest.raises(ValueError, match="gate_activation"):
        ConvLSTMCell(3, 4, gate_activation="relu")


def test_convlstm_cell_glorot_per_gate_and_zero_bias():
    torch.manual_seed(0)
    cell = ConvLSTMCell(57, 12, kernel_size=3, recurrent_input=False)
    limit = math.sqrt(6 / (57 * 9 + 12 * 9))  # Keras limit for one gate's conv
    for gate in cell.conv.weight.detach().chunk(4, dim=0):
        assert gate.abs().max() <= limit
        # Glorot over the stacked 4*hidden outputs would cap at ~0.79 * limit.
        assert gate.abs().max() > 0.95 * limit
    assert torch.count_nonzero(cell.conv.bias) == 0


def test_init_state_is_zeros():
    cell = ConvLSTMCell(3, 4)
    h, c = cell.init_state(2, 5, 6, torch.device("cpu"), torch.float64)
    for s in (h, c):
        assert s.shape == (2, 4, 5, 6) and s.dtype == torch.float64
        assert torch.count_nonzero(s) == 0


# --- PredNet: structure -----------------------------------------------------------------------


def test_paper_parameter_count():
    assert sum(p.numel() for p in PredNet(PAPER_STACK).parameters()) == 6_915_948


def test_paper_config_shapes():
    model = PredNet()
    with torch.no_grad():
        preds, errors = model(torch.rand(1, 2, 3, 128, 160))
    assert preds.shape == (1, 2, 3, 128, 160)
    assert errors.shape == (1, 2, 4)


def test_small_config_shapes_with_distinct_r_stack_sizes():
    # R channels != A channels exercises the channel bookkeeping fixed in coxlab/prednet#56.
    model = PredNet((3, 4, 8), r_stack_sizes=(5, 6, 7))
    preds, errors = model(torch.rand(2, 3, 3, 16, 24), future_steps=2)
    assert preds.shape == (2, 5, 3, 16, 24)
    assert errors.shape == (2, 5, 3)


def test_glorot_init_and_zero_biases():
    torch.manual_seed(0)
    model = PredNet(PAPER_STACK)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
            continue
        out_c, in_c, kh, kw = p.shape
        gates = 4 if name.startswith("cells.") else 1
        limit = math.sqrt(6 / ((in_c + out_c // gates) * kh * kw))
        assert p.abs().max() <= limit, name
        assert p.abs().max() > 0.9 * limit, name


@pytest.mark.parametrize("size", [(100, 160), (128, 164)])
def test_rejects_sizes_not_divisible(size):
    with pytest.raises(ValueError, match="divisible by 8"):
        PredNet(PAPER_STACK)(torch.rand(1, 2, 3, *size))


# --- PredNet: the step, by hand ---------------------------------------------------------------

# A 1-layer, 1-channel PredNet whose convs use only their centre tap, so each pixel is an
# independent scalar recurrence. Cell weight columns: [R, E+, E-]; rows: gates i, f, o, g.
_W = [[0.5, -1.0, 2.0], [1.5, 0.7, -0.4], [-0.8, 3.0, 1.0], [1.2, -2.0, 0.9]]
_B = [0.3, -0.2, 0.6, 0.4]
_WA, _BA = 1.7, 0.35


def _toy_model():
    model = PredNet(stack_sizes=(1,)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.cells[0].conv.weight[:, :, 1, 1] = torch.tensor(_W, dtype=torch.float64)
        model.cells[0].conv.bias.copy_(torch.tensor(_B, dtype=torch.float64))
        model.ahat_convs[0].weight[0, 0, 1, 1] = _WA
        model.ahat_convs[0].bias.fill_(_BA)
    return model


def test_one_layer_toy_matches_hand_computation():
    x = torch.tensor(
        [[[0.0, 0.2, 0.9, 1.0], [0.45, 0.5, 0.6, 0.05], [0.3, 0.7, 0.8, 0.1]]],
        dtype=torch.float64,
    )  # [C=1, H=3, W=4]
    frames = torch.stack([x, x.flip(-1)]).unsqueeze(0)  # [1, 2, 1, 3, 4]
    preds, errors = _toy_model()(frames)

    def step(r, c, e_pos, e_neg, target):
        z = [_W[k][0] * r + _W[k][1] * e_pos + _W[k][2] * e_neg + _B[k] for k in range(4)]
        c = _hs(z[1]) * c + _hs(z[0]) * torch.tanh(z[3])
        r = _hs(z[2]) * torch.tanh(c)
        pred = torch.clamp(_WA * r + _BA, 0.0, 1.0)  # ReLU then SatLU at pixel_max = 1
        return r, c, pred, F.relu(pred - target), F.relu(target - pred)

    zero = torch.zeros_like(x[0])
    r, c, pred0, e_pos, e_neg = step(zero, zero, zero, zero, frames[0, 0, 0])
    _, _, pred1, e_pos1, e_neg1 = step(r, c, e_pos, e_neg, frames[0, 1, 0])

    # t = 0 comes from the zero state: a bias-only, spatially constant image.
    assert torch.unique(pred0).numel() == 1
    torch.testing.assert_close(preds[0, 0, 0], pred0, rtol=0, atol=1e-6)
    torch.testing.assert_close(preds[0, 1, 0], pred1, rtol=0, atol=1e-6)
    assert (pred1 == 1.0).any() and ((pred1 > 0) & (pred1 < 1)).any()  # SatLU is exercised
    expected_errors = [(e_pos + e_neg).mean() / 2, (e_pos1 + e_neg1).mean() / 2]
    torch.testing.assert_close(errors[0, :, 0], torch.stack(expected_errors), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("channels_last", "r_filt_size"), [(True, 3), (False, 3), (True, 5)])
def test_multilayer_matches_reference(channels_last, r_filt_size):
    """The reference computes each gate by its own conv over concat[R, E, Up(R above)]."""
    torch.manual_seed(0)
    model = PredNet(
        (2, 3, 4), r_stack_sizes=(4, 5, 3), r_filt_size=r_filt_size, channels_last=channels_last
    )
    model = _randomize_biases(model.double(), seed=4)
    frames = _frames(2, 4, 2, 8, 12)
    preds, errors = model(frames)
    ref_preds, ref_errors = reference_prednet(model, frames)
    torch.testing.assert_close(preds, ref_preds, rtol=0, atol=1e-10)
    torch.testing.assert_close(errors, ref_errors, rtol=0, atol=1e-10)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (4, 4)])
def test_conv_of_upsampled_equals_conv_after_upsampling(h, w, channels_last):
    gen = torch.Generator().manual_seed(h * w)
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(5, 3, 3, 3, generator=gen, dtype=torch.float64)
    expected = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, padding=1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    folded = conv3x3_of_upsampled(x, fold_for_upsampled(weight))
    torch.testing.assert_close(folded, expected, rtol=0, atol=1e-12)
    if h > 1:  # a 1-pixel-high tensor is contiguous in both layouts
        memory = torch.channels_last if channels_last else torch.contiguous_format
        assert folded.is_contiguous(memory_format=memory)


@pytest.mark.parametrize("channels_last", [True, False])
def test_every_state_keeps_the_chosen_memory_layout(channels_last, monkeypatch):
    """A state in the other layout would make every later conv and concat convert it."""
    layouts = []
    update = ConvLSTMCell.update

    def recording(cell, gates, c_prev):
        h, (_, c) = update(cell, gates, c_prev)
        memory = torch.channels_last if channels_last else torch.contiguous_format
        layouts.append(
            h.is_contiguous(memory_format=memory) and c.is_contiguous(memory_format=memory)
        )
        return h, (h, c)

    monkeypatch.setattr(ConvLSTMCell, "update", recording)
    PredNet((3, 4, 8, 16), channels_last=channels_last)(torch.rand(2, 3, 3, 16, 16))
    assert len(layouts) == 12 and all(layouts)


# --- PredNet: alignment and extrapolation ----------------------------------------------------


def test_layer0_error_is_half_the_pixel_mae():
    model = _small_model()
    frames = _frames(2, 4, 3, 16, 16)
    preds, errors = model(frames)
    mae = (preds - frames).abs().mean(dim=(2, 3, 4))
    torch.testing.assert_close(errors[:, :, 0], 0.5 * mae)


def test_prediction_at_t_uses_only_frames_before_t():
    model = _small_model()
    frames = _frames(1, 5, 3, 16, 16)
    perturbed = frames.clone()
    perturbed[:, 2] = 1 - perturbed[:, 2]
    preds, _ = model(frames)
    preds_p, _ = model(perturbed)
    torch.testing.assert_close(preds[:, :3], preds_p[:, :3], rtol=0, atol=0)
    assert (preds[:, 3] - preds_p[:, 3]).abs().max() > 1e-4


def test_future_steps_feed_back_the_previous_prediction():
    model = _small_model()
    num_frames, future = 3, 7
    frames = _frames(2, num_frames, 3, 16, 16)
    preds, errors = model(frames, future_steps=future)
    assert preds.shape == (2, num_frames + future, 3, 16, 16)
    assert errors.shape == (2, num_frames + future, 3)

    # Feeding the predictions back by hand as frames T..T+6 must reproduce every output.
    fed_back = torch.cat([frames, preds[:, num_frames - 1 : -1]], dim=1)
    preds_ref, errors_ref = model(fed_back)
    torch.testing.assert_close(preds, preds_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(errors, errors_ref, rtol=0, atol=1e-12)
    # ...and the extrapolated steps are not frozen copies of one another.
    assert (preds[:, -1] - preds[:, -2]).abs().max() > 1e-6


def test_extrap_start_time_changes_only_later_outputs():
    model = _small_model()
    start = 3
    frames = _frames(1, 7, 3, 16, 16)
    preds, errors = model(frames)
    preds_x, errors_x = model(frames, extrap_start_time=start)
    assert preds_x.shape == preds.shape

    # Prediction `start` is made before the first substituted input is seen; its error is not.
    torch.testing.assert_close(preds_x[:, : start + 1], preds[:, : start + 1], rtol=0, atol=0)
    torch.testing.assert_close(errors_x[:, :start], errors[:, :start], rtol=0, atol=0)
    assert (errors_x[:, start] - errors[:, start]).abs().min() > 1e-6
    for t in range(start + 1, frames.shape[1]):
        assert (preds_x[:, t] - preds[:, t]).abs().max() > 1e-6, t

    # From `start` on the real frames are ignored.
    perturbed = frames.clone()
    perturbed[:, start:] = torch.rand_like(perturbed[:, start:])
    preds_p, errors_p = model(perturbed, extrap_start_time=start)
    torch.testing.assert_close(preds_p, preds_x, rtol=0, atol=0)
    torch.testing.assert_close(errors_p, errors_x, rtol=0, atol=0)


def test_rejects_bad_extrapolation_arguments():
    model = PredNet(SMALL_STACK)
    frames = torch.rand(1, 2, 3, 8, 8)
    with pytest.raises(ValueError, match="extrap_start_time"):
        model(frames, extrap_start_time=0)
    with pytest.raises(ValueError, match="future_steps"):
        model(frames, future_steps=-1)


def test_gradients_reach_every_parameter():
    model = _small_model()
    preds, errors = model(_frames(2, 3, 3, 16, 16))
    (errors[:, 1:].sum() + preds.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
