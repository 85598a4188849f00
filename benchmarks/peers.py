"""Peers on the same images, in one run, offline: strings, rapidocr 3.10 and Tesseract 5.

Why: a user choosing a digit-string reader compares it with what they could install instead.
The general OCR they would reach for is rapidocr (PP-OCR models in ONNX, shipped inside its
wheel); Tesseract is the classic. Each system reads the same decoded grey images, and every
accuracy carries a 95% Wilson interval because the sets are small.

Datasets (the project's own readers where it has one):

- ``car-a-partial`` test split: 128 real cheque courtesy-amount crops (tight crops);
- ``mnist-strings``: ``strings.data.synth.mnist_test_strings`` (real MNIST *test* digits on
  synthetic paper), the first ``--mnist-n`` strings of its fixed seed;
- ``parish-rowid`` validation: real *loose* field crops of handwritten row numbers (ruled
  lines, scan margin, footer print, other writing). ``labels.csv`` is read here; digit-only
  labels are kept (2,697 of 2,882) and a fixed seeded subset of ``--parish-n`` is drawn, because
  rapidocr with its detector reads about 1 image/s;
- ``photo-strings`` test: ``strings.data.synth.photo`` (MNIST *test* digits photographed in
  colour on synthetic paper, its own seed), the first ``--photo-n``; the peers read the colour
  photo, strings the grey image it turns that photo into;
- ``comb-fields`` test: ``strings.data.synth.comb`` (one digit per printed box, placeholders,
  phone capture; MNIST test digits, its own seed), the first ``--comb-n``.

On the loose crops (parish, comb) strings reads both the whole crop and through its field
search (``read_field``), and rapidocr both recognition only and detection + recognition.
``--models`` names the strings models to run (bundled names or ``.safetensors`` paths), and
``--append`` merges this run's rows into an existing ``--out`` (rows of the same dataset,
system and mode are replaced; every row keeps the index of the run, with its command, date and
machine, that measured it).

Scoring: exact string match and CER (edits / reference digits) after removing every non-digit
from a peer's output (separators, letters, the footer text its detector also reads), as
BACKGROUND.md did. Speed: images/s reading one image per call (every system) and, for strings,
batched; image decoding is done before timing and excluded. Every system runs at ``--threads``
intra-op threads (1 by default, see THREADS). The machine is shared (2 cores), so the speeds are
noisy; the load average at start and end is recorded.

    python benchmarks/peers.py --data-root /work/shared/data --out benchmarks/peers.json \
        --md benchmarks/peers.md [--systems strings,rapidocr,tesseract] [--models default,field] \
        [--datasets car-a-partial,mnist-strings,parish-rowid,photo-strings,comb-fields] [--parish-n 300] [--append]

A system that is not installed is skipped with a printed reason. rapidocr needs no download:
the rapidocr 3.10.0 wheel carries its three ONNX models (``rapidocr/models/``), and
``onnxruntime`` must be installed beside it (rapidocr does not depend on it).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata as md
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- config

SYSTEMS = ("strings", "rapidocr", "tesseract")
DATASETS = ("car-a-partial", "mnist-strings", "parish-rowid", "photo-strings", "comb-fields")
CAR_SPLIT = "test"
MNIST_N = 500  # strings of MNIST test digits (the project's fixed seed, 20141)
PARISH_DIR = "parish-rowid/validation"
PARISH_N = 300  # seeded subset of the 2,697 digit-only validation crops
PARISH_SEED = 0
PHOTO_N = 1000  # the photo benchmark's test set (strings.data.synth.photo.PHOTO_TEST_N)
COMB_N = 300  # of the comb benchmark's 1,000 (rapidocr's detector reads about 1 image/s)
MODELS = ("default",)
DETECTOR_DATASETS = ("parish-rowid", "comb-fields")  # loose field crops: where a detector is needed
BATCH = 64  # strings' batched read (its default batch size)
WARMUP = 3  # untimed calls per system and dataset (first-call model loading, caches)
# Intra-op threads for every system. 1 by default: the same for all, and robust on a shared
# machine, where a second OpenMP thread waiting on a busy core made strings' one-image reads
# 7-10x slower (3.5-5.7 vs 40 images/s on car-a-partial, another job holding one of 2 cores).
THREADS = 1
Z95 = 1.959963984540054  # two-sided 95% normal quantile, for the Wilson interval
TESSERACT_ARGS = ("--psm", "7", "-l", "eng", "-c", "tessedit_char_whitelist=0123456789")  # psm 7: one text line
RAPIDOCR_PARAMS: dict[str, Any] = {"Global.log_level": "error"}  # its defaults otherwise (PP-OCRv6 small, onnxruntime)


# --------------------------------------------------------------------------- data


@dataclass
class Images:
    """One benchmark set, decoded once so that every system reads identical pixels."""

    name: str
    greys: list[np.ndarray]  # (H, W) uint8, dark ink on light paper
    labels: list[str]
    names: list[str]
    note: str = ""
    colours: list[np.ndarray] | None = None  # (H, W, 3) uint8 RGB where the set is in colour


def load_car(data_root: str) -> Images:
    from strings.data import open_dataset

    ds = open_dataset("car-a-partial", CAR_SPLIT, data_root)
    samples = [ds[i] for i in range(len(ds))]
    return Images("car-a-partial", [s.image for s in samples], [s.label for s in samples], [s.name for s in samples],
                  f"{CAR_SPLIT} split, tight real cheque crops")


def load_mnist(data_root: str, n: int) -> Images:
    from strings.data.synth import mnist_test_strings

    ds = mnist_test_strings(data_root, n=n)
    samples = [ds[i] for i in range(len(ds))]
    return Images("mnist-strings", [s.image for s in samples], [s.label for s in samples], [s.name for s in samples],
                  f"mnist_test_strings(n={n}), synthetic strings of real MNIST test digits")


def load_parish(data_root: str, n: int, seed: int) -> Images:
    """Digit-only labels of the validation split, then a fixed seeded subset of ``n``."""
    from strings.image import load_image

    folder = Path(data_root) / PARISH_DIR
    with open(folder / "labels.csv", newline="") as fh:
        rows = [(r["filename"], r["label"]) for r in csv.DictReader(fh)]
    digit_rows = [(f, lab) for f, lab in rows if lab.isdigit()]
    pick = sorted(np.random.default_rng(seed).choice(len(digit_rows), size=min(n, len(digit_rows)), replace=False))
    chosen = [digit_rows[i] for i in pick]
    return Images("parish-rowid", [load_image(folder / f) for f, _ in chosen], [lab for _, lab in chosen],
                  [f for f, _ in chosen],
                  f"validation split, {len(chosen)} of {len(digit_rows)} digit-only labels ({len(rows)} crops), "
                  f"seed {seed}; loose field crops")


def load_photo(data_root: str, n: int) -> Images:
    from strings.data import open_dataset

    ds = open_dataset("photo-strings", "test", data_root)
    n = min(n, len(ds))
    shots = [ds.colour(i) for i in range(n)]  # type: ignore[attr-defined]
    greys = [ds[i].image for i in range(n)]
    return Images("photo-strings", greys, [lab for _, lab in shots], [f"photo-strings[{i}]" for i in range(n)],
                  f"test split, first {n}: synthetic phone photos of MNIST test digits (colour to the peers)",
                  [rgb for rgb, _ in shots])


def load_comb(data_root: str, n: int) -> Images:
    from strings.data import open_dataset

    ds = open_dataset("comb-fields", "test", data_root)
    samples = [ds[i] for i in range(min(n, len(ds)))]
    return Images("comb-fields", [s.image for s in samples], [s.label for s in samples], [s.name for s in samples],
                  f"test split, first {len(samples)}: synthetic comb fields of MNIST test digits; loose field crops")


# --------------------------------------------------------------------------- scoring


def digits_only(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n: honest at small n and near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def score(labels: Sequence[str], preds: Sequence[str]) -> dict[str, Any]:
    from strings.metrics import StringMetrics

    m = StringMetrics()
    for truth, pred in zip(labels, preds):
        m.update(truth, pred)
    lo, hi = wilson(m.correct, m.n)
    return {"n": m.n, "correct": m.correct, "accuracy": m.correct / m.n if m.n else 0.0,
            "accuracy_ci95": [lo, hi], "cer": m.edits / m.ref_chars if m.ref_chars else 0.0}


# --------------------------------------------------------------------------- systems


@dataclass
class Mode:
    """One way of running a system: a one-image reader, and optionally a batched one."""

    name: str
    read_one: Callable[[np.ndarray], str]
    read_batch: Callable[[list[np.ndarray]], list[str]] | None = None
    prepare: Callable[[np.ndarray], Any] = field(default=lambda g: g)  # untimed input conversion
    colour: bool = False  # given the colour image where the set has one (else the grey one)


class System:
    name: str = ""

    def __init__(self, threads: int = THREADS) -> None:
        self.threads = threads

    def unavailable(self) -> str | None:
        """Why this system cannot run here (None when it can)."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def modes(self, dataset: str) -> list[Mode]:
        raise NotImplementedError


