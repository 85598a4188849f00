"""Training-time augmentation of grey, dark-on-light string images (albumentations)."""

from __future__ import annotations

import albumentations as A
import cv2

__all__ = ["string_augmenter"]


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
