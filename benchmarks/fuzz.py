"""The long fuzz run: the generators of tests/test_fuzz.py driven by a seeded RNG, plus
corrupted versions of real CAR-A crops (read into memory and mutated; the mutants live in a
temporary folder outside the checkout and are deleted at the end).

Every input runs in a worker process with a per-input time limit, so that a hang or a hard
crash (a segfault in a decoder) is counted and the run goes on with a fresh worker. An input
ends as one of:

- ``ok``: a well-formed result;
- ``clean_error``: a documented error (``InvalidImageError``, ``FileNotFoundError``,
  ``DatasetError``) with a printable message naming the item;
- ``crash``: any other exception, a malformed result, or the worker dying;
- ``hang``: no answer within ``--timeout`` seconds.

Usage::

    nice -n 19 python benchmarks/fuzz.py --inputs 10000 [--seed 0] [--timeout 10]

Prints a JSON summary (counts per generator, crash signatures with a reproducer each) and
exits 1 if there was any crash or hang. Reproducers of crashes and hangs are written under
``--crash-dir`` (default: a folder in the system temporary directory).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
for _p in (str(REPO), str(TESTS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

REAL_DIR = Path(os.environ.get("STRINGS_DATA", REPO.parent / "shared" / "data")) / "orand-car" / "CAR-A-partial-fzkuji" / "train2017"

GENERATORS = {  # name -> weight
    "random_bytes_file": 1.0,
    "mutated_seed_image": 2.0,
    "mutated_real_image": 3.0,
    "odd_file_name": 0.5,
    "array": 1.5,
    "gt_file": 1.0,
    "idx_file": 1.0,
    "log_probs": 1.0,
}


# --------------------------------------------------------------------------- input generation (parent)


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def _ops(rng: random.Random, mutations: tuple[str, ...]) -> list[tuple[str, int, int]]:
    return [(rng.choice(mutations), rng.randrange(2**16), rng.randrange(2**32)) for _ in range(rng.randint(1, 6))]


def _text(rng: random.Random, n: int) -> str:
    pools = ["0123456789", "abc .png", "é中\u3000\u2028\x85\x0b\t\r\x00١²", "".join(map(chr, range(32, 127)))]
    pool = rng.choice(pools)
    return "".join(rng.choice(pool) for _ in range(n))


class Inputs:
    """Seeded input generator over the shared generators of tests/test_fuzz.py."""

    def __init__(self, seed: int, real_limit: int = 200) -> None:
        import numpy as np

        import test_fuzz as tf

        self.np, self.tf = np, tf
        self.rng = random.Random(seed)
        self.seeds = tf.seed_images()
        self.real: list[tuple[str, bytes]] = []
        if REAL_DIR.is_dir():
            files = sorted(p for p in REAL_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            for p in random.Random(seed).sample(files, min(real_limit, len(files))):
                self.real.append((p.name, p.read_bytes()))
        self.names = list(GENERATORS)
        self.weights = [GENERATORS[n] if (n != "mutated_real_image" or self.real) else 0.0 for n in self.names]

    def next(self) -> tuple[str, dict[str, Any]]:
        rng, tf, np = self.rng, self.tf, self.np
        kind = rng.choices(self.names, self.weights)[0]
        if kind == "random_bytes_file":
            data = rng.choice(tf.MAGICS) + _rand_bytes(rng, rng.choice([0, 1, 16, 100, 1000, 5000]))
            return kind, {"data": data, "suffix": rng.choice(tf.SUFFIXES)}
        if kind == "mutated_seed_image":
            name = rng.choice(sorted(self.seeds))
            return kind, {"data": tf.mutate(self.seeds[name], _ops(rng, tf.MUTATIONS)), "suffix": ".png", "seed": name}
        if kind == "mutated_real_image":
            name, data = rng.choice(self.real)
            return kind, {"data": tf.mutate(data, _ops(rng, tf.MUTATIONS)), "suffix": ".jpg", "seed": name}
        if kind == "odd_file_name":
            raw = bytes(b for b in _rand_bytes(rng, rng.randint(1, 40)) if b not in (0, 47)) or b"x"
            if raw in (b".", b".."):
                raw = b"x" + raw
            return kind, {"name": raw, "data": self.seeds["png-grey"] if rng.random() < 0.5 else b"junk"}
        if kind == "array":
            return kind, {"array": self._array(), "cfg": rng.randrange(len(tf.CONFIGS))}
        if kind == "gt_file":
            if rng.random() < 0.3:
                content = _rand_bytes(rng, rng.randint(0, 300))
            else:
                lines = [(rng.choice(["a.png", "b c.png", "é.png"]) if rng.random() < 0.7 else _text(rng, rng.randint(0, 12)),
                          rng.choice([" ", "\t", "  ", "", "\x0b", "\u3000"]),
                          _text(rng, rng.randint(0, 5)) if rng.random() < 0.3 else str(rng.randrange(10**rng.randint(1, 6))))
                         for _ in range(rng.choice([0, 1, 1, 2, 3, 6]))]
                content = tf.gt_bytes(lines, rng.choice(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]),
                                      _rand_bytes(rng, rng.choice([0, 0, 0, 0, 1, 3])), rng.randrange(1000))
            return kind, {"data": content}
        if kind == "idx_file":
            if rng.random() < 0.3:
                return kind, {"data": _rand_bytes(rng, rng.randint(0, 200))}
            if rng.random() < 0.3:  # consistent: the body fits the header
                dims = [rng.randint(0, 6) for _ in range(rng.randint(1, 4))]
                return kind, {"data": tf.idx_file_bytes(b"\x00\x00\x08", dims, math.prod(dims), rng.choice(["no", "yes"]))}
            dims = [rng.choice([rng.randint(0, 6), rng.randrange(2**32)]) for _ in range(rng.randint(0, 5))]
            data = tf.idx_file_bytes(rng.choice([b"\x00\x00\x08", b"\x00\x00\x09", b"\x01\x00\x08", b""]), dims,
                                     rng.randint(0, 400), rng.choice(["no", "yes", "truncated"]), rng.randrange(256))
            return kind, {"data": data}
        # log_probs
        b, t = rng.randint(0, 4), rng.randint(0, 60)
        return kind, {"seed": rng.randrange(2**31), "b": b, "t": t, "scale": rng.choice([0.01, 1.0, 5.0, 50.0, 1000.0]),
                      "masked": rng.choice([0.0, 0.3, 0.9]), "lengths": [rng.randint(0, t) for _ in range(b)]}

    def _array(self):
        rng, np = self.rng, self.np
        dtypes = [np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_,
                  np.complex64, np.dtype(">u2"), np.dtype(">f4"), object]
        if self.real and rng.random() < 0.5:  # a real crop, reshaped or retyped
            import cv2

            img = cv2.imdecode(np.frombuffer(rng.choice(self.real)[1], np.uint8), cv2.IMREAD_UNCHANGED)
            choice = rng.randrange(7)
            if choice == 0:
                return img.astype(np.float32) / 255.0
            if choice == 1:
                out = img.astype(np.float64) / 255.0
                out.flat[rng.randrange(out.size)] = rng.choice([float("nan"), float("inf"), -1.0, 2.0])
                return out
            if choice == 2:
                return img[: rng.randint(0, 3), :]
            if choice == 3:
                return img[:, rng.randint(0, img.shape[1]) :][:, : rng.randint(0, 3)]
            if choice == 4:
                shape = (rng.choice([1, 10, 5000]), rng.choice([1, 10, 5000])) + img.shape[2:]
                return np.ascontiguousarray(np.broadcast_to(img[:1, :1], shape))
            if choice == 5:
                return (img.astype(np.uint16) * 257).astype(rng.choice([np.uint16, np.dtype(">u2")]))
            img = img if img.ndim == 3 else img[..., None]
            return np.concatenate([img, img[..., :1]], axis=2)[..., : rng.randint(1, img.shape[2] + 1)]
        shape = tuple(rng.choice([0, 1, 2, 3, 4, 5, 17]) for _ in range(rng.choice([0, 1, 2, 2, 3, 3, 4])))
        dtype = rng.choice(dtypes)
        if dtype is object:
            arr = np.empty(shape, object)
            arr.fill(rng.choice([None, "x", 1]))
            return arr
        raw = np.frombuffer(_rand_bytes(rng, int(np.prod(shape)) * np.dtype(dtype).itemsize), dtype=dtype)
        return raw.reshape(shape).copy()


# --------------------------------------------------------------------------- running one input (worker)


class _Worker:
    def __init__(self, workdir: Path) -> None:
        import torch

        torch.set_num_threads(1)
        import test_fuzz as tf
        from conftest import save_tiny_checkpoint
        from strings.decode.ctc import BeamSearchDecoder
        from strings.read.loading import load

        self.tf = tf
        self.dir = workdir
        self.rec = load(save_tiny_checkpoint(workdir / "tiny.safetensors"))
        self.beam = BeamSearchDecoder(tf.ALPHABET, beam_size=4, nbest=3)
        self.images = workdir / "gt-images"
        self.images.mkdir(exist_ok=True)
        import cv2

        from conftest import render_digits

        for name in ("a.png", "b c.png", "é.png"):
            cv2.imwrite(str(self.images / name), render_digits("1"))

    def run(self, kind: str, spec: dict[str, Any]) -> str:
        tf = self.tf
        if kind in ("random_bytes_file", "mutated_seed_image", "mutated_real_image"):
            path = self.dir / f"input{spec['suffix']}"
            path.write_bytes(spec["data"])
            k1, _ = tf.load_image_outcome(path)
            k2, _ = tf.recognize_outcome(self.rec, path)
            if k1 != k2:
                raise tf.Crash(f"load_image said {k1}, recognize said {k2}")
            k3 = self.rec.recognize_many([path, str(path)])
            if (k1 == "ok") != all(hasattr(r, "text") for r in k3):
                raise tf.Crash("recognize_many disagrees with recognize")
            return k1
        if kind == "odd_file_name":
            raw = os.path.join(os.fsencode(self.dir), b"names")
            os.makedirs(raw, exist_ok=True)
            raw = os.path.join(raw, spec["name"])
            with open(raw, "wb") as fh:
                fh.write(spec["data"])
            try:
                k1, _ = tf.load_image_outcome(os.fsdecode(raw))
                k2, _ = tf.recognize_outcome(self.rec, os.fsdecode(raw))
            finally:
                os.unlink(raw)
            if k1 != k2:
                raise tf.Crash(f"load_image said {k1}, recognize said {k2}")
            return k1
        if kind == "array":
            cfg = tf.CONFIGS[spec["cfg"]]
            k1, _ = tf.load_image_outcome(spec["array"])
            k2, _ = tf.normalize_outcome(spec["array"], cfg)
            if k1 != k2:
                raise tf.Crash(f"load_image said {k1}, normalize said {k2}")
            if k1 == "ok":
                tf.recognize_outcome(self.rec, spec["array"])
            return k1
        if kind == "gt_file":
            path = self.dir / "gt.txt"
            path.write_bytes(spec["data"])
            return tf.gt_outcome(path, self.images)[0]
        if kind == "idx_file":
            path = self.dir / "x-idx3-ubyte"
            path.write_bytes(spec["data"])
            return tf.idx_outcome(path)[0]
        if kind == "log_probs":
            import torch

            from strings.decode.ctc import greedy_decode

            lp, lens = tf.random_log_probs(torch.Generator().manual_seed(spec["seed"]), spec["b"], spec["t"], spec["scale"],
                                           spec["masked"], spec["lengths"])
            tf.decode_outcome(lambda x, n: greedy_decode(x, n, tf.ALPHABET), lp, lens)
            tf.decode_outcome(self.beam, lp, lens)
            return "ok"
        raise ValueError(kind)


def _worker_main(conn, workdir: str) -> None:
    import warnings

    warnings.simplefilter("ignore")  # Pillow's warnings about corrupt EXIF and the like
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # libjpeg and libpng print a line for every corrupt input
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    try:
        import cv2

        cv2.setLogLevel(0)
    except Exception:
        pass
    worker = _Worker(Path(workdir))
    conn.send(("ready", None))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, spec = msg
        try:
            result = worker.run(kind, spec)
            conn.send(("ok" if result == "ok" else "clean_error", None))
        except Exception as exc:  # the oracle's Crash, or anything the run itself raised
            cause = exc.__cause__ or exc
            tb = traceback.extract_tb(cause.__traceback__)
            where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "/strings/" in f.filename), "")
            # digits masked so that one bug is one signature, whatever the numbers in its message
            conn.send(("crash", f"{type(exc).__name__}: {re.sub(r'[0-9]+', 'N', str(exc))[:48]} @ {where}"))


class _Pool:
    """One worker process, restarted after a hang or a death."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ctx = mp.get_context("spawn")
        self.proc = None
        self.conn = None
        self.restarts = -1
        self._start()

    def _start(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker_main, args=(child, str(self.workdir)), daemon=True)
        self.proc.start()
        self.conn = parent
        self.restarts += 1
        if not parent.poll(300) or parent.recv()[0] != "ready":
            raise RuntimeError("fuzz worker did not start")

    def run(self, kind: str, spec: dict[str, Any], timeout: float) -> tuple[str, str | None]:
        try:
            self.conn.send((kind, spec))
            if self.conn.poll(timeout):
                return self.conn.recv()
            self._start()
            return "hang", f"no answer in {timeout} s"
        except (EOFError, OSError, BrokenPipeError):
            code = self.proc.exitcode if self.proc is not None else None
            self._start()
            return "crash", f"worker died (exit code {code})"

    def close(self) -> None:
        try:
            self.conn.send(None)
            self.proc.join(10)
        except Exception:
            pass
        if self.proc.is_alive():
            self.proc.kill()