class StringsSystem(System):
    """strings models (``--models``), greedy decoding: on the whole image, and through the field
    search on loose crops."""

    name = "strings"
    models: tuple[str, ...] = MODELS

    def unavailable(self) -> str | None:
        try:
            import strings  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any import failure means "cannot run"
            return f"strings does not import: {exc}"
        return None

    def version(self) -> str:
        import torch

        import strings

        return f"strings {strings.__version__} (torch {torch.__version__}, {self.threads} thread(s))"

    def modes(self, dataset: str) -> list[Mode]:
        import torch

        import strings

        torch.set_num_threads(self.threads)
        out = []
        for model in self.models:
            rec = strings.load(model)
            label = Path(model).stem if model.endswith(".safetensors") else model
            out.append(Mode(f"{label} model", read_one=lambda g, r=rec: r.recognize_greys([g])[0].text,
                            read_batch=lambda gs, r=rec: [x.text for x in r.recognize_greys(gs, batch_size=BATCH)]))
            if dataset in DETECTOR_DATASETS:
                out.append(Mode(f"{label} model, field reading", read_one=lambda g, r=rec: r.read_fields([g])[0].text,
                                read_batch=lambda gs, r=rec: [x.text for x in r.read_fields(gs, batch_size=BATCH)]))
        return out


