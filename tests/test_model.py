"""The DenseNet-CTC network: output-length arithmetic, CTC minimum widths, input checks and
padding invariance of a batch."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import make_tiny_model
from strings.alphabet import Alphabet
from strings.config import ModelConfig
from strings.train.ctc import ctc_loss
from strings.models import MODEL_CONFIGS, create_model, list_configs


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_model(seed=0)


def test_factory_and_sizes():
    m = create_model("test_tiny")
    assert m.num_classes == 11 and m.height == 16 and m.stride == 4
    assert sum(p.numel() for p in m.parameters()) < 10_000
    assert "densenet_ctc_small" in list_configs() and "test_tiny" in list_configs()
    with pytest.raises(KeyError, match="unknown model config"):
        create_model("nope")
    with pytest.raises(ValueError, match="height"):
        create_model(model_cfg=ModelConfig())
    assert create_model("test_tiny", alphabet="0123456789X").num_classes == 12


def test_config_validation():
    with pytest.raises(ValueError, match="pools"):
        ModelConfig(block_layers=(1, 1), pools=((2, 2), (2, 2), (2, 1)))
    with pytest.raises(ValueError, match="odd"):
        ModelConfig(context=2)


@pytest.mark.parametrize("name", ["test_tiny", "densenet_ctc_fast"])
def test_output_lengths_match_forward(name):
    """For every width, alone in its batch, T from the forward pass equals output_lengths."""
    cfg, pre = MODEL_CONFIGS[name]
    m = create_model(name).eval()
    widths = list(range(1, 42)) + [63, 64, 65, 127, 129, 255, 257] if name == "test_tiny" else [1, 5, 8, 13, 31, 33, 99]
    with torch.no_grad():
        for w in widths:
            out = m(torch.rand(1, 1, pre.height, w))
            assert out.shape == (1, int(m.output_lengths(torch.tensor([w]))[0]), m.num_classes), w
            assert out.shape[1] == math.ceil(w / m.stride), w
    lengths = m.output_lengths(torch.tensor(widths))
    assert lengths.tolist() == [math.ceil(w / m.stride) for w in widths]


def test_output_is_log_softmax(tiny):
    with torch.no_grad():
        out = tiny(torch.rand(3, 1, 16, 37))
    assert out.shape == (3, 10, 11)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(3, 10))


def test_batch_forward_length_is_the_widest(tiny):
    widths = torch.tensor([9, 40, 17])
    with torch.no_grad():
        out = tiny(torch.zeros(3, 1, 16, int(widths.max())))
    assert out.shape[1] == int(tiny.output_lengths(widths).max())


@pytest.mark.parametrize(
    "label, frames",
    [("", 1), ("7", 1), ("12", 2), ("11", 3), ("111", 5), ("1223", 5), ("1500", 5), ("0000", 7), ("90210", 5)],
)
def test_min_width_counts_repeats(tiny, label, frames):
    assert tiny.min_width(label) == frames * tiny.stride


@pytest.mark.parametrize("label", ["11", "1500", "7", "333", "1212"])
def test_min_width_is_exactly_feasible_for_ctc(tiny, label):
    """At min_width the CTC loss is finite; one stride narrower it is impossible (infinite)."""
    a = Alphabet()
    targets = torch.tensor(a.encode(label), dtype=torch.int32)
    lengths = torch.tensor([len(label)], dtype=torch.int32)

    def loss_at(width: int) -> float:
        with torch.no_grad():
            lp = tiny(torch.rand(1, 1, 16, width))
        return float(torch.nn.functional.ctc_loss(
            lp.transpose(0, 1), targets, torch.tensor([lp.shape[1]], dtype=torch.int32), lengths,
            blank=0, zero_infinity=False))

    w = tiny.min_width(label)
    assert math.isfinite(loss_at(w))
    if w > tiny.stride:
        assert math.isinf(loss_at(w - tiny.stride))


def test_ctc_loss_helper_finite_and_zero_infinity(tiny):
    lp = tiny(torch.rand(2, 1, 16, 24))  # T = 6
    targets = torch.tensor([2, 3, 4, 5, 6, 7, 8, 9, 10], dtype=torch.int32)
    ok, n_inf = ctc_loss(lp, targets[:3], torch.tensor([1, 2], dtype=torch.int32))
    assert torch.isfinite(ok) and ok > 0 and n_inf == 0
    ok.backward()
    impossible, n_inf = ctc_loss(lp.detach(), targets, torch.tensor([1, 8], dtype=torch.int32))  # 8 labels in 6 frames
    assert torch.isfinite(impossible)
    assert n_inf == 1  # counted, so the training log shows how often zero_infinity fired


def test_ctc_loss_kernel_choice(tiny):
    """The kernel names a CUDA choice only: on the CPU both give the same loss; a typo is an error."""
    lp = tiny(torch.rand(2, 1, 16, 24)).detach()
    targets, lengths = torch.tensor([2, 3, 4], dtype=torch.int32), torch.tensor([1, 2], dtype=torch.int32)
    assert torch.equal(ctc_loss(lp, targets, lengths, kernel="native")[0], ctc_loss(lp, targets, lengths, kernel="cudnn")[0])
    with pytest.raises(ValueError, match="unknown CTC kernel"):
        ctc_loss(lp, targets, lengths, kernel="cuDNN")


@pytest.mark.parametrize("shape", [(1, 1, 32, 40), (1, 1, 15, 40), (1, 3, 16, 40), (1, 16, 40), (16, 40)])
def test_wrong_input_shape_raises(tiny, shape):
    with pytest.raises(ValueError, match=r"\(B, 1, 16, W\)"):
        tiny(torch.zeros(shape))


def test_padded_batch_matches_single_images(tiny):
    """In eval mode, with the widths passed, every valid frame of a right-padded batch equals
    the image run alone: the column masks keep the padding out (3x3 convs, ceil-mode pools and
    the 1-D context conv would otherwise carry it into the last frames)."""
    assert not tiny.training
    torch.manual_seed(1)
    # very different widths in one batch (multiples of the stride, as collate_images pads them)
    widths = [tiny.stride * k for k in (2, 6, 16, 38, 75)]
    images = [torch.rand(1, 16, w) for w in widths]
    batch = torch.zeros(len(widths), 1, 16, max(widths))
    for i, im in enumerate(images):
        batch[i, :, :, : im.shape[-1]] = im
    w = torch.tensor(widths)
    with torch.no_grad():
        out = tiny.logits(batch, w)  # (B, T, C)
        lengths = tiny.output_lengths(w)
        for i, im in enumerate(images):
            single = tiny.logits(im[None], w[i : i + 1])[0]
            assert single.shape[0] == int(lengths[i])
            torch.testing.assert_close(out[i, : int(lengths[i])], single, atol=1e-5, rtol=1e-5)
        # without the widths the padding does reach the narrow images' last frames: the mask matters
        unmasked = tiny.logits(batch, torch.full_like(w, max(widths)))
        assert not torch.allclose(unmasked[0, : int(lengths[0])], tiny.logits(images[0][None], w[:1])[0], atol=1e-5)


def test_train_mode_differs_from_eval(tiny):
    """Guard for the test above: eval mode really uses running statistics."""
    m = make_tiny_model(seed=0)
    x = torch.rand(2, 1, 16, 40)
    with torch.no_grad():
        ev = m.eval()(x)
        tr = m.train()(x)
    assert not torch.allclose(ev, tr)
