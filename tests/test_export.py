"""Inference fast paths: batch-norm folding, the PyTorch and ONNX Runtime backends, ONNX export
and the ``strings export`` / ``--backend`` CLI. Parity is checked on images of different widths
in different batch compositions: the same strings, logits within float tolerance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import strings
from conftest import make_tiny_model, render_digits, write_png
from strings.read.backends import BACKENDS, Backend, OnnxBackend, TorchBackend, in_lane, in_lanes, make_backend
from strings.cli import main
from strings.config import PreprocessConfig
from strings.read.export import ONNX_META_KEY, export_onnx, fold_conv_bn, fold_for_inference
from strings.read.backends import onnx_parity
from strings.models import MODEL_CONFIGS
from strings.image import collate_images, normalize

PRE: PreprocessConfig = MODEL_CONFIGS["test_tiny"][1]
TEXTS = ("7", "42", "1500", "90210", "3", "118", "5067")
ATOL = 1e-4  # float32 logits of O(10): rounding differences of folded weights stay far below


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(seed=3)


def padded_batch(model, widths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images right-padded with background, as collate_images makes them."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(len(widths), 1, model.height, max(widths), generator=gen)
    for i, w in enumerate(widths):
        images[i, :, :, w:] = 0.0
    return images, torch.tensor(widths, dtype=torch.long)


def test_fold_conv_bn_matches_conv_then_bn():
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(5, 7, 3, padding=1, bias=False), torch.nn.BatchNorm2d(7)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 5, 6, 9)
    torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("skip_full_masks", [True, False])
def test_folded_network_matches_model(model, skip_full_masks):
    folded = fold_for_inference(model, skip_full_masks=skip_full_masks)
    s = model.stride
    with torch.inference_mode():
        for widths in ([9 * s], [3 * s, 11 * s, 5 * s], [s, s], [40 * s, 2 * s]):
            images, w = padded_batch(model, widths)
            torch.testing.assert_close(folded(images, w), model.logits(images, w), atol=ATOL, rtol=1e-4)


def test_folding_needs_no_parameters_and_keeps_the_mode(model):
    model.train()
    try:
        folded = fold_for_inference(model)
        assert model.training  # the caller's model is left as it was
    finally:
        model.eval()
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    # The transition pools now run before their 1x1 conv: fewer FLOPs than the trained layout.
    from torch.utils.flop_counter import FlopCounterMode

    images, w = padded_batch(model, [32 * model.stride])
    counts = []
    for net in (model.logits, folded):
        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            net(images, w)
        counts.append(fc.get_total_flops())
    assert counts[1] < counts[0]


@pytest.mark.parametrize("fold,channels_last", [(False, False), (True, False), (True, True)])
def test_torch_backend_variants_agree(model, fold, channels_last):
    backend = TorchBackend(model, fold=fold, channels_last=channels_last)
    images, w = padded_batch(model, [7 * model.stride, 4 * model.stride, 12 * model.stride])
    with torch.inference_mode():
        ref = model.logits(images, w)
    out = backend.logits(images, w)
    assert out.is_contiguous() and out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-4)


def test_torch_bf16_backend_is_close(model):
    """bfloat16 body, float32 head: float32 logits, close to the float32 network's."""
    backend = TorchBackend(model, bf16=True)
    assert backend.name == "torch-bf16" and backend.net.head.weight.dtype == torch.float32
    images, w = padded_batch(model, [7 * model.stride, 4 * model.stride, 12 * model.stride])
    with torch.inference_mode():
        ref = model.logits(images, w)
    out = backend.logits(images, w)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    scale = float(ref.abs().max())
    assert float((out - ref).abs().max()) < 0.05 * scale
    assert float((out.argmax(-1) == ref.argmax(-1)).float().mean()) > 0.9
    with pytest.raises(ValueError, match="fold"):
        TorchBackend(model, fold=False, bf16=True)


def test_export_is_self_describing_and_matches(model, tmp_path, ort):
    import onnx

    path = tmp_path / "tiny.onnx"
    data = export_onnx(model, PRE, path, {"name": "tiny", "path": "/not/exported"})
    assert path.read_bytes() == data
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["images", "widths"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[ONNX_META_KEY])
    assert meta["name"] == "tiny" and "path" not in meta
    assert meta["alphabet"] == model.cfg.alphabet and meta["height"] == model.height
    assert meta["preprocess"]["height"] == PRE.height and meta["onnx"]["stride"] == model.stride
    assert onnx_parity(model, data) < ATOL