class RapidOCRSystem(System):
    """rapidocr with its bundled models; recognition only, and with its detector on loose crops."""

    name = "rapidocr"

    def unavailable(self) -> str | None:
        try:
            import onnxruntime  # noqa: F401
            import rapidocr  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return f"rapidocr or onnxruntime does not import ({exc}); pip install rapidocr==3.10.0 onnxruntime"
        return None

    def version(self) -> str:
        return f"rapidocr {md.version('rapidocr')} (onnxruntime {md.version('onnxruntime')}, {self.threads} thread(s))"

    def modes(self, dataset: str) -> list[Mode]:
        import cv2
        from rapidocr import RapidOCR

        engine = RapidOCR(params={**RAPIDOCR_PARAMS, "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                                  "EngineConfig.onnxruntime.inter_op_num_threads": 1})
        def to_bgr(img: np.ndarray) -> np.ndarray:  # rapidocr's documented input is BGR
            return cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.ndim == 3 else cv2.COLOR_GRAY2BGR)

        def rec_only(img: np.ndarray) -> str:
            return "".join(engine(img, use_det=False, use_cls=False, use_rec=True).txts or ())

        def det_rec(img: np.ndarray) -> str:
            # All detected lines in rapidocr's order (top to bottom); digits_only drops the footer print.
            return "".join(engine(img, use_det=True, use_cls=False, use_rec=True).txts or ())

        out = [Mode("recognition only", rec_only, prepare=to_bgr, colour=True)]
        if dataset in DETECTOR_DATASETS:
            out.append(Mode("detection + recognition", det_rec, prepare=to_bgr, colour=True))
        return out


class TesseractSystem(System):
    """The tesseract command, one process per image (as a user would call it)."""

    name = "tesseract"

    def unavailable(self) -> str | None:
        if shutil.which("tesseract") is None:
            return "the tesseract command is not installed (Debian: apt-get install tesseract-ocr)"
        return None

    def version(self) -> str:
        res = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False)
        return f"{(res.stdout or res.stderr).splitlines()[0].strip()} ({self.threads} thread(s))"

    def modes(self, dataset: str) -> list[Mode]:
        import cv2

        cmd = ["tesseract", "stdin", "stdout", *TESSERACT_ARGS]
        env = {**os.environ, "OMP_THREAD_LIMIT": str(self.threads)}

        def read(png: bytes) -> str:
            res = subprocess.run(cmd, input=png, capture_output=True, env=env, check=False)
            return res.stdout.decode("utf-8", "replace").strip()

        def png(img: np.ndarray) -> bytes:
            return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)[1].tobytes()

        return [Mode(f"psm {TESSERACT_ARGS[1]}, digits whitelist", read, prepare=png, colour=True)]


