"""Width bucketing: which images to read together so that little of each batch is padding.

A batch is padded on the right to its widest image, and the network computes every padded
column. Sorting by width and cutting fixed-size batches still wastes a lot when widths are
spread: on the 128 real CAR-A subset test crops, two sorted batches of 64 hold 49% more
columns than the images have (the second batch spans widths 95-196). ``width_batches`` also
closes a batch when the next, wider image would push the padding over ``max_padding``:
there, 9 batches with 7% padding, and the network reads 1.6x as many strings per second
(``benchmarks/speed.py``). The column masks make each image's reading independent of its
batch, so the grouping changes nothing but speed.

Example:
    >>> width_batches([40, 200, 44, 48, 196], batch_size=64, stride=4)
    [[0, 2, 3], [4, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["width_batches"]


def width_batches(
    widths: Sequence[int], batch_size: int, stride: int = 1, max_padding: float = 0.1
) -> list[list[int]]:
    """Indices of ``widths`` grouped into batches, narrowest first.

    Each batch holds at most ``batch_size`` images and, once it holds two or more, at most
    ``max_padding`` more columns (after padding to its widest image) than its images have;
    widths are first rounded up to ``stride``, as ``collate_images`` pads them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_padding < 0:
        raise ValueError(f"max_padding must be >= 0, got {max_padding}")
    rounded = [-(-int(w) // stride) * stride for w in widths]
    order = sorted(range(len(rounded)), key=lambda i: rounded[i])
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0  # columns of the images in ``current``
    for i in order:
        w = rounded[i]  # the widest so far: the batch would be padded to it
        if current and (len(current) >= batch_size or (len(current) + 1) * w > (1.0 + max_padding) * (real + w)):
            batches.append(current)
            current, real = [], 0
        current.append(i)
        real += w
    if current:
        batches.append(current)
    return batches
