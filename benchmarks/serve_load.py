"""Load benchmark of ``strings serve``: does dynamic batching give many small clients the
throughput of ``recognize_batch``?

Starts the real server (``python -m strings serve``) on a real port and sends the same real
crops (the CAR-A subset test split, as JPEG files) as single-image multipart requests:

- ``sequential``: one client, one request at a time;
- ``concurrent``: ``--clients`` clients at once, each with its own keep-alive connection;
- ``concurrent, no batching``: the same, against a server started with ``--max-batch 1``;
- ``in-process recognize_batch``: the same files through ``Recognizer.recognize_batch`` in
  this process (batch 64, file decoding included, no HTTP), with the server stopped.

For each: requests (images) per second and latency p50 / p95 per request. Clients and
server share the machine's cores, so on a small machine the clients' own CPU time is part of
what is measured.

    python benchmarks/serve_load.py --data-root ../shared/data --clients 16 --out benchmarks/serve_load.json
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CROPS = Path("orand-car") / "CAR-A-partial-fzkuji" / "val2017"
STARTUP_S = 120.0
PERCENTILES = (50, 95)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Server:
    """``python -m strings serve`` in a subprocess, ready when its /readyz says so."""

    def __init__(self, model: str, extra: list[str]) -> None:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "strings",
            "serve",
            "--model",
            model,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *extra,
        ]
        self.cmd = " ".join(cmd[1:])
        self.proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not become ready")

    def metrics(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def fire(port: int, files: list[Path], clients: int, per_client: int) -> dict[str, Any]:
    """``clients`` threads, each sending ``per_client`` single-image requests back to back."""
    bodies = [multipart(f.name, f.read_bytes()) for f in files]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    start_gate = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start_gate.wait()
        for j in range(per_client):
            body, kind = bodies[(k * per_client + j) % len(bodies)]
            t0 = time.perf_counter()
            conn.request("POST", "/v1/read", body, {"Content-Type": kind})
            resp = conn.getresponse()
            resp.read()
            latencies[k].append(time.perf_counter() - t0)
            failures[k] += resp.status != 200

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array([x for row in latencies for x in row]) * 1000.0
    p50, p95 = (float(v) for v in np.percentile(lat, PERCENTILES))
    return {
        "clients": clients,
        "requests": int(lat.size),
        "failures": int(sum(failures)),
        "seconds": wall,
        "requests_per_s": lat.size / wall,
        "p50_ms": p50,
        "p95_ms": p95,
    }


def batch_stats(metrics: str) -> dict[str, float]:
    values = {}
    for line in metrics.splitlines():
        for key in ("strings_batch_size_sum", "strings_batch_size_count"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    n = values.get("strings_batch_size_count", 0.0)
    return {"batches": n, "mean_batch": values.get("strings_batch_size_sum", 0.0) / n if n else 0.0}


def in_process(model: str, files: list[Path], repeats: int, threads: int | None) -> dict[str, Any]:
    import torch

    import strings

    if threads:
        torch.set_num_threads(threads)
    rec = strings.load(model)
    rec.recognize_batch([str(f) for f in files[:8]])  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        rec.recognize_batch([str(f) for f in files], batch_size=64)
    wall = time.perf_counter() - t0
    return {"images": len(files) * repeats, "seconds": wall, "requests_per_s": len(files) * repeats / wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=os.environ.get("STRINGS_DATA", "../shared/data"))
    p.add_argument("--model", default="default")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--per-client", type=int, default=16, help="requests each concurrent client sends")
    p.add_argument("--sequential", type=int, default=128, help="requests of the one-at-a-time run")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=None, help="the server's --threads (and the in-process run's)")
    p.add_argument("--out", default=None, help="write the results here as JSON")
    args = p.parse_args()

    files = sorted((Path(args.data_root) / CROPS).glob("*.jpg"))
    if not files:
        raise SystemExit(f"no crops under {Path(args.data_root) / CROPS}")
    threads = ["--threads", str(args.threads)] if args.threads else []
    runs: dict[str, Any] = {}
    server = Server(args.model, ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), *threads])
    try:
        runs["command"] = server.cmd
        fire(server.port, files, 1, 8)  # warm-up
        runs["sequential"] = fire(server.port, files, 1, args.sequential)
        before = batch_stats(server.metrics())
        runs["concurrent"] = fire(server.port, files, args.clients, args.per_client)
        after = batch_stats(server.metrics())
        n = after["batches"] - before["batches"]
        runs["concurrent"]["mean_batch"] = runs["concurrent"]["requests"] / n if n else 0.0
    finally:
        server.stop()
    server = Server(args.model, ["--max-batch", "1", *threads])
    try:
        fire(server.port, files, 1, 8)
        runs["concurrent_unbatched"] = fire(server.port, files, args.clients, args.per_client)
    finally:
        server.stop()
    runs["in_process_recognize_batch"] = in_process(
        args.model, files, max(1, args.sequential // len(files)), args.threads
    )
    runs["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "date": datetime.date.today().isoformat(),
    }
    text = json.dumps(runs, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
