"""Shared fixtures: synthetic digit-string images, tiny checkpoints, tiny official-layout trees
and the location of the real datasets (tests that need them skip when they are absent)."""

from __future__ import annotations

import gzip
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from strings.models.checkpoint import save_model
from strings.data import ImageDataset, Sample
from strings.models import MODEL_CONFIGS, create_model

# The machine running the suite is small and often busy: one intra-op thread is the fastest.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def _find_real_data() -> Path | None:
    candidates = []
    if os.environ.get("STRINGS_DATA"):
        candidates.append(Path(os.environ["STRINGS_DATA"]))
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if (c / "orand-car" / "CAR-A-partial-fzkuji").is_dir() or (c / "mnist").is_dir():
            return c
    return None


REAL_DATA = _find_real_data()
requires_real_data = pytest.mark.skipif(
    REAL_DATA is None,
    reason="real datasets not found (looked in $STRINGS_DATA and ../shared/data beside the checkout)",
)


# --------------------------------------------------------------------------- synthetic images


def render_digits(text: str, height: int = 32, scale: float = 1.0, thickness: int = 2, jitter: int = 0,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """A dark-on-light uint8 image of ``text`` written with a Hershey font."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text or "0", font, scale, thickness)
    pad = 6
    w, h = tw + 2 * pad, th + base + 2 * pad
    img = np.full((h, w), 235, np.uint8)
    dx = dy = 0
    if jitter and rng is not None:
        dx, dy = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
    if text:
        cv2.putText(img, text, (pad + dx, pad + th + dy), font, scale, 20, thickness, cv2.LINE_AA)
    if height and h != height:
        img = cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    return img


class SynthDigits(ImageDataset):
    """``n`` in-memory digit strings of 1..max_len digits, deterministic for a seed."""

    def __init__(self, n: int, seed: int = 0, max_len: int = 4, name: str = "synth-test", height: int = 24) -> None:
        rng = np.random.default_rng(seed)
        self.name = name
        self.samples = []
        for i in range(n):
            k = int(rng.integers(1, max_len + 1))
            label = "".join(str(int(d)) for d in rng.integers(0, 10, size=k))
            img = render_digits(label, height=height, scale=float(rng.uniform(0.8, 1.0)), jitter=1, rng=rng)
            self.samples.append(Sample(img, label, f"{name}[{i}]"))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return self.samples[index]


@pytest.fixture(scope="session")
def digit_images() -> list[tuple[str, np.ndarray]]:
    """A few (label, grey image) pairs of different widths."""
    return [(t, render_digits(t)) for t in ("7", "42", "1500", "90210", "3", "118")]


# --------------------------------------------------------------------------- tiny checkpoints


def make_tiny_model(seed: int = 0) -> torch.nn.Module:
    """The test_tiny network with randomised batch-norm statistics and a spread-out head, so
    that its (untrained) output depends on the input and is not always blank."""
    torch.manual_seed(seed)
    model = create_model("test_tiny")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.7, 1.3)
                m.bias.uniform_(-0.3, 0.3)
        model.head.weight.mul_(8.0)
        model.head.bias.uniform_(-1.0, 1.0)
        model.head.bias[0] -= 1.0  # fewer blanks: readings are non-empty
    return model.eval()


def save_tiny_checkpoint(path: Path, seed: int = 0, extra: dict | None = None) -> Path:
    model = make_tiny_model(seed)
    _, pre = MODEL_CONFIGS["test_tiny"]
    save_model(path, model, pre, {"name": "tiny", **(extra or {})})
    return path


@pytest.fixture
def tiny_checkpoint_factory(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "tiny.safetensors", seed: int = 0, extra: dict | None = None) -> Path:
        return save_tiny_checkpoint(tmp_path / name, seed, extra)

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


# --------------------------------------------------------------------------- dataset trees


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def build_orand_tree(root: Path, prefix: bool = True, subsets: str = "ab",
                     labels: dict[str, list[str]] | None = None) -> dict[str, list[tuple[str, str]]]:
    """The official ORAND-CAR-2014 layout: ``[orand-car/]CAR-A/a_train_images/a_car_000154.png``,
    ``CAR-A/a_train_gt.txt`` with ``<file name> <digits>`` lines; the same for CAR-B / test."""
    base = root / "orand-car" if prefix else root
    labels = labels or {"train": ["2250", "60", "100"], "test": ["1500", "5743"]}
    listed: dict[str, list[tuple[str, str]]] = {}
    for s in subsets:
        car = base / f"CAR-{s.upper()}"
        number = 154 if s == "a" else 3001
        for split, labs in labels.items():
            rows = []
            for lab in labs:
                fname = f"{s}_car_{number:06d}.png"
                number += 1
                write_png(car / f"{s}_{split}_images" / fname, render_digits(lab))
                rows.append((fname, lab))
            (car / f"{s}_{split}_gt.txt").write_text("".join(f"{f} {lab}\n" for f, lab in rows))
            listed[f"{s}-{split}"] = rows
    return listed


def build_cvl_tree(root: Path, prefix: bool = False) -> dict[str, list[str]]:
    base = root / "cvl-hds" if prefix else root
    train = ["430040-0396-15.png", "25-0001-1.png", "7-0002-3.png"]
    test = ["12345-0100-2.png", "0-0101-7.png"]
    for f in train:
        write_png(base / "cvl-strings" / "train" / f, render_digits(f.split("-")[0]))
    for f in test:
        write_png(base / "cvl-strings-eval" / f, render_digits(f.split("-")[0]))
    return {"train": train, "test": test}


CAR_PARTIAL_SAMPLES = {
    "train": [("a_car_000154_png.rf.ec2ee980.jpg", "2250"), ("a_car_000155_png.rf.7d146a82.jpg", "60")],
    "test": [("a_car_007000_png.rf.2839d513.jpg", "1500")],
}


def build_car_partial_tree(root: Path) -> Path:
    """``orand-car/CAR-A-partial-fzkuji/{train2017,val2017}/``, tab-separated ``*_gt.txt`` and
    COCO ``annotations_coco/instances_*.json`` with one box per digit (category ids 0-9)."""
    base = root / "orand-car" / "CAR-A-partial-fzkuji"
    for split, sub in (("train", "train2017"), ("test", "val2017")):
        images, anns = [], []
        for i, (fname, label) in enumerate(CAR_PARTIAL_SAMPLES[split]):
            img = render_digits(label)
            path = base / sub / fname
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), img)
            h, w = img.shape
            images.append({"id": i, "file_name": fname, "height": h, "width": w})
            step = w / (len(label) + 1)
            # Written right to left, so the reader has to sort them.
            for j, ch in reversed(list(enumerate(label))):
                x = 3 + j * step
                anns.append({"id": len(anns), "image_id": i, "category_id": int(ch),
                             "bbox": [x, 2.4, step * 0.8, h - 5], "area": 1, "iscrowd": 0, "segmentation": []})
        (base / f"{sub}_gt.txt").write_text("".join(f"{f}\t{lab}\n" for f, lab in CAR_PARTIAL_SAMPLES[split]))
        coco = {"images": images, "annotations": anns,
                "categories": [{"id": d, "name": str(d), "supercategory": "Numbers"} for d in range(10)]}
        (base / "annotations_coco").mkdir(exist_ok=True)
        (base / "annotations_coco" / f"instances_{sub}.json").write_text(json.dumps(coco))
    return base


def idx_bytes(arr: np.ndarray) -> bytes:
    """An unsigned-byte IDX file (MNIST format) holding ``arr``."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.tobytes()


def build_mnist_tree(root: Path, gz: bool = True, n_train: int = 5, n_test: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """White-on-black 28x28 digits in ``root/mnist``, IDX files gzipped or raw."""
    rng = np.random.default_rng(1)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    out = None
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = np.zeros((n, 28, 28), np.uint8)
        x[:, 8:20, 12:16] = 250  # a bright stroke on black, like MNIST
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            data = idx_bytes(arr)
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / stem).write_bytes(data)
        if prefix == "train":
            out = (x, y)
    assert out is not None
    return out


def usps_line(label: int, pixels: np.ndarray) -> str:
    return " ".join([f"{label:.4f}", *(f"{v:.4f}" for v in pixels.ravel())])


def build_usps_tree(root: Path, n: int = 4) -> tuple[list[int], np.ndarray]:
    folder = root / "usps"
    folder.mkdir(parents=True, exist_ok=True)
    labels = ([6, 5, 4, 7] + [i % 10 for i in range(max(0, n - 4))])[:n]
    pix = np.full((n, 16, 16), -1.0)
    pix[:, 4:12, 7:9] = 1.0  # ink
    pix[:, 0, 0] = 0.0  # mid grey
    lines = [usps_line(lab, p) for lab, p in zip(labels, pix)]
    with gzip.open(folder / "zip.train.gz", "wt", encoding="ascii") as fh:
        fh.write("\n".join(lines) + "\n")
    return labels, pix


# --------------------------------------------------------------------------- training


def tiny_train_config(**changes):
    """A TrainConfig for test_tiny on in-memory synthetic strings: fast and deterministic."""
    from strings.config import DataSource, TrainConfig

    base = dict(
        model="test_tiny", sources=(DataSource("synth-test"),), validation="synth-val", batch_size=16,
        max_steps=300, eval_every=50, warmup_steps=20, lr=1e-2, augment=False, num_workers=0,
        patience=100, seed=0,
    )
    base.update(changes)
    return TrainConfig(**base)


def synth_train_val() -> tuple[SynthDigits, SynthDigits]:
    return SynthDigits(512, seed=0, name="synth-test"), SynthDigits(48, seed=1, name="synth-val")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One short training run of test_tiny (about 5 s): the output folder and train's result.
    It reaches roughly 90% string accuracy on the synthetic validation strings."""
    from strings.train.loop import train

    out = tmp_path_factory.mktemp("run") / "tiny-run"
    sources, val = synth_train_val()
    result = train(tiny_train_config(), out, sources=[sources], validation=val, progress=False,
                   resume=False, device="cpu", log=lambda msg: None)
    return out, result


@pytest.fixture(scope="session")
def trained_checkpoint(trained_run) -> Path:
    return trained_run[0] / "best.safetensors"
