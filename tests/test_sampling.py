"""softmax, temperature, top-k, top-p and the pick: exact values and properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.sampling import (
    check_sampling_args,
    next_token_probs,
    pick_next_token,
    softmax,
    top_k_filter,
    top_p_filter,
)

logit_vectors = st.lists(
    st.floats(min_value=-20, max_value=20, allow_nan=False, width=32), min_size=2, max_size=40
).map(lambda xs: torch.tensor(xs))


def test_softmax_matches_the_formula():
    logits = torch.tensor([2.0, 1.0, 0.1])
    expected = [math.exp(x) / sum(math.exp(y) for y in (2.0, 1.0, 0.1)) for x in (2.0, 1.0, 0.1)]
    assert softmax(logits).tolist() == pytest.approx(expected, abs=1e-6)


def test_softmax_is_stable_for_huge_scores():
    probs = softmax(torch.tensor([1000.0, 1000.0, -1000.0]))
    assert probs.tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([2.0, 1.0, 0.0])
    cold, warm = softmax(logits, 0.5), softmax(logits, 2.0)
    assert cold[0] > softmax(logits)[0] > warm[0]
    assert cold.sum().item() == pytest.approx(1.0) and warm.sum().item() == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(logit_vectors, st.floats(min_value=0.05, max_value=5))
def test_probabilities_sum_to_one(logits, temperature):
    assert softmax(logits, temperature).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_top_k_keeps_exactly_the_k_best():
    logits = torch.tensor([0.1, 3.0, 2.0, -1.0, 5.0])
    kept = torch.isfinite(top_k_filter(logits, 2)).nonzero().flatten().tolist()
    assert kept == [1, 4]


@settings(max_examples=60, deadline=None)
@given(logit_vectors, st.integers(min_value=1, max_value=50))
def test_top_k_keeps_the_k_highest(logits, k):
    kept = torch.isfinite(top_k_filter(logits, k)).tolist()
    scores = logits.tolist()
    # Independent definition: a token is kept iff fewer than k scores are strictly greater than its own.
    expected = [sum(other > mine for other in scores) < k for mine in scores]
    assert kept == expected
    assert sum(kept) >= min(k, len(scores))  # ties at the k-th score may add more


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = lambda p: torch.isfinite(top_p_filter(logits, p)).nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.5) == [0]
    assert kept(0.6) == [0, 1]
    assert kept(0.8) == [0, 1]
    assert kept(0.81) == [0, 1, 2]
    assert kept(1.0) == [0, 1, 2, 3]
    assert kept(0.01) == [0]


@settings(max_examples=60, deadline=None)
@given(logit_vectors, st.floats(min_value=0.01, max_value=1.0))
def test_top_p_kept_mass_reaches_p_and_is_minimal(logits, p):
    probs = softmax(logits)
    kept = torch.isfinite(top_p_filter(logits, p))
    kept_mass = probs[kept].sum().item()
    assert kept_mass >= p - 1e-5 or kept.all()
    # minimal: dropping the least probable kept token falls below p
    if kept.sum() > 1:
        smallest = probs[kept].min().item()
        assert kept_mass - smallest < p + 1e-5
    # every kept token is at least as probable as every dropped one
    if (~kept).any():
        assert probs[kept].min() >= probs[~kept].max()


def test_next_token_probs_renormalises_the_survivors():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    probs = next_token_probs(logits, temperature=1.0, top_k=2)
    assert probs.tolist() == pytest.approx([0.625, 0.375, 0.0, 0.0], abs=1e-6)


def test_greedy_pick_is_the_argmax_and_sampling_is_seeded():
    logits = torch.tensor([0.0, 4.0, 3.9, -2.0])
    assert pick_next_token(logits) == 1
    draws = lambda seed: [  # noqa: E731
        pick_next_token(logits, 1.0, generator=generator) for generator in [torch.Generator().manual_seed(seed)]
        for _ in range(20)
    ]
    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


def softmax_by_hand(scores: list[float]) -> list[float]:
    """exp(x) / sum(exp(y)), in plain Python (independent of the code under test); -inf gives 0."""
    top = max(scores)
    exps = [math.exp(x - top) if x != float("-inf") else 0.0 for x in scores]
    return [e / sum(exps) for e in exps]


DRAWS = 10_000
# With n = 10,000 draws a frequency has standard deviation sqrt(p(1-p)/n) <= 0.005; 0.02 is 4 of them, so a
# correct sampler fails with probability below 1e-4 per token (and the seed is fixed anyway), while a uniform
# sampler (0.2 each here) misses the largest probabilities by more than 0.3.
TOLERANCE = 0.02


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, None, None), (0.7, None, None), (1.5, 4, None),
                                                      (1.0, None, 0.9)])
def test_sampled_frequencies_match_the_distribution(temperature, top_k, top_p):
    logits = torch.tensor([3.0, 2.0, 1.0, 0.5, -1.0])
    expected = next_token_probs(logits, temperature, top_k, top_p).tolist()
    generator = torch.Generator().manual_seed(0)
    picks = [pick_next_token(logits, temperature, top_k, top_p, generator=generator) for _ in range(DRAWS)]
    frequencies = [picks.count(i) / DRAWS for i in range(len(logits))]
    assert frequencies == pytest.approx(expected, abs=TOLERANCE)
    assert all(f == 0 for f, p in zip(frequencies, expected) if p == 0)  # filtered tokens are never drawn
    if (top_k, top_p) == (None, None):  # and the distribution is the softmax of logits / T, by hand
        assert expected == pytest.approx(softmax_by_hand([x / temperature for x in logits.tolist()]), abs=1e-6)


def test_softmax_refuses_a_temperature_of_zero_or_below():
    for temperature in (0, 0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            softmax(torch.tensor([1.0, 2.0]), temperature)


def test_temperature_then_top_k_then_top_p():
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    # By hand: T = 2 gives scores 2, 1.5, 1, 0.5, 0; top-k 4 drops the last; softmax over the four left
    # is about 0.455, 0.276, 0.167, 0.102; top-p 0.8 keeps the smallest prefix reaching 0.8: 0.455 + 0.276 +
    # 0.167 = 0.898 (two tokens give only 0.731), so three tokens, renormalised.
    four = softmax_by_hand([2.0, 1.5, 1.0, 0.5])
    assert four[0] + four[1] < 0.8 <= four[0] + four[1] + four[2]
    three = [p / sum(four[:3]) for p in four[:3]]
    probs = next_token_probs(logits, temperature=2.0, top_k=4, top_p=0.8)
    assert probs.tolist() == pytest.approx(three + [0.0, 0.0], abs=1e-6)
    # The order matters: top-p on the T = 1 probabilities (0.644, 0.237, ...) would keep only two tokens.
    assert (next_token_probs(logits, temperature=1.0, top_k=4, top_p=0.8) > 0).sum() == 2


def test_top_k_one_is_greedy_even_when_sampling():
    logits = torch.tensor([0.0, 4.0, 3.9, -2.0])
    picks = {pick_next_token(logits, 2.0, top_k=1, generator=torch.Generator().manual_seed(s)) for s in range(50)}
    assert picks == {1}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_sampling_settings_name_the_fix(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        check_sampling_args(**kwargs)
