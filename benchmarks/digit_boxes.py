"""How well the per-digit boxes land: the share of predicted digit centres inside the matching
COCO ground-truth box of the CAR-A subset's test split, and a picture of examples.

    python benchmarks/digit_boxes.py --data-root ../shared/data [--model NAME_OR_PATH] [--sheet OUT.png]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from strings.data import open_dataset, resolve_data_root
from strings.data.readers import read_car_partial_boxes
from strings.metrics import centre_hits
from strings.read.loading import load

SHEET_ROWS = 8  # examples in the picture
SHEET_HEIGHT = 96  # each example is drawn at this height


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sheet", default=None, help="PNG: predicted boxes (green) over true boxes (blue)")
    args = ap.parse_args()
    root = resolve_data_root(args.data_root)
    data = open_dataset("car-a-partial", "test", root)
    gt_boxes = read_car_partial_boxes(root, "test")
    rec = load(args.model)
    samples = [data[i] for i in range(len(data))]
    readings = rec.recognize_greys([s.image for s in samples], [s.name for s in samples])
    totals = {"all": [0, 0], "read_right": [0, 0]}
    skipped, rows = 0, []
    for s, r in zip(samples, readings):
        truth = gt_boxes.get(s.name.split("/")[-1])
        if not truth or "".join(ch for ch, _ in truth) != s.label:
            skipped += 1  # boxes that do not spell the label cannot be matched digit by digit
            continue
        hits, pairs = centre_hits(r.text, [d.box for d in r.digits], s.label, [b for _, b in truth])
        totals["all"][0] += hits
        totals["all"][1] += pairs
        if r.text == s.label:
            totals["read_right"][0] += hits
            totals["read_right"][1] += pairs
        rows.append((s, r, truth, hits, pairs))
    result = {
        "model": rec.metadata.get("path", rec.name),
        "images": len(rows),
        "skipped_label_box_mismatch": skipped,
        **{f"centre_inside_{k}": (h / p if p else float("nan")) for k, (h, p) in totals.items()},
        **{f"pairs_{k}": p for k, (_, p) in totals.items()},
    }
    print(json.dumps(result, indent=1))
    if args.sheet:
        order = sorted(range(len(rows)), key=lambda k: rows[k][3] / max(1, rows[k][4]))
        worst = order[: SHEET_ROWS // 2]  # the images with the most centres outside, then a spread of the rest
        rest = [k for k in order[SHEET_ROWS // 2 :]][:: max(1, len(rows) // (SHEET_ROWS // 2))][: SHEET_ROWS // 2]
        tiles = []
        for s, r, truth, hits, pairs in (rows[k] for k in worst + rest):
            scale = SHEET_HEIGHT / s.image.shape[0]
            img = cv2.cvtColor(cv2.resize(s.image, None, fx=scale, fy=scale), cv2.COLOR_GRAY2BGR)
            for _, b in truth:
                cv2.rectangle(img, *_pts(b, scale), (200, 120, 0), 1)
            for d in r.digits:
                cv2.rectangle(img, *_pts(d.box, scale), (0, 170, 0), 1)
                x0, y0, x1, y1 = d.box
                cv2.circle(img, (round((x0 + x1) / 2 * scale), round((y0 + y1) / 2 * scale)), 3, (0, 0, 230), -1)
            cv2.putText(img, f"{r.text} / {s.label}  {hits}/{pairs}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(img)
        width = max(t.shape[1] for t in tiles)
        sheet = np.vstack([np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])
        cv2.imwrite(args.sheet, sheet)
        print(f"wrote {args.sheet}")


def _pts(box: tuple[int, int, int, int], scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    x0, y0, x1, y1 = box
    return (round(x0 * scale), round(y0 * scale)), (round(x1 * scale), round(y1 * scale))


if __name__ == "__main__":
    main()