def test_onnx_dynamic_batch_and_width(model, ort):
    backend = OnnxBackend(export_onnx(model, PRE), threads=1)
    s = model.stride
    for widths in ([s], [50 * s] * 7, [2 * s, 30 * s, 9 * s, 9 * s, 1 * s]):
        images, w = padded_batch(model, widths, seed=len(widths))
        with torch.inference_mode():
            ref = model.logits(images, w)
        out = backend.logits(images, w)
        assert out.shape == (len(widths), max(widths) // s, model.num_classes)
        torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-4)


def test_onnx_row_split_matches_one_call(model, ort):
    """With 2 threads a batch is cut into row blocks read at once; same logits."""
    graph = export_onnx(model, PRE)
    one, split = OnnxBackend(graph, threads=1), OnnxBackend(graph, threads=2, split_batches=True)
    assert split.split_batches and not one.split_batches and not OnnxBackend(graph, threads=2).split_batches
    widths = [int(v) * model.stride for v in np.random.default_rng(0).integers(1, 30, size=37)]
    images, w = padded_batch(model, sorted(widths))
    torch.testing.assert_close(split.logits(images, w), one.logits(images, w), atol=ATOL, rtol=1e-4)
    for n in (1, 2, 3, 5):  # one row runs whole; from 2 * MIN_SPLIT_ROWS rows on it is split
        small = padded_batch(model, widths[:n])
        torch.testing.assert_close(split.logits(*small), one.logits(*small), atol=ATOL, rtol=1e-4)


def test_onnx_backend_refuses_a_foreign_graph(tmp_path, ort):
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match="not a strings ONNX graph"):
        OnnxBackend(tmp_path / "other.onnx")


