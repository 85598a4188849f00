"""DenseNet feature extractor + feature-dimension transposition + CTC head (Zhan et al. 2018).

The network is fully convolutional: any input width works, and the number of output frames
follows from the width alone (``output_lengths``), so batches of padded images decode exactly.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from strings.config import ModelConfig

__all__ = ["DenseNetCTC"]


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 bottleneck then BN-ReLU-Conv3x3, adding ``growth`` new channels.

    ``mask`` (B, 1, 1, W) zeroes the right padding of narrower images before the 3x3 conv, the
    only place where columns mix, so an image reads the same alone or in any batch.
    """

    def __init__(self, in_ch: int, growth: int, bottleneck: int) -> None:
        super().__init__()
        mid = bottleneck * growth
        self.bottleneck = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
        self.conv = nn.Conv2d(mid, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        y = self.bottleneck(x)  # (B, mid, H, W)
        if mask is not None:
            y = y * mask
        return torch.cat([x, self.conv(y)], dim=1)  # (B, C + growth, H, W)


class Transition(nn.Module):
    """BN-ReLU-Conv1x1 channel compression followed by average pooling."""

    def __init__(self, in_ch: int, out_ch: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, out_ch, 1, bias=False)
        )
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.body(x), self.pool, ceil_mode=True)


class DenseNetCTC(nn.Module):
    """Image (B, 1, H, W) -> per-frame class log-probabilities (B, T, C).

    ``H`` must equal the height the model was built for; ``T = ceil(W / stride)``. Pass the
    valid ``widths`` of a right-padded batch (multiples of ``stride``, see ``collate_images``)
    and each image's frames are exactly those it gets alone.
    """

    def __init__(self, cfg: ModelConfig, height: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.height = height
        self.num_classes = len(cfg.alphabet) + 1
        self.stride = math.prod(p[1] for p in cfg.pools)
        self.stem = nn.Sequential(
            nn.Conv2d(1, cfg.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(cfg.stem_channels),
            nn.ReLU(inplace=True),
        )
        self.stem_pool = nn.MaxPool2d(cfg.pools[0], ceil_mode=True)
        stages: list[nn.Module] = []
        ch = cfg.stem_channels
        h = math.ceil(height / cfg.pools[0][0])
        for i, n_layers in enumerate(cfg.block_layers):
            for _ in range(n_layers):
                stages.append(DenseLayer(ch, cfg.growth_rate, cfg.bottleneck_factor))
                ch += cfg.growth_rate
            if i + 1 < len(cfg.block_layers):
                out = int(ch * cfg.compression)
                stages.append(Transition(ch, out, cfg.pools[i + 1]))
                ch = out
                h = math.ceil(h / cfg.pools[i + 1][0])
        self.features = nn.ModuleList(stages)
        self.final = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(inplace=True))
        self.feature_height = h
        # Transposition: fold the remaining height into channels so each column is one frame.
        self.sequence = nn.Sequential(
            nn.Conv1d(ch * h, cfg.hidden, cfg.context, padding=cfg.context // 2, bias=False),
            nn.BatchNorm1d(cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
        )
        self.head = nn.Conv1d(cfg.hidden, self.num_classes, 1)

    def load_grown(self, other: DenseNetCTC) -> bool:
        """Take ``other``'s weights when this network is ``other`` with symbols appended to its
        alphabet (a digits model growing the amount marks): everything is copied, the head's
        rows of the old classes too; the new rows keep their initial weights and start with the
        lowest old bias, so the new symbols begin improbable. False (nothing copied) otherwise."""
        old, new = other.cfg.alphabet, self.cfg.alphabet
        if not (new.startswith(old) and len(new) > len(old)) or other.height != self.height:
            return False
        if dataclasses.replace(other.cfg, alphabet=new) != self.cfg:
            return False
        state = self.state_dict()
        for k, v in other.state_dict().items():
            if k.startswith("head."):
                state[k][: v.shape[0]] = v  # (C_old, ...) rows of the (C_new, ...) head
            else:
                state[k] = v
        state["head.bias"][other.num_classes :] = other.head.bias.detach().min()
        self.load_state_dict(state)
        return True

    def output_lengths(self, widths: Tensor) -> Tensor:
        """Frames produced for images of these widths (the pools use ceil mode)."""
        out = widths.clone()
        for _, pw in self.cfg.pools:
            out = torch.div(out + pw - 1, pw, rounding_mode="floor")
        return out

    def min_width(self, label: str) -> int:
        """Narrowest input whose frames can carry ``label``: CTC needs one frame per symbol
        plus one blank between each pair of equal neighbours."""
        repeats = sum(a == b for a, b in zip(label, label[1:]))
        return max(1, len(label) + repeats) * self.stride

    @staticmethod
    def _column_mask(widths: Tensor | None, scale: int, width: int, like: Tensor) -> Tensor | None:
        """(B, 1, 1, width) with 1 on each image's valid columns at 1/scale resolution."""
        if widths is None:
            return None
        cols = torch.arange(width, device=like.device)
        valid = torch.div(widths.to(like.device) + scale - 1, scale, rounding_mode="floor")
        return (cols[None, :] < valid[:, None]).to(like.dtype)[:, None, None, :]

    def forward(self, x: Tensor, widths: Tensor | None = None) -> Tensor:
        return self.logits(x, widths).log_softmax(-1)  # (B, T, num_classes)

    def logits(self, x: Tensor, widths: Tensor | None = None) -> Tensor:
        """Unnormalised scores (B, T, num_classes). Inference normalises them in float64: in
        float32 a confident frame's log-probability rounds to exactly 0 and every confident
        reading would tie at confidence 1.0."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.height:
            raise ValueError(f"expected input (B, 1, {self.height}, W), got {tuple(x.shape)}")
        f = self.stem_pool(self.stem(x))  # (B, C0, H/ph, W/pw)
        scale = self.cfg.pools[0][1]
        mask = self._column_mask(widths, scale, f.shape[-1], f)
        for layer in self.features:
            if isinstance(layer, DenseLayer):
                f = layer(f, mask)
            else:  # a transition changes the resolution
                f = layer(f)
                scale *= layer.pool[1]
                mask = self._column_mask(widths, scale, f.shape[-1], f)
        f = self.final(f)  # (B, C, H', T)
        b, c, h, t = f.shape
        seq = f.reshape(b, c * h, t)  # (B, C*H', T): feature-dimension transposition
        hidden = self.sequence[0](seq if mask is None else seq * mask[:, :, 0])  # context conv mixes frames
        logits = self.head(self.sequence[1:](hidden))  # (B, num_classes, T)
        return logits.transpose(1, 2)  # (B, T, num_classes)