def _save_reproducer(path: Path, kind: str, spec: dict[str, Any]) -> None:
    """A crashing input as .npz (arrays and bytes as arrays, the rest as JSON): no pickle, so a
    reproducer can be shared and loaded with ``np.load(path, allow_pickle=False)``."""
    arrays: dict[str, np.ndarray] = {}
    rest: dict[str, Any] = {"kind": kind}
    for k, v in spec.items():
        if isinstance(v, np.ndarray):
            arrays[k] = v
        elif isinstance(v, (bytes, bytearray)):
            arrays[k] = np.frombuffer(bytes(v), dtype=np.uint8)
        else:
            rest[k] = v
    np.savez(path, spec_json=np.array(json.dumps(rest, default=repr)), **arrays)


def _describe(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    out = {"generator": kind}
    for k, v in spec.items():
        if isinstance(v, bytes):
            out[k] = f"{len(v)} bytes"
        elif k == "array":
            out[k] = f"{getattr(v, 'dtype', '?')} {getattr(v, 'shape', '?')}"
        else:
            out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input before it counts as a hang")
    ap.add_argument("--crash-dir", type=Path, default=Path(tempfile.gettempdir()) / "strings-fuzz-crashes")
    ap.add_argument("--progress", type=int, default=1000, help="print a line every N inputs (0: never)")
    args = ap.parse_args(argv)

    gen = Inputs(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="strings-fuzz-"))
    counts: dict[str, Counter] = defaultdict(Counter)
    signatures: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    slowest = (0.0, "")
    pool = _Pool(workdir)
    try:
        for i in range(args.inputs):
            kind, spec = gen.next()
            t0 = time.perf_counter()
            status, detail = pool.run(kind, spec, args.timeout)
            dt = time.perf_counter() - t0
            if dt > slowest[0]:
                slowest = (dt, kind)
            counts[kind][status] += 1
            if status in ("crash", "hang"):
                sig = f"{status}: {detail}"
                if sig not in signatures:
                    args.crash_dir.mkdir(parents=True, exist_ok=True)
                    repro = args.crash_dir / f"input-{i:06d}.npz"
                    _save_reproducer(repro, kind, spec)
                    signatures[sig] = {"count": 0, "first_input": i, "input": _describe(kind, spec), "reproducer": str(repro)}
                signatures[sig]["count"] += 1
            if args.progress and (i + 1) % args.progress == 0:
                total = Counter()
                for c in counts.values():
                    total.update(c)
                print(f"{i + 1} inputs, {dict(total)}, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)
    total = Counter()
    for c in counts.values():
        total.update(c)
    summary = {
        "inputs": args.inputs,
        "seed": args.seed,
        "ok": total["ok"],
        "clean_errors": total["clean_error"],
        "crashes": total["crash"],
        "hangs": total["hang"],
        "per_generator": {k: dict(v) for k, v in sorted(counts.items())},
        "crash_signature_count": len(signatures),
        "crash_signatures": signatures,
        "real_images_mutated_from": str(REAL_DIR) if gen.real else None,
        "per_input_timeout_s": args.timeout,
        "slowest_input_s": round(slowest[0], 3),
        "slowest_input_generator": slowest[1],
        "worker_restarts": pool.restarts,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2, default=str))
    return 1 if total["crash"] or total["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
