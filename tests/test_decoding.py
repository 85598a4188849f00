"""Greedy and beam-search CTC decoding on hand-built log-probabilities (plus the alphabet and the
string metrics the decoders are scored with)."""

from __future__ import annotations

import math

import pytest
import torch

from strings.alphabet import BLANK, DIGITS, Alphabet
from strings.decode.ctc import BeamSearchDecoder, greedy_decode
from strings.metrics import StringMetrics, edit_distance

A = Alphabet(DIGITS)
C = A.num_classes  # 11: blank + 10 digits; digit d is class d + 1
B = BLANK


def cls(d: str) -> int:
    return int(d) + 1


def peaked(path: list[int], peak: float = 0.9, seed: int = 0) -> torch.Tensor:
    """(T, C) log-probs: ``peak`` on the path's class at each frame, the rest spread unevenly
    (exact ties make the flashlight beam search pick among equals arbitrarily)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.empty(len(path), C, dtype=torch.float64)
    for t, k in enumerate(path):
        rest = 1.0 + torch.rand(C, generator=g, dtype=torch.float64)
        rest[k] = 0.0
        p[t] = rest / rest.sum() * (1.0 - peak)
        p[t, k] = peak
    return p.log().float()


def from_probs(rows: list[dict[int, float]]) -> torch.Tensor:
    """(T, C) log-probs from explicit per-frame probabilities; unlisted classes share the rest."""
    out = torch.zeros(len(rows), C, dtype=torch.float64)
    for t, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (C - len(row))
        out[t] = rest
        for k, v in row.items():
            out[t, k] = v
    return out.log().float()


def greedy1(lp: torch.Tensor, length: int | None = None):
    return greedy_decode(lp[None], torch.tensor([lp.shape[0] if length is None else length]), A)[0]


def ctc_probability(lp: torch.Tensor, text: str) -> float:
    """Exact P(text) summed over all CTC paths, from PyTorch's forward algorithm."""
    target = torch.tensor(A.encode(text), dtype=torch.long)
    loss = torch.nn.functional.ctc_loss(
        lp.double()[:, None], target[None], torch.tensor([lp.shape[0]]), torch.tensor([len(text)]),
        blank=0, reduction="none", zero_infinity=False,
    )
    return float(torch.exp(-loss[0]))


# --------------------------------------------------------------------------- alphabet / metrics


def test_alphabet():
    assert A.encode("907") == [10, 1, 8] and A.decode([10, 1, 8]) == "907"
    assert A.num_classes == 11 and A.blank == 0
    with pytest.raises(ValueError, match="'x'"):
        A.encode("1x")
    with pytest.raises(ValueError):
        Alphabet("")
    with pytest.raises(ValueError):
        Alphabet("0120")
    assert A.is_valid("0123") and not A.is_valid("1.5")


def test_metrics():
    assert edit_distance("1500", "150") == 1
    assert edit_distance("", "12") == 2 and edit_distance("123", "123") == 0
    assert edit_distance("1234", "2143") == 3
    m = StringMetrics()
    m.update("1500", "1500", "a")
    m.update("1500", "150", "b", 0.4)
    m.update("12", "21", "c")
    assert m.summary() == {"n": 3, "accuracy": pytest.approx(1 / 3), "cer": pytest.approx(3 / 10)}
    assert [x[0] for x in m.misses] == ["b", "c"] and m.misses[0] == ("b", "1500", "150", 0.4)
    m.reset()
    assert m.summary() == {"n": 0, "accuracy": 0.0, "cer": 0.0} and not m.misses


# --------------------------------------------------------------------------- greedy


@pytest.mark.parametrize(
    "path, text",
    [
        ([cls("1"), cls("1"), cls("1")], "1"),
        ([B, cls("1"), B, cls("2"), B], "12"),
        ([cls("1"), B, cls("1")], "11"),
        ([cls("1"), cls("1"), B, B, cls("1"), cls("1")], "11"),
        ([cls("5"), cls("0"), B, cls("0")], "500"),
        ([cls("5"), cls("0"), cls("0"), cls("0")], "50"),
        ([B, B, B], ""),
        ([cls("9"), cls("0"), cls("2"), cls("1"), cls("0")], "90210"),
    ],
)
def test_greedy_collapse(path, text):
    assert greedy1(peaked(path)).text == text


