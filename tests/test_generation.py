"""The generation loop: equal to transformers' generate, cached == uncached, sampling honours its options,
stops, bad input."""

import contextlib

import pytest
import torch

from helpers.generation import generate, stop_token_ids
from helpers.sampling import next_token_probs
from helpers.tokens import CourseNotice

PROMPT = "[CLS]今天天气真"


def reference_greedy(model, prompt_ids, n):
    out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         pad_token_id=0, eos_token_id=None)
    return out[0, len(prompt_ids):].tolist()


def test_greedy_equals_model_generate_tiny(tiny_gpt2):
    model, tok = tiny_gpt2
    result = generate(model, tok, PROMPT, max_new_tokens=15)
    assert result.prompt_ids == [101, 791, 1921, 1921, 3698, 4696]
    assert result.new_ids == reference_greedy(model, result.prompt_ids, 15)
    assert len(result.steps) == 15 and result.stopped_by == "max_new_tokens"


def test_greedy_equals_model_generate_on_the_stand_in(gpt2_base):
    model, tok = gpt2_base
    result = generate(model, tok, PROMPT, max_new_tokens=20)
    assert result.new_ids == reference_greedy(model, result.prompt_ids, 20)


def test_greedy_equals_model_generate_on_smollm2(smollm2):
    model, tok = smollm2
    result = generate(model, tok, "The capital of France is", max_new_tokens=12)
    assert result.new_ids == reference_greedy(model, result.prompt_ids, 12)
    assert "Paris" in result.text


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.9, "top_k": 40, "top_p": 0.9, "seed": 7}])
def test_cached_loop_equals_uncached_loop(tiny_gpt2, sampling):
    model, tok = tiny_gpt2
    cached = generate(model, tok, PROMPT, max_new_tokens=12, use_cache=True, **sampling)
    naive = generate(model, tok, PROMPT, max_new_tokens=12, use_cache=False, **sampling)
    assert cached.new_ids == naive.new_ids
    assert [s.prob for s in cached.steps] == pytest.approx([s.prob for s in naive.steps], abs=1e-5)


def test_cached_loop_equals_uncached_loop_on_smollm2(smollm2):
    model, tok = smollm2
    cached = generate(model, tok, "Once upon a time", max_new_tokens=8, use_cache=True)
    naive = generate(model, tok, "Once upon a time", max_new_tokens=8, use_cache=False)
    assert cached.new_ids == naive.new_ids


@torch.no_grad()
def test_trace_records_the_chosen_token_and_its_probability(tiny_gpt2):
    model, tok = tiny_gpt2
    result = generate(model, tok, PROMPT, max_new_tokens=3, top_n=4)
    ids = torch.tensor([result.prompt_ids])
    for step in result.steps:
        probs = torch.softmax(model(ids).logits[0, -1], dim=-1)
        assert step.id == int(probs.argmax())
        assert step.prob == pytest.approx(float(probs.max()), abs=1e-5)
        assert [c.id for c in step.top] == torch.topk(probs, 4).indices.tolist()
        assert step.top[0].id == step.id and step.token == tok.convert_ids_to_tokens(step.id)
        ids = torch.cat([ids, torch.tensor([[step.id]])], dim=1)


@torch.no_grad()
@pytest.mark.parametrize("options", [
    {"temperature": 1.0, "top_k": 5},
    {"temperature": 0.8, "top_p": 0.05},
    {"temperature": 1.5, "top_k": 40, "top_p": 0.5},
])
def test_sampled_tokens_come_from_the_filtered_distribution(tiny_gpt2, options):
    """Every sampled id is one the options allow, and the trace shows its probability under those options."""
    model, tok = tiny_gpt2  # untrained: its distribution is nearly flat, so an ignored filter shows at once
    result = generate(model, tok, PROMPT, max_new_tokens=12, seed=0, **options)
    greedy = generate(model, tok, PROMPT, max_new_tokens=12)
    ids = torch.tensor([result.prompt_ids])
    for step in result.steps:
        logits = model(ids).logits[0, -1]
        if "top_k" in options:  # independent of the sampling code: one of the k highest scores
            assert step.id in torch.topk(logits, options["top_k"]).indices.tolist()
        probs = next_token_probs(logits, options["temperature"], options.get("top_k"), options.get("top_p"))
        assert probs[step.id] > 0, f"step {step.index}: id {step.id} is outside the allowed set"
        if "top_p" in options:  # allowed ids: the smallest most-probable set reaching top_p (< 1/4 of the vocab)
            assert (probs > 0).sum() < len(tok) // 4
        assert step.prob == pytest.approx(float(probs[step.id]), abs=1e-6)
        assert [c.id for c in step.top] == torch.topk(probs, len(step.top)).indices.tolist()
        ids = torch.cat([ids, torch.tensor([[step.id]])], dim=1)
    assert result.new_ids != greedy.new_ids


