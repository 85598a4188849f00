"""Inference form of a trained network, and its ONNX export.

``fold_for_inference`` turns a ``DenseNetCTC`` into ``FoldedDenseNetCTC``: the same function
(within float rounding) at fewer operations and FLOPs.

- A batch norm that *follows* a convolution is folded into that convolution's weights and
  bias: the stem's, each bottleneck 1x1 conv's second BN, and the sequence Conv1d's BN.
- A batch norm that *precedes* a ReLU and a convolution (the DenseNet's pre-activation
  BN-ReLU-Conv order: the first BN of every dense layer and transition, and the final BN)
  cannot be folded: the ReLU sits between it and the convolution, and the channels it
  normalises are read, each with its own affine, by every later layer of the block. It stays
  as one ``BatchNorm`` op.
- A transition's 1x1 conv and its average pooling are both linear and commute, so the pooling
  runs first: the conv then sees 4x (or 2x) fewer positions.
- Dropout is dropped.

``export_onnx`` writes the folded network as an ONNX graph with two inputs, ``images``
(B, 1, H, W) float32 and ``widths`` (B,) int64 (the valid width of each right-padded image, as
``collate_images`` gives it, so the column masks behave as in PyTorch), and one output,
``logits`` (B, T, C). Batch and width are dynamic. Decoding stays outside the graph. The
model's metadata (configs, alphabet, preprocessing, provenance) travels in the ONNX
``metadata_props`` under the key ``strings``, so any runtime knows how to feed the graph.

Example:
    >>> from strings.models import create_model
    >>> from strings.read.export import fold_for_inference
    >>> fast = fold_for_inference(create_model("test_tiny").eval())
    >>> fast.stride
    4
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from strings.config import PreprocessConfig, to_dict
from strings.models import DenseNetCTC
from strings.models.densenet_ctc import DenseLayer, Transition

__all__ = ["FoldedDenseNetCTC", "ONNX_META_KEY", "export_onnx", "fold_conv_bn", "fold_for_inference", "onnx_metadata"]

ONNX_META_KEY = "strings"
ONNX_OPSET = 17


def fold_conv_bn(conv: nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """A copy of ``conv`` with bias whose output equals ``bn(conv(x))`` in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a batch norm without running statistics")
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    shift = bn.bias.detach() - bn.running_mean * scale
    folded = copy.deepcopy(conv)
    w = conv.weight.detach()
    folded.weight = nn.Parameter(w * scale.reshape(-1, *([1] * (w.dim() - 1))), requires_grad=False)
    bias = conv.bias.detach() * scale if conv.bias is not None else torch.zeros_like(scale)
    folded.bias = nn.Parameter(bias + shift, requires_grad=False)
    return folded


class _FoldedDenseLayer(nn.Module):
    """BN-ReLU (kept) -> Conv1x1 with the second BN folded in -> ReLU -> mask -> Conv3x3."""

    def __init__(self, layer: DenseLayer) -> None:
        super().__init__()
        bn1, _, conv1, bn2, _ = layer.bottleneck
        self.norm = copy.deepcopy(bn1)
        self.conv1 = fold_conv_bn(conv1, bn2)
        self.conv2 = copy.deepcopy(layer.conv)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        y = F.relu(self.conv1(F.relu(self.norm(x))))  # (B, mid, H, W)
        if mask is not None:
            y = y * mask
        return torch.cat([x, self.conv2(y)], dim=1)  # (B, C + growth, H, W)


class _FoldedTransition(nn.Module):
    """BN-ReLU -> average pool -> Conv1x1: the pool moved before the (linear, bias-free) conv."""

    def __init__(self, layer: Transition) -> None:
        super().__init__()
        bn, _, conv = layer.body
        self.norm = copy.deepcopy(bn)
        self.conv = copy.deepcopy(conv)
        self.pool = layer.pool

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.avg_pool2d(F.relu(self.norm(x)), self.pool, ceil_mode=True))