def test_greedy_respects_lengths():
    path = [cls("4"), B, cls("2"), cls("7"), cls("7"), cls("3")]
    lp = torch.stack([peaked(path), peaked(path)])
    out = greedy_decode(lp, torch.tensor([3, 6]), A)
    assert [d.text for d in out] == ["42", "4273"]
    # The confidence of the short item covers its 3 frames only.
    assert out[0].confidence == pytest.approx(0.9**3, rel=1e-5)
    assert all(e <= 3 for _, e in out[0].spans)
    assert greedy1(peaked(path), length=1).text == "4"


def test_greedy_confidence_is_product_of_frame_maxima():
    torch.manual_seed(0)
    lp = torch.randn(2, 9, C).mul(2.0).log_softmax(-1)
    out = greedy_decode(lp, torch.tensor([9, 5]), A)
    for b, n in ((0, 9), (1, 5)):
        expected = float(lp[b, :n].exp().max(-1).values.prod())
        assert out[b].confidence == pytest.approx(expected, rel=1e-5)


def test_greedy_digit_confidences_and_spans():
    lp = from_probs([
        {cls("1"): 0.6}, {cls("1"): 0.8}, {B: 0.7}, {cls("2"): 0.55}, {B: 0.9}, {cls("2"): 0.95}, {cls("2"): 0.5},
    ])
    d = greedy1(lp)
    assert d.text == "122"
    assert d.spans == ((0, 2), (3, 4), (5, 7))
    assert d.char_confidences == pytest.approx((0.8, 0.55, 0.95), rel=1e-5)
    assert d.confidence == pytest.approx(0.6 * 0.8 * 0.7 * 0.55 * 0.9 * 0.95 * 0.5, rel=1e-5)


def test_greedy_empty_reading_has_no_confidence():
    """A near-certain blank path (0.99^2 here) still gives the empty reading confidence 0."""
    from strings.decode.ctc import EMPTY_CONFIDENCE

    d = greedy1(from_probs([{B: 0.99}, {B: 0.99}]))
    assert d.text == "" and d.spans == () and d.char_confidences == ()
    assert d.confidence == EMPTY_CONFIDENCE == 0.0
    one = greedy1(from_probs([{B: 0.7}, {cls("1"): 0.6}]))
    assert one.text == "1" and one.confidence == pytest.approx(0.42, rel=1e-5)  # a reading keeps its path probability


# --------------------------------------------------------------------------- beam search


@pytest.fixture(scope="module")
def beam():
    return BeamSearchDecoder(A, beam_size=10, nbest=3)


