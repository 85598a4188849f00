"""A DenseNet classifier for single digits (the digit mode of the engine).

Same building blocks as the string model (``DenseLayer``, ``Transition``), arranged for a
small square canvas: plain 3x3 convolutions at full resolution, a 2x2 max-pool, dense blocks
joined by transitions that halve the resolution, then global average pooling. The pooled
vector is exposed by ``features`` so that another head (an SVM) can be fitted on it.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from strings.config import DigitNetConfig
from strings.models.densenet_ctc import DenseLayer, Transition

__all__ = ["DigitNet"]


class DigitNet(nn.Module):
    """Image (B, 1, S, S) -> class logits (B, K), with K = ``len(cfg.symbols)``.

    ``S`` must equal the canvas size the model was built for (``height``, named as in the
    string model so that generic code can compare both kinds of network).
    """

    def __init__(self, cfg: DigitNetConfig, size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.height = size
        self.num_classes = len(cfg.symbols)
        stem: list[nn.Module] = []
        ch = 1
        for width in cfg.stem_channels:
            stem += [nn.Conv2d(ch, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            ch = width
        stem.append(nn.MaxPool2d(2, ceil_mode=True))
        self.stem = nn.Sequential(*stem)
        side = math.ceil(size / 2)
        blocks: list[nn.Module] = []
        for i, n_layers in enumerate(cfg.block_layers):
            for _ in range(n_layers):
                blocks.append(DenseLayer(ch, cfg.growth_rate, cfg.bottleneck_factor))
                ch += cfg.growth_rate
            if i + 1 < len(cfg.block_layers):
                out = int(ch * cfg.compression)
                blocks.append(Transition(ch, out, (2, 2)))
                ch = out
                side = math.ceil(side / 2)
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(inplace=True))
        self.feature_dim = ch
        self.final_side = side
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(ch, self.num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The pooled feature vector (B, D), D = ``feature_dim``: the input of every head."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.height or x.shape[3] != self.height:
            raise ValueError(f"expected input (B, 1, {self.height}, {self.height}), got {tuple(x.shape)}")
        f = self.stem(x)  # (B, C0, S/2, S/2)
        f = self.final(self.blocks(f))  # (B, D, S', S')
        return F.adaptive_avg_pool2d(f, 1).flatten(1)  # (B, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))  # (B, K) logits
