"""Against greedy repetition (复读机): repetition_penalty and no_repeat_ngram_size in helpers.generate.

Greedy with either option must give the same tokens as transformers' `model.generate` with the same option,
and the score transformations must equal transformers' own logits processors.
"""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

from helpers.generation import generate
from helpers.sampling import check_repetition_args, no_repeat_ngram_filter, repetition_penalty_filter

OPTIONS = [
    {"repetition_penalty": 1.2},
    {"repetition_penalty": 0.8},  # below 1 rewards repetition
    {"no_repeat_ngram_size": 3},
    {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2},
]


def reference_greedy(model, prompt_ids: list[int], n: int, **options) -> list[int]:
    out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         pad_token_id=0, eos_token_id=None, **options)
    return out[0, len(prompt_ids):].tolist()


def distinct_2(ids: list[int]) -> float:
    pairs = list(zip(ids, ids[1:]))
    return len(set(pairs)) / len(pairs)


@pytest.mark.parametrize("standin", ["gpt2_base", "gpt2_chat"])
@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_greedy_with_option_equals_model_generate(request, standin, use_cache, options) -> None:
    model, tokenizer = request.getfixturevalue(standin)
    result = generate(model, tokenizer, "[CLS]今天天气真", max_new_tokens=30, use_cache=use_cache, **options)
    assert result.new_ids == reference_greedy(model, result.prompt_ids, 30, **options)


def test_the_options_change_the_greedy_text(gpt2_base) -> None:
    model, tokenizer = gpt2_base
    plain = generate(model, tokenizer, "[CLS]今天天气真", max_new_tokens=80)
    penalised = generate(model, tokenizer, "[CLS]今天天气真", max_new_tokens=80, repetition_penalty=1.2)
    no_repeat = generate(model, tokenizer, "[CLS]今天天气真", max_new_tokens=80, no_repeat_ngram_size=3)
    # the base stand-in's card: 80 greedy tokens end in "我一起去吗？" three times (lesson 04 shows it)
    assert plain.text.count("我一起去吗？") == 3
    assert round(distinct_2(plain.new_ids), 3) == 0.557
    assert round(distinct_2(penalised.new_ids), 3) == 0.924
    assert penalised.text.count("我一起去吗？") == 0
    trigrams = list(zip(no_repeat.ids, no_repeat.ids[1:], no_repeat.ids[2:]))
    assert len(set(trigrams)) == len(trigrams)  # no three consecutive tokens occur twice


@pytest.mark.parametrize("penalty", [0.5, 1.0, 1.2, 3.0])
def test_penalty_equals_transformers_processor(penalty) -> None:
    torch.manual_seed(0)
    logits = torch.randn(50) * 3
    previous = [3, 7, 7, 12, 40, 3, 0]
    expected = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([previous]), logits[None].clone())[0]
    assert torch.equal(repetition_penalty_filter(logits, previous, penalty), expected)


def test_penalty_by_hand() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    penalised = repetition_penalty_filter(logits, [0, 1, 1], 2.0)
    # positive divided, negative multiplied, once per token however often it occurred; others untouched
    assert penalised.tolist() == [1.0, -4.0, 1.0, 0.5]
    assert logits.tolist() == [2.0, -2.0, 1.0, 0.5]  # the input is not modified


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_repeat_ngram_equals_transformers_processor(n) -> None:
    torch.manual_seed(1)
    logits = torch.randn(10)
    previous = [1, 2, 3, 1, 2, 4, 1, 2]
    expected = NoRepeatNGramLogitsProcessor(n)(torch.tensor([previous]), logits[None].clone())[0]
    assert torch.equal(no_repeat_ngram_filter(logits, previous, n), expected)


def test_no_repeat_ngram_by_hand() -> None:
    logits = torch.zeros(6)
    # the text ends with 1, 2; "1 2 3" and "1 2 4" occurred, so 3 and 4 may not follow now
    banned = no_repeat_ngram_filter(logits, [1, 2, 3, 1, 2, 4, 1, 2], 3)
    assert torch.isinf(banned).tolist() == [False, False, False, True, True, False]
    assert torch.equal(no_repeat_ngram_filter(logits, [1, 2, 3], 0), logits)


@pytest.mark.parametrize("bad", [0, -1.2, float("nan"), "1.2", True, None])
def test_bad_penalty_is_refused(tiny_gpt2, bad) -> None:
    model, tokenizer = tiny_gpt2
    with pytest.raises(ValueError, match="repetition_penalty 必须是 > 0 的数"):
        generate(model, tokenizer, "[CLS]今天", max_new_tokens=2, repetition_penalty=bad)


@pytest.mark.parametrize("bad", [-1, 2.0, "3", True, None])
def test_bad_ngram_size_is_refused(tiny_gpt2, bad) -> None:
    model, tokenizer = tiny_gpt2
    with pytest.raises(ValueError, match="no_repeat_ngram_size 必须是 >= 0 的整数"):
        generate(model, tokenizer, "[CLS]今天", max_new_tokens=2, no_repeat_ngram_size=bad)


def test_good_values_pass() -> None:
    check_repetition_args(1, 0)
    check_repetition_args(1.2, 3)
