"""Turning the model's scores (logits) into the next token: small pure functions.

Order of operations, the same as in transformers' `generate`: temperature, then top-k, then top-p.
A temperature of 0 means greedy: always the most probable token.
"""

from __future__ import annotations

import math

import torch


def check_sampling_args(temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise ValueError, with the fix in Chinese and English, for settings that make no sense."""
    if temperature is None or math.isnan(temperature) or temperature < 0:
        raise ValueError(
            f"temperature 必须 >= 0（0 表示贪心选择），收到 {temperature}。"
            f" (temperature must be >= 0; use 0 for greedy.)"
        )
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(
            f"top_k 必须是 >= 1 的整数，或设为 None 表示不限制，收到 {top_k}。"
            f" (top_k must be an integer >= 1, or None.)"
        )
    if top_p is not None and not (0 < top_p <= 1):
        raise ValueError(
            f"top_p 必须在 (0, 1] 之间，收到 {top_p}。1 表示不限制。"
            f" (top_p must be in (0, 1]; 1 keeps every token.)"
        )


def softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Probabilities from scores: exp(score / T), normalised to sum to 1 (computed stably)."""
    if temperature <= 0:
        raise ValueError("softmax 的 temperature 必须 > 0。(temperature must be > 0 here.)")
    scaled = logits.float() / temperature
    return torch.softmax(scaled, dim=-1)  # exp(s - max) / sum(exp(s - max)) in one fused, stable step


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest scores, set the rest to -inf (ties at the k-th score are kept)."""
    k = min(k, logits.size(-1))
    kth_best = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_best, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose probabilities add up to at least p.

    A token is kept when the probability mass of the tokens ranked above it is still below p,
    so the most probable token is always kept.
    """
    probs = softmax(logits)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    keep_sorted = mass_before < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def next_token_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """The distribution the next token is drawn from, after temperature, top-k and top-p.

    With temperature 0 (greedy) this returns the plain softmax, whose argmax is the greedy pick.
    """
    check_sampling_args(temperature, top_k, top_p)
    scores = logits.float() / temperature if temperature > 0 else logits.float()
    if top_k is not None:
        scores = top_k_filter(scores, top_k)
    if top_p is not None and top_p < 1:
        scores = top_p_filter(scores, top_p)
    return softmax(scores)


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """One random token id, drawn in proportion to `probs` (like drawing a ball from a bag)."""
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


def pick_next_token(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Choose the next token id from a 1-D vector of scores: argmax when greedy, else a random draw."""
    if temperature == 0:
        check_sampling_args(temperature, top_k, top_p)
        return int(torch.argmax(logits))
    return draw(next_token_probs(logits, temperature, top_k, top_p), generator)


# ---------------------------------------------------------------------------------------------
# Against repetition (复读机): change the scores of tokens that would repeat what is already there
# ---------------------------------------------------------------------------------------------

def check_repetition_args(repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> None:
    """Raise ValueError, with the fix in Chinese and English, for repetition settings that make no sense."""
    if (isinstance(repetition_penalty, bool) or not isinstance(repetition_penalty, (int, float))
            or math.isnan(repetition_penalty) or repetition_penalty <= 0):
        raise ValueError(
            f"repetition_penalty 必须是 > 0 的数，收到 {repetition_penalty!r}：1.0 表示不惩罚，常用 1.2 左右。"
            f" (repetition_penalty must be a number > 0; 1.0 means no penalty.)"
        )
    if isinstance(no_repeat_ngram_size, bool) or not isinstance(no_repeat_ngram_size, int) or no_repeat_ngram_size < 0:
        raise ValueError(
            f"no_repeat_ngram_size 必须是 >= 0 的整数，收到 {no_repeat_ngram_size!r}：0 表示不限制，"
            f"3 表示同样的 3 个连续词元不许出现第二次。 (no_repeat_ngram_size must be an integer >= 0; 0 is off.)"
        )


def repetition_penalty_filter(logits: torch.Tensor, previous_ids: list[int], penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty (Keskar et al., 2019), as transformers applies it.

    Every token already in the sequence (prompt included) is made less likely, once, however often it occurred:
    a positive score is divided by `penalty`, a negative one multiplied by it (dividing a negative score
    would raise it). penalty=1.0 changes nothing.
    """
    if penalty == 1.0 or not previous_ids:
        return logits
    seen = torch.tensor(sorted(set(previous_ids)))
    scores = logits[seen]
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return logits.index_copy(-1, seen, penalised)


def no_repeat_ngram_filter(logits: torch.Tensor, previous_ids: list[int], n: int) -> torch.Tensor:
    """Forbid (-inf) every token that would complete an n-token sequence already in `previous_ids`.

    The last n-1 tokens are the start of the n-gram being written; every earlier place where those same n-1
    tokens occur bans the token that followed them there. n=0 changes nothing.
    """
    if n == 0 or len(previous_ids) < n:
        return logits
    start = previous_ids[len(previous_ids) - n + 1:]  # the last n-1 tokens
    banned = {previous_ids[i + n - 1] for i in range(len(previous_ids) - n + 1)
              if previous_ids[i:i + n - 1] == start}
    if not banned:
        return logits
    return logits.index_fill(-1, torch.tensor(sorted(banned)), float("-inf"))