@pytest.mark.parametrize("max_new_tokens", [0, 1, 63])
def test_max_new_tokens_boundaries(tiny_gpt2, max_new_tokens):
    model, tok = tiny_gpt2  # context 64: at most 63 new tokens, the prompt then keeps its last token only
    with pytest.warns(CourseNotice) if max_new_tokens == 63 else contextlib.nullcontext():
        result = generate(model, tok, PROMPT, max_new_tokens=max_new_tokens)
    assert len(result.new_ids) == len(result.steps) == max_new_tokens
    assert len(result.prompt_ids) == (1 if max_new_tokens == 63 else 6)
    assert result.stopped_by == "max_new_tokens"
    if max_new_tokens == 0:
        assert result.text == "" and result.ids == result.prompt_ids


@pytest.mark.parametrize("bad", [64, 65, True, 2.0, "5", None])
def test_max_new_tokens_must_be_an_int_below_the_context(tiny_gpt2, bad):
    model, tok = tiny_gpt2
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tok, PROMPT, max_new_tokens=bad)


def test_sampling_is_repeatable_with_a_seed_and_varies_without(tiny_gpt2):
    model, tok = tiny_gpt2
    runs = [generate(model, tok, PROMPT, 10, temperature=1.5, seed=s).new_ids for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_stop_token_ends_generation_and_is_kept(tiny_gpt2):
    model, tok = tiny_gpt2
    free = generate(model, tok, PROMPT, max_new_tokens=10)
    stop = free.steps[3].token  # make the 4th generated token a stop token
    result = generate(model, tok, PROMPT, max_new_tokens=10, stop_tokens=(stop,))
    first = next(i for i, s in enumerate(free.steps) if s.token == stop)
    assert result.new_ids == free.new_ids[: first + 1]
    assert result.stopped_by == "stop_token"


def test_stop_token_must_exist(bert_tokenizer):
    assert stop_token_ids(bert_tokenizer, ["[SEP]"]) == {102}
    with pytest.raises(ValueError, match="不在词表"):
        stop_token_ids(bert_tokenizer, ["<|im_end|>"])


def test_long_prompt_is_cut_from_the_left_with_a_notice(tiny_gpt2):
    model, tok = tiny_gpt2  # context 64
    prompt = "[CLS]" + "天" * 70 + "真"
    with pytest.warns(CourseNotice, match="截掉"):
        result = generate(model, tok, prompt, max_new_tokens=4)
    assert len(result.prompt_ids) == 60
    assert result.prompt_ids[-1] == 4696  # the end of the prompt is kept
    assert result.notices and "60" in result.notices[-1]


@pytest.mark.parametrize(
    "prompt, kwargs, fragment",
    [
        ("", {}, "为空"),
        ("   ", {}, "为空"),
        (PROMPT, {"max_new_tokens": -1}, "max_new_tokens"),
        (PROMPT, {"max_new_tokens": 64}, "上下文"),
        (PROMPT, {"temperature": -1}, "temperature"),
        (PROMPT, {"top_k": 0, "temperature": 1}, "top_k"),
        (PROMPT, {"top_p": 0, "temperature": 1}, "top_p"),
        (PROMPT, {"top_p": 1.2, "temperature": 1}, "top_p"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_gpt2, prompt, kwargs, fragment):
    model, tok = tiny_gpt2
    with pytest.raises(ValueError, match=fragment):
        generate(model, tok, prompt, **kwargs)


def test_unknown_characters_give_a_notice(tiny_gpt2):
    model, tok = tiny_gpt2
    with pytest.warns(CourseNotice, match="UNK"):
        result = generate(model, tok, "[CLS]他说“好”", max_new_tokens=1)
    assert 100 in result.prompt_ids
