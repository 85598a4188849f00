"""Training-time augmentation (albumentations): dark-on-light string images, ink-bright digit canvases."""

from __future__ import annotations

import os
from typing import Any

# albumentations asks PyPI for a newer version on import (up to 2 s, then a warning on every
# DataLoader worker); bank and GPU machines are often offline. The user's own setting wins.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402
import cv2

__all__ = ["AtLeastHeight", "describe", "digit_augmenter", "string_augmenter"]

# px: the height below which a string crop is enlarged before it is distorted: the short end of
# the real cheque crops the distortions were chosen for (CAR-A subset train heights: 5th
# percentile 44 px, median 55 px).
STRING_AUG_MIN_HEIGHT = 48


class AtLeastHeight(A.ImageOnlyTransform):
    """Enlarge a crop shorter than ``min_height`` to it, aspect ratio kept; taller crops pass
    unchanged. Blur, erosion and noise act in pixels: on a 22 px phone photo the cheque
    distortions erase strokes (the default model reads 66% of augmented photo-strings against
    77% of the originals; 73% with this step first), so small crops are distorted at cheque
    scale and the model's own resize brings them back down."""

    def __init__(self, min_height: int = STRING_AUG_MIN_HEIGHT, p: float = 1.0) -> None:
        super().__init__(p=p)
        if min_height < 1:
            raise ValueError(f"min_height must be at least 1, got {min_height}")
        self.min_height = min_height

    def apply(self, img: Any, **params: Any) -> Any:
        h, w = img.shape[:2]
        if h >= self.min_height:
            return img
        width = max(1, round(w * self.min_height / h))
        return cv2.resize(img, (width, self.min_height), interpolation=cv2.INTER_CUBIC)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_height",)


def string_augmenter(seed: int | None = None, min_height: int = STRING_AUG_MIN_HEIGHT) -> A.Compose:
    """Distortions real cheque crops show: slant, small rotation and scale, stroke width,
    blur, noise, JPEG artefacts, contrast, applied at cheque scale (``AtLeastHeight``).
    Geometry pads by repeating the border (paper)."""
    return A.Compose(
        [
            AtLeastHeight(min_height),
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