def test_make_backend_choices(model, ort):
    assert BACKENDS == ("torch", "torch-bf16", "onnx")
    assert isinstance(make_backend("torch", model, PRE), TorchBackend)
    assert make_backend("torch-bf16", model, PRE).bf16
    onnx_backend = make_backend("onnx", model, PRE, threads=1)
    assert isinstance(onnx_backend, OnnxBackend) and isinstance(onnx_backend, Backend)
    assert make_backend(onnx_backend, model, PRE) is onnx_backend  # a ready backend passes through
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tensorrt", model, PRE)
    with pytest.raises(ValueError, match="CPU only"):
        make_backend("onnx", model, PRE, device="cuda")
    with pytest.raises(TypeError):
        make_backend(object(), model, PRE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        OnnxBackend(export_onnx(model, PRE), threads=0)


@pytest.fixture(scope="module")
def recognizers(trained_checkpoint, ort):
    return strings.load(trained_checkpoint), strings.load(trained_checkpoint, backend="onnx", threads=1)


def test_backends_read_the_same(recognizers):
    """Same strings and confidences on images of different widths, alone and in batches of
    different compositions (sorted by width inside recognize_greys, or not)."""
    rec_torch, rec_onnx = recognizers
    greys = [render_digits(t) for t in TEXTS]
    assert isinstance(rec_onnx.backend, OnnxBackend) and isinstance(rec_torch.backend, TorchBackend)
    ref = rec_torch.recognize_greys(greys)
    assert sum(r.text == t for r, t in zip(ref, TEXTS)) >= len(TEXTS) // 2  # the test means something
    for batch_size in (1, 3, 64):
        for order in (list(range(len(greys))), list(reversed(range(len(greys))))):
            got = rec_onnx.recognize_greys([greys[i] for i in order], batch_size=batch_size)
            for i, r in zip(order, got):
                assert r.text == ref[i].text
                assert r.confidence == pytest.approx(ref[i].confidence, rel=1e-4, abs=1e-6)
                assert [d.box for d in r.digits] == [d.box for d in ref[i].digits]


def test_in_lanes_keeps_order_and_runs_on_lanes():
    """Results in the order of the items; the work runs on lane threads (where an ONNX backend
    goes single-threaded), in the caller with one lane or one item, and never nests."""
    on_lane = in_lanes(lambda x: (x * x, in_lane()), list(range(20)), lanes=2)
    assert [v for v, _ in on_lane] == [x * x for x in range(20)] and all(flag for _, flag in on_lane)
    assert in_lanes(lambda x: in_lane(), [1, 2, 3], lanes=1) == [False] * 3
    assert in_lanes(lambda x: in_lane(), [1], lanes=2) == [False]
    # a lane that asks for lanes again reads its items itself (a bounded pool would deadlock)
    nested = in_lanes(lambda x: in_lanes(lambda y: (y, in_lane()), [x, x + 1, x + 2], lanes=2), [0, 10, 20], lanes=2)
    assert nested == [[(x + k, True) for k in range(3)] for x in (0, 10, 20)]
    with pytest.raises(ZeroDivisionError):
        in_lanes(lambda x: 1 // x, [1, 0, 2], lanes=2)


def test_width_batches_on_lanes_read_as_one_after_another(trained_checkpoint, ort):
    """Width batches read two at once on single-threaded runs give the readings they give one
    after another on two threads: texts, confidences and digit boxes."""
    from strings.read import recognizer

    base = strings.load(trained_checkpoint)
    graph = export_onnx(base.model, base.preprocess, None, base.metadata)
    lanes = recognizer.Recognizer(base.model, base.preprocess, base.metadata, backend=OnnxBackend(graph, threads=2))
    serial = recognizer.Recognizer(base.model, base.preprocess, base.metadata,
                                   backend=OnnxBackend(graph, threads=2, lanes=1))
    assert (lanes.lanes, serial.lanes) == (2, 1)
    assert base.lanes == 1  # PyTorch's threads are process-wide
    greys = [render_digits(t) for t in TEXTS * 3]
    for batch_size in (1, 2, 64):
        got, ref = lanes.recognize_greys(greys, batch_size=batch_size), serial.recognize_greys(greys, batch_size=batch_size)
        for r, q in zip(got, ref):
            assert r.text == q.text and [d.box for d in r.digits] == [d.box for d in q.digits]
            assert r.confidence == pytest.approx(q.confidence, rel=1e-4, abs=1e-6)
    assert lanes.backend._single is not None and serial.backend._single is None  # the lanes did run
    with pytest.raises(ValueError, match="lanes"):
        OnnxBackend(graph, lanes=0)
    beam = recognizer.Recognizer(base.model, base.preprocess, base.metadata, backend=OnnxBackend(graph, threads=2),
                                 beam_size=4)
    assert beam.lanes == 1  # the beam decoder keeps its search in the object: not shared by lanes


def test_item_logits_in_width_batches_are_each_images_own(recognizers):
    """``item_logits`` groups images of similar width; each image's logits are those it has alone."""
    for rec in recognizers:
        greys = [render_digits(t) for t in reversed(TEXTS)]
        together = rec.item_logits(greys, batch_size=3)
        for g, lg in zip(greys, together):
            torch.testing.assert_close(lg, rec.item_logits([g])[0], atol=ATOL, rtol=1e-4)


def test_backends_log_probs_agree(recognizers):
    rec_torch, rec_onnx = recognizers
    normed = [normalize(render_digits(t), rec_torch.preprocess) for t in TEXTS]
    for group in (normed[:1], normed[2:5], normed):
        images, widths = collate_images(group, rec_torch.model.stride)
        with torch.inference_mode():
            ref = rec_torch.model.logits(images, widths).double().log_softmax(-1)
        for rec in recognizers:
            lp = rec.backend.logits(images, widths).double().log_softmax(-1)
            torch.testing.assert_close(lp, ref, atol=ATOL, rtol=1e-4)


def test_cli_export_and_onnx_backend(trained_checkpoint, tmp_path, capsys, ort):
    out = tmp_path / "model.onnx"
    assert main(["export", "--onnx", str(out), "--model", str(trained_checkpoint)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["onnx"] == str(out) and out.stat().st_size == res["bytes"] and res["max_logit_difference"] < 1e-3
    imgs = [write_png(tmp_path / f"{t}.png", render_digits(t)) for t in TEXTS[:3]]
    rows = {}
    for backend in ("torch", "onnx"):
        assert main(["recognize", *map(str, imgs), "--json", "--model", str(trained_checkpoint),
                     "--backend", backend, "--threads", "1"]) == 0
        rows[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["text"] for r in rows["torch"]] == [r["text"] for r in rows["onnx"]]
    with pytest.raises(SystemExit):
        main(["recognize", str(imgs[0]), "--backend", "tensorrt"])


def test_cli_threads_must_be_positive(trained_checkpoint, tmp_path, capsys):
    img = write_png(tmp_path / "x.png", render_digits("42"))
    assert main(["recognize", str(img), "--model", str(trained_checkpoint), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_width_batches_bound_padding():
    from strings.read.batching import width_batches

    rng = np.random.default_rng(0)
    widths = [int(w) for w in rng.integers(10, 400, size=300)]
    batches = width_batches(widths, batch_size=32, stride=4, max_padding=0.1)
    assert sorted(i for b in batches for i in b) == list(range(len(widths)))
    rounded = [-(-w // 4) * 4 for w in widths]
    last = 0
    for b in batches:
        ws = [rounded[i] for i in b]
        assert 1 <= len(b) <= 32 and ws == sorted(ws) and ws[0] >= last  # narrowest first
        last = ws[-1]
        if len(b) > 1:
            assert len(b) * max(ws) <= 1.1 * sum(ws) + 1e-9
    assert width_batches([], 8) == []
    assert width_batches([5, 5, 5], batch_size=2) == [[0, 1], [2]]
    with pytest.raises(ValueError):
        width_batches([5], batch_size=0)
