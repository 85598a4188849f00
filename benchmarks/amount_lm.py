"""Does an amount prior help CTC beam search? Tune it on the validation slice, never on test.

The n-gram is learned from the fit half of the model's training strings (the validation slice
is excluded), then greedy decoding, plain beam search and beam search with the prior at several
orders and weights are compared on the validation slice. Prints a JSON report; the test split
is read only for the best validation setting and the two baselines.

    python benchmarks/amount_lm.py --data-root ../shared/data [--model NAME_OR_PATH]
"""

from __future__ import annotations

import argparse
import json

import torch

from strings.decode.amount_lm import AmountNgram
from strings.config import TrainConfig, from_dict
from strings.data import open_dataset
from strings.decode.ctc import BeamSearchDecoder, greedy_decode
from strings.data.sources import validation_split
from strings.read.loading import load

ORDERS = (1, 2, 3, 4)
WEIGHTS = (0.02, 0.05, 0.1, 0.2, 0.4)
BEAM = 10


def _log_probs(rec, dataset):
    samples = [dataset[i] for i in range(len(dataset))]
    logits = rec.item_logits([s.image for s in samples])
    lengths = torch.tensor([x.shape[0] for x in logits])
    lp = torch.nn.utils.rnn.pad_sequence(logits, batch_first=True).log_softmax(-1)  # (B, T, C)
    return lp, lengths, [s.label for s in samples]


def _accuracy(texts, labels) -> float:
    return sum(t == y for t, y in zip(texts, labels)) / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    rec = load(args.model)
    cfg = from_dict(TrainConfig, rec.metadata["train_config"])
    fit, val = validation_split(cfg, args.data_root)
    lms = {o: AmountNgram.fit([fit.label(i) for i in range(len(fit))], rec.alphabet.symbols, order=o) for o in ORDERS}

    def run(lp, lengths, setting):
        if setting == "greedy":
            return [d.text for d in greedy_decode(lp, lengths, rec.alphabet)]
        order, weight = setting
        lm = lms[order] if order else None
        return [h[0].text for h in BeamSearchDecoder(rec.alphabet, BEAM, lm=lm, lm_weight=weight)(lp, lengths)]

    lp, lengths, labels = _log_probs(rec, val)
    settings = {"greedy": "greedy", f"beam{BEAM}": (0, 0.0)}
    settings.update({f"beam{BEAM}+{o}gram@{w}": (o, w) for o in ORDERS for w in WEIGHTS})
    val_acc = {name: _accuracy(run(lp, lengths, s), labels) for name, s in settings.items()}
    lm_only = {name: a for name, a in val_acc.items() if "gram" in name}
    best = max(lm_only, key=lambda name: (lm_only[name], -settings[name][1]))  # ties: the lighter prior
    test = open_dataset(cfg.validation, "test", args.data_root)
    tlp, tlen, tlabels = _log_probs(rec, test)
    test_acc = {name: _accuracy(run(tlp, tlen, settings[name]), tlabels) for name in ("greedy", f"beam{BEAM}", best)}
    print(json.dumps({
        "model": rec.metadata.get("path", rec.name), "fit_strings": len(fit), "beam": BEAM,
        "validation": {"n": len(labels), "accuracy": val_acc},
        "best_lm_on_validation": best, "helps_on_validation": lm_only[best] > max(val_acc["greedy"], val_acc[f"beam{BEAM}"]),
        "test": {"n": len(tlabels), "accuracy": test_acc},
    }, indent=1))


if __name__ == "__main__":
    main()