ALL_SYSTEMS: dict[str, type[System]] = {"strings": StringsSystem, "rapidocr": RapidOCRSystem, "tesseract": TesseractSystem}


# --------------------------------------------------------------------------- running


def run_mode(system: str, mode: Mode, data: Images) -> dict[str, Any]:
    """Read every image one per call (timed), and batched where the system has it (timed)."""
    from tqdm import tqdm

    images = data.colours if (mode.colour and data.colours is not None) else data.greys
    inputs = [mode.prepare(g) for g in images]
    for x in inputs[:WARMUP]:
        mode.read_one(x)
    raw: list[str] = []
    start = time.perf_counter()
    for x in tqdm(inputs, desc=f"{data.name} | {system} {mode.name}", unit="img", leave=False):
        raw.append(mode.read_one(x))
    single_s = time.perf_counter() - start
    preds = [digits_only(t) for t in raw]
    row: dict[str, Any] = {"dataset": data.name, "system": system, "mode": mode.name, **score(data.labels, preds),
                           "images_per_s_single": len(inputs) / single_s, "seconds_single": single_s}
    if mode.read_batch is not None:
        mode.read_batch(inputs[:WARMUP])
        start = time.perf_counter()
        batched = mode.read_batch(inputs)
        batch_s = time.perf_counter() - start
        row["images_per_s_batched"] = len(inputs) / batch_s
        row["batched_agrees_with_single"] = sum(a == b for a, b in zip(batched, raw)) / max(1, len(raw))
    # per image: the file's name, what the system returned and whether it was right; the truth
    # itself stays in the dataset (no dataset file, labels included, is ever committed)
    row["predictions"] = [{"name": Path(nm).name, "raw": r, "digits": p, "correct": p == lab}
                          for nm, lab, r, p in zip(data.names, data.labels, raw, preds)]
    return row


