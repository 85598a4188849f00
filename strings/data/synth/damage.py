"""Damage: scanner and re-encoding degradation of a rendered string (blur, resolution loss, noise, JPEG)."""

from __future__ import annotations

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
