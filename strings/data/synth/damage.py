"""Damage: scanner and re-encoding degradation of a rendered string (blur, resolution loss, noise,
JPEG), and a phone's capture (rotation, perspective, uneven light)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from strings.data.synth.common import _U8_MAX, SynthConfig, _u


def _degrade(rng: np.random.Generator, img: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Scanner and re-encoding damage: blur, resolution loss, sensor noise, JPEG blocks."""
    hh, ww = img.shape
    if rng.random() < cfg.p_blur:
        img = cv2.GaussianBlur(img, (0, 0), _u(rng, cfg.blur_sigma))
    if rng.random() < cfg.p_rescale:
        f = _u(rng, cfg.rescale_factor)
        small = cv2.resize(img, (max(1, int(ww * f)), max(1, int(hh * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (ww, hh), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.p_noise:
        img = img + rng.standard_normal((hh, ww), dtype=np.float32) * _u(rng, cfg.noise_sigma)
    out = np.clip(img, 0, _U8_MAX).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out


def phone_capture(
    rng: np.random.Generator,
    img: np.ndarray,
    rotation_deg: float,
    perspective: float,
    p_shadow: float,
    shadow_depth: tuple[float, float],
) -> np.ndarray:
    """A phone's view of a flat page: slight rotation and perspective (corners jittered by
    ``perspective`` of the size), and with ``p_shadow`` a linear ramp of light. ``img`` is a
    float (h, w) grey or (h, w, 3) colour image; the uncovered corners take the paper's median."""
    h, w = img.shape[:2]
    fill = np.median(img.reshape(h * w, -1), axis=0)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + np.float32(rng.uniform(-perspective, perspective, (4, 2)) * [w, h])
    angle = math.radians(_u(rng, (-rotation_deg, rotation_deg)))
    rot = np.float32([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    dst = (dst - [w / 2, h / 2]) @ rot.T + [w / 2, h / 2]
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    border = float(fill[0]) if img.ndim == 2 else tuple(float(v) for v in fill)
    img = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    if rng.random() < p_shadow:
        theta = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (xx / max(1, w) - 0.5) * math.cos(theta) + (yy / max(1, h) - 0.5) * math.sin(theta)  # (h, w)
        depth = _u(rng, shadow_depth)
        light = 1.0 - depth * (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))  # (h, w)
        img = img * (light if img.ndim == 2 else light[..., None])
    return img
