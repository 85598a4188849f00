"""Cost of each named model config on this machine: parameters, FLOPs per image, inference and
training throughput. Used to choose the default architecture (benchmarks/RESULTS.md).

    python benchmarks/model_costs.py [--width-ratio 4] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from strings.train.ctc import ctc_loss
from strings.models import create_model, list_configs


def measure(name: str, width_ratio: float, batch: int, repeats: int) -> dict[str, float | str | int]:
    model = create_model(name)
    h = model.height
    x = torch.rand(batch, 1, h, int(h * width_ratio))  # (B, 1, H, W)
    params = sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc:
            model(x[:1])
        flops = fc.get_total_flops()
        model(x)
        t = time.perf_counter()
        for _ in range(repeats):
            model(x)
        infer = batch * repeats / (time.perf_counter() - t)
    model.train()
    opt = torch.optim.AdamW(model.parameters())
    t_len = model.output_lengths(torch.tensor([x.shape[-1]]))
    n_digits = max(1, int(t_len) // 3)
    targets = torch.randint(1, model.num_classes, (batch * n_digits,), dtype=torch.int32)
    lengths = torch.full((batch,), n_digits, dtype=torch.int32)
    for i in range(repeats + 1):
        if i == 1:
            t = time.perf_counter()
        loss, _ = ctc_loss(model(x), targets, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train = batch * repeats / (time.perf_counter() - t)
    return {
        "config": name, "params": params, "input": f"{h}x{x.shape[-1]}", "mflops_per_image": flops / 1e6,
        "infer_img_s": round(infer, 1), "train_img_s": round(train, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--width-ratio", type=float, default=4.0, help="input width / height")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    for name in list_configs():
        if not name.startswith("test_"):
            print(json.dumps(measure(name, args.width_ratio, args.batch, args.repeats)))


if __name__ == "__main__":
    main()