def random_peaked_batch(seed: int, n: int = 6, t: int = 14, peak: float = 0.93) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        path = torch.randint(0, C, (t,), generator=g)
        path[torch.rand(t, generator=g) < 0.4] = B
        items.append(peaked(path.tolist(), peak, seed=len(items)))
    lengths = torch.randint(t // 2, t + 1, (n,), generator=g)
    return torch.stack(items), lengths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_agrees_with_greedy_on_peaked(beam, seed):
    lp, lengths = random_peaked_batch(seed)
    greedy = greedy_decode(lp, lengths, A)
    for g, hyps in zip(greedy, beam(lp, lengths)):
        assert hyps[0].text == g.text
        # P(string) sums every path, so it is at least the best path's probability.
        assert hyps[0].confidence >= g.confidence * (1 - 1e-4)


def test_beam_spans_and_digit_confidences_match_greedy_on_peaked(beam):
    """Each beam digit sits on the first frame of the span greedy finds for it."""
    lp = peaked([cls("1"), B, B, cls("2"), cls("2"), B, cls("1"), cls("1"), B])
    lengths = torch.tensor([9])
    g = greedy_decode(lp[None], lengths, A)[0]
    h = beam(lp[None], lengths)[0][0]
    assert g.text == h.text == "121"
    assert [s for s, _ in h.spans] == [s for s, _ in g.spans] == [0, 3, 6]
    assert h.char_confidences == pytest.approx(g.char_confidences, rel=1e-4)


def test_beam_nbest_sorted_and_distinct(beam):
    lp, lengths = random_peaked_batch(5, n=4, peak=0.6)
    for hyps in beam(lp, lengths):
        assert len(hyps) == 3
        scores = [h.confidence for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({h.text for h in hyps}) == 3
        assert all(0.0 < s <= 1.0 + 1e-6 for s in scores)


def test_beam_respects_lengths(beam):
    lp = peaked([cls("3"), B, cls("8"), cls("8"), cls("6"), cls("6")])
    out = beam(torch.stack([lp, lp]), torch.tensor([2, 6]))
    assert [h[0].text for h in out] == ["3", "386"]
    # Only the 2 valid frames count (pruning may drop a little of the string's probability).
    exact = ctc_probability(lp[:2], "3")
    assert 0.97 * exact <= out[0][0].confidence <= exact * 1.001


def test_beam_is_deterministic(beam):
    lp, lengths = random_peaked_batch(7, n=3, peak=0.7)
    first = beam(lp, lengths)
    for _ in range(20):
        assert beam(lp, lengths) == first


def test_beam_finds_most_probable_string_where_greedy_does_not(beam):
    """Two frames, each p(blank)=0.40, p('1')=0.35, p('2')=0.25, the rest ~0 (1e-6 each).

    Best path (greedy): blank blank -> ""  with probability 0.40^2 = 0.16.
    But P("1") = p(1,1) + p(1,-) + p(-,1) = 0.35^2 + 2*0.35*0.40 = 0.4025,
        P("2") = 0.25^2 + 2*0.25*0.40 = 0.2625,
        P("")  = 0.16, P("12") = P("21") = 0.35*0.25 = 0.0875 (sum = 1).
    So beam search must rank "1" > "2" > "" with those exact probabilities (the empty reading's
    *confidence* is 0 by definition: nothing read is never accepted ahead of a reading).
    """
    eps = 1e-6
    rows = [{B: 0.40 - 4 * eps, cls("1"): 0.35 - 2 * eps, cls("2"): 0.25 - 2 * eps}] * 2
    lp = from_probs(rows)
    g = greedy1(lp)
    assert g.text == "" and g.confidence == 0.0
    assert ctc_probability(lp, "") == pytest.approx(0.16, rel=1e-3)
    hyps = beam(lp[None], torch.tensor([2]))[0]
    assert [h.text for h in hyps] == ["1", "2", ""]
    assert [h.confidence for h in hyps] == pytest.approx([0.4025, 0.2625, 0.0], rel=1e-3)
    for h in hyps[:2]:  # and the readings' are the exact CTC probabilities
        assert h.confidence == pytest.approx(ctc_probability(lp, h.text), rel=1e-3)


def test_beam_scores_bound_string_probabilities_on_random_input(beam):
    """On a flat random distribution the beam prunes paths, so a score is a lower bound of the
    string's probability; the best reading is still the most probable of the candidates."""
    torch.manual_seed(3)
    lp = torch.randn(5, C).log_softmax(-1)
    hyps = beam(lp[None], torch.tensor([5]))[0]
    exact = {h.text: ctc_probability(lp, h.text) for h in hyps}
    for h in hyps:
        assert 0.0 < h.confidence <= exact[h.text] * (1 + 1e-3)
    g = greedy1(lp).text
    exact[g] = ctc_probability(lp, g)
    assert hyps[0].text == max(exact, key=exact.get)


def test_beam_nbest_one():
    dec = BeamSearchDecoder(A, beam_size=5, nbest=1)
    out = dec(peaked([cls("7"), B, cls("7")])[None], torch.tensor([3]))
    assert len(out[0]) == 1 and out[0][0].text == "77"
    assert math.isfinite(out[0][0].confidence)
