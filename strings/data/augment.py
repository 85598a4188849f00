"""Training-time augmentation (albumentations): dark-on-light string images, ink-bright digit canvases."""

from __future__ import annotations

import os
from typing import Any

# albumentations asks PyPI for a newer version on import (up to 2 s, then a warning on every
# DataLoader worker); bank and GPU machines are often offline. The user's own setting wins.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402
import cv2

__all__ = ["describe", "digit_augmenter", "string_augmenter"]


def string_augmenter(seed: int | None = None) -> A.Compose:
    """Distortions real cheque crops show: slant, small rotation and scale, stroke width,
    blur, noise, JPEG artefacts, contrast. Geometry pads by repeating the border (paper)."""
    return A.Compose(
        [
            A.Affine(
                scale=(0.85, 1.1),
                rotate=(-3, 3),
                shear={"x": (-15, 15), "y": (-2, 2)},
                translate_percent={"x": (-0.03, 0.03), "y": (-0.06, 0.06)},
                fit_output=True,
                border_mode=cv2.BORDER_REPLICATE,
                p=0.7,
            ),
            A.OneOf(
                [
                    A.Morphological(scale=(2, 3), operation="erosion"),  # thicker dark strokes
                    A.Morphological(scale=(2, 2), operation="dilation"),  # thinner strokes
                ],
                p=0.25,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.3, p=0.5),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=3)], p=0.2),
            A.GaussNoise(std_range=(0.02, 0.08), p=0.2),
            A.ImageCompression(quality_range=(40, 95), p=0.3),
        ],
        seed=seed,
    )


def digit_augmenter(size: int, seed: int | None = None) -> A.Compose:
    """For ink-bright single digits on a ``size`` x ``size`` canvas: the writer variation that
    MNIST-style training relies on (affine jitter and Simard's elastic distortion, with its
    alpha 34 / sigma 4 at 28 px scaled to the canvas) plus stroke-width changes. The background
    is 0, so geometry pads with 0."""
    unit = size / 28.0
    return A.Compose(
        [
            A.Affine(
                scale=(0.85, 1.12),
                rotate=(-12, 12),
                shear={"x": (-12, 12), "y": (-6, 6)},
                translate_percent=(-0.08, 0.08),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=0.9,
            ),
            A.ElasticTransform(alpha=34.0 * unit, sigma=4.0 * unit, border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.35),
            A.OneOf(
                [
                    A.Morphological(scale=(2, 2), operation="dilation"),  # bright ink: thicker strokes
                    A.Morphological(scale=(2, 2), operation="erosion"),  # thinner strokes
                ],
                p=0.15,
            ),
        ],
        seed=seed,
    )


def describe(pipeline: A.BasicTransform | A.BaseCompose) -> dict[str, Any]:
    """A pipeline as albumentations' own JSON-ready dict (``A.from_dict`` rebuilds it): what a
    checkpoint records, so that a model file says how its training images were distorted."""
    return A.to_dict(pipeline)