class FoldedDenseNetCTC(nn.Module):
    """Inference-only twin of a ``DenseNetCTC`` (see the module docstring): ``forward(images,
    widths)`` gives the same (B, T, C) logits as ``DenseNetCTC.logits`` within float rounding.

    ``skip_full_masks``: in eager PyTorch, skip the column masks when no image of the batch is
    padded (a single image, or a batch of equal widths); the masks are all ones then. Off for
    export, where the graph must not depend on the data.
    """

    def __init__(self, model: DenseNetCTC, skip_full_masks: bool = True) -> None:
        super().__init__()
        if model.training:
            raise ValueError("fold a model in eval mode (batch norms must use their running statistics)")
        self.cfg = model.cfg
        self.height = model.height
        self.stride = model.stride
        self.num_classes = model.num_classes
        self.feature_height = model.feature_height
        self.skip_full_masks = skip_full_masks
        conv, bn, _ = model.stem
        self.stem = fold_conv_bn(conv, bn)
        self.stem_pool = model.stem_pool.kernel_size
        self.features = nn.ModuleList(
            _FoldedDenseLayer(m) if isinstance(m, DenseLayer) else _FoldedTransition(m) for m in model.features
        )
        self.final = copy.deepcopy(model.final[0])
        self.sequence = fold_conv_bn(model.sequence[0], model.sequence[1])
        self.head = copy.deepcopy(model.head)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _column_mask(widths: Tensor, scale: int, like: Tensor) -> Tensor:
        """(B, 1, 1, W') with 1 on each image's valid columns at 1/scale resolution."""
        cols = torch.arange(like.shape[-1], device=like.device)
        valid = torch.div(widths + (scale - 1), scale, rounding_mode="floor")
        return (cols[None, :] < valid[:, None]).to(like.dtype)[:, None, None, :]

    def forward(self, images: Tensor, widths: Tensor) -> Tensor:
        """images (B, 1, H, W) float32, widths (B,) int64 -> logits (B, T, num_classes)."""
        use_mask = True
        if self.skip_full_masks and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            use_mask = bool((widths < images.shape[-1]).any())
        images = images.to(self.stem.weight.dtype)  # bfloat16 when the body was cast (TorchBackend)
        f = F.max_pool2d(F.relu(self.stem(images)), self.stem_pool, ceil_mode=True)  # (B, C0, H/2, W/2)
        scale = self.cfg.pools[0][1]
        mask = self._column_mask(widths, scale, f) if use_mask else None
        for layer in self.features:
            if isinstance(layer, _FoldedDenseLayer):
                f = layer(f, mask)
            else:
                f = layer(f)
                scale *= layer.pool[1]
                mask = self._column_mask(widths, scale, f) if use_mask else None
        f = F.relu(self.final(f))  # (B, C, H', T)
        b, c, h, t = f.shape
        seq = f.reshape(b, c * h, t)  # (B, C*H', T): feature-dimension transposition
        if mask is not None:
            seq = seq * mask[:, :, 0]
        hidden = F.relu(self.sequence(seq))  # (B, hidden, T)
        logits = self.head(hidden.to(self.head.weight.dtype))  # (B, num_classes, T)
        return logits.transpose(1, 2)  # (B, T, num_classes)

    def logits(self, images: Tensor, widths: Tensor) -> Tensor:
        """Same signature as ``DenseNetCTC.logits``."""
        return self(images, widths)


def fold_for_inference(model: DenseNetCTC, skip_full_masks: bool = True) -> FoldedDenseNetCTC:
    """The folded inference twin of ``model`` (left untouched); see the module docstring."""
    was_training = model.training
    model.eval()
    try:
        return FoldedDenseNetCTC(model, skip_full_masks=skip_full_masks)
    finally:
        model.train(was_training)


def onnx_metadata(model: DenseNetCTC, preprocess: PreprocessConfig, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """What an exported graph carries about itself (JSON-serialisable)."""
    meta = {k: v for k, v in (metadata or {}).items() if k not in ("path",)}
    return {
        **meta,
        "model": to_dict(model.cfg),
        "height": model.height,
        "preprocess": to_dict(preprocess),
        "alphabet": model.cfg.alphabet,
        "onnx": {
            "inputs": {"images": "(B, 1, H, W) float32, ink bright in [0, 1], right-padded with 0",
                       "widths": "(B,) int64 valid width of each image, a multiple of stride"},
            "outputs": {"logits": "(B, T, C) float32, T = ceil(W / stride), class 0 = CTC blank"},
            "stride": model.stride,
            "blank": 0,
            "opset": ONNX_OPSET,
        },
    }


def export_onnx(
    model: DenseNetCTC,
    preprocess: PreprocessConfig,
    path: str | os.PathLike | None = None,
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """Export the folded network to ONNX; write it to ``path`` if given. Returns the bytes.

    Uses the TorchScript-based exporter (``dynamo=False``): the network is a plain stack of
    convolutions, which it handles without extra dependencies.
    """
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'strings[onnx]'") from None

    folded = fold_for_inference(model, skip_full_masks=False).cpu()  # a copy: the caller's model stays put
    width = 8 * model.stride
    images = torch.zeros(2, 1, model.height, width)
    widths = torch.tensor([width, width - model.stride], dtype=torch.long)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(folded, images, widths, buf)
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key = ONNX_META_KEY
    entry.value = json.dumps(onnx_metadata(model, preprocess, metadata), sort_keys=True)
    proto.producer_name = "strings"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if path is not None:
        from strings.models.checkpoint import atomic_write

        atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))
    return data


def _export(folded: FoldedDenseNetCTC, images: Tensor, widths: Tensor, buf: io.BytesIO) -> None:
    torch.onnx.export(
        folded,
        (images, widths),
        buf,
        input_names=["images", "widths"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch", 3: "width"}, "widths": {0: "batch"}, "logits": {0: "batch", 1: "frames"}},
        opset_version=ONNX_OPSET,
        do_constant_folding=True,
        dynamo=False,
    )