def machine() -> dict[str, Any]:
    cpu = ""
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("strings", "torch", "numpy", "opencv-python-headless", "opencv-python", "onnxruntime", "rapidocr"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def write_markdown(result: dict[str, Any], path: Path) -> None:
    lines = ["# Peers on the same images (benchmarks/peers.py)", ""]
    for i, run in enumerate(result["runs"]):
        lines += [f"Run {i}:", "",
                  f"- command: `{run['command']}`",
                  f"- date: {run['date']}",
                  (f"- CPU: {run['machine']['cpu']}, {run['machine']['cores']} cores (shared with other work: "
                   f"speeds are noisy); load average {run['load_average_start']} at start, "
                   f"{run['load_average_end']} at end; wall time {run['wall_seconds'] / 60:.1f} min"),
                  f"- systems: {'; '.join(run['system_versions'].values())}",
                  f"- packages: {', '.join(f'{k} {v}' for k, v in run['packages'].items())}"]
        lines += [f"- skipped {s}: {why}" for s, why in run["skipped"].items()]
        lines.append("")
    lines += [("- scoring: exact string match and CER after removing non-digits from every output; "
               "95% Wilson interval on accuracy; image decoding excluded from speed"), ""]
    for name, info in result["datasets"].items():
        lines.append(f"- {name}: {info['n']} images, {info['note']}")
    lines += ["", "| dataset (n) | system | mode | exact | 95% CI | CER | images/s, one at a time | images/s, batched | run |",
              "|---|---|---|---|---|---|---|---|---|"]
    order = {name: i for i, name in enumerate(DATASETS)}
    for r in sorted(result["rows"], key=lambda r: order.get(r["dataset"], len(order))):
        lo, hi = r["accuracy_ci95"]
        batched = f"{r['images_per_s_batched']:.0f}" if "images_per_s_batched" in r else ""
        single = r["images_per_s_single"]
        lines.append(f"| {r['dataset']} ({r['n']}) | {r['system']} | {r['mode']} | {pct(r['accuracy'])} | "
                     f"{pct(lo)}-{pct(hi)} | {r['cer']:.3f} | {single:.1f} | {batched} | {r.get('run', 0)} |")
    path.write_text("\n".join(lines) + "\n")


def _upgrade(result: dict[str, Any]) -> dict[str, Any]:
    """A results file from before runs were recorded: its one run's fields become run 0."""
    if "runs" in result:
        return result
    keys = ("command", "date", "machine", "packages", "load_average_start", "load_average_end", "wall_seconds",
            "config", "system_versions", "skipped")
    return {"runs": [{k: result[k] for k in keys if k in result}], "datasets": result["datasets"], "rows": result["rows"]}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=None, help="the shared data folder (default: strings' own lookup)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/peers.json"))
    p.add_argument("--md", type=Path, default=Path("benchmarks/peers.md"))
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--parish-n", type=int, default=PARISH_N)
    p.add_argument("--parish-seed", type=int, default=PARISH_SEED)
    p.add_argument("--mnist-n", type=int, default=MNIST_N)
    p.add_argument("--photo-n", type=int, default=PHOTO_N)
    p.add_argument("--comb-n", type=int, default=COMB_N)
    p.add_argument("--models", default=",".join(MODELS), help="strings models: bundled names or .safetensors paths")
    p.add_argument("--append", action="store_true", help="merge this run's rows into an existing --out")
    p.add_argument("--threads", type=int, default=THREADS, help="intra-op threads for every system")
    args = p.parse_args(argv)

    from strings.data.base import resolve_data_root

    data_root = str(resolve_data_root(args.data_root))
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for bad in [s for s in wanted if s not in ALL_SYSTEMS] + [d for d in names if d not in DATASETS]:
        p.error(f"unknown system or dataset {bad!r}")
    t0 = time.perf_counter()
    run: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]) if argv is None else " ".join(["python", "benchmarks/peers.py", *argv]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%a %b %d %H:%M:%S UTC %Y"),
        "machine": machine(), "packages": package_versions(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "config": {"car_split": CAR_SPLIT, "mnist_n": args.mnist_n, "parish_n": args.parish_n,
                   "parish_seed": args.parish_seed, "photo_n": args.photo_n, "comb_n": args.comb_n,
                   "models": args.models, "threads": args.threads, "batch": BATCH, "warmup": WARMUP,
                   "tesseract_args": list(TESSERACT_ARGS), "rapidocr_params": RAPIDOCR_PARAMS},
        "system_versions": {}, "skipped": {},
    }
    result: dict[str, Any] = {"runs": [], "datasets": {}, "rows": []}
    if args.append and args.out.exists():
        result = _upgrade(json.loads(args.out.read_text()))
    run_index = len(result["runs"])
    result["runs"].append(run)
    StringsSystem.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    systems: list[System] = []
    for s in wanted:
        system = ALL_SYSTEMS[s](args.threads)
        why = system.unavailable()
        if why is not None:
            print(f"skipping {s}: {why}", file=sys.stderr)
            run["skipped"][s] = why
            continue
        systems.append(system)
        run["system_versions"][s] = system.version()

    loaders: dict[str, Callable[[], Images]] = {
        "car-a-partial": lambda: load_car(data_root),
        "mnist-strings": lambda: load_mnist(data_root, args.mnist_n),
        "parish-rowid": lambda: load_parish(data_root, args.parish_n, args.parish_seed),
        "photo-strings": lambda: load_photo(data_root, args.photo_n),
        "comb-fields": lambda: load_comb(data_root, args.comb_n),
    }
    for name in names:
        data = loaders[name]()
        result["datasets"][name] = {"n": len(data.labels), "note": data.note}
        for system in systems:
            for mode in system.modes(name):
                row = run_mode(system.name, mode, data)
                lo, hi = row["accuracy_ci95"]
                print(f"{name:14s} {system.name:9s} {mode.name:26s} n={row['n']} exact {pct(row['accuracy'])} "
                      f"[{pct(lo)}, {pct(hi)}] CER {row['cer']:.3f} {row['images_per_s_single']:.1f} img/s", flush=True)
                row["run"] = run_index
                key = (name, system.name, mode.name)
                result["rows"] = [r for r in result["rows"] if (r["dataset"], r["system"], r["mode"]) != key] + [row]
    run["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    run["wall_seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.md)
    print(f"wrote {args.out} and {args.md} ({run['wall_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
