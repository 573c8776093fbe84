"""The generation loop: predict one token, append it, repeat.

One step = forward pass -> scores (logits) of the last position -> probabilities -> pick a token.
With `use_cache=False` every step feeds the whole sequence again, exactly like the seed lesson's loop.
With `use_cache=True` the model keeps the keys and values of earlier tokens (the KV cache), so each
step only feeds the one new token. Both give the same tokens.

The loop never prints: it returns a `Generation` whose `steps` the notebooks print and plot.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .sampling import (check_repetition_args, check_sampling_args, draw, next_token_probs, no_repeat_ngram_filter,
                       repetition_penalty_filter)
from .tokens import CourseNotice, decode, encode, warn_unknown


@dataclass(frozen=True)
class Candidate:
    """A token the model considered at one step, with its probability."""

    token: str
    id: int
    prob: float


@dataclass(frozen=True)
class Step:
    """What happened at one step of the loop."""

    index: int
    id: int
    token: str
    prob: float
    top: list[Candidate]


@dataclass
class Generation:
    """The result of `generate`: the ids, the text and the per-step trace."""

    prompt_ids: list[int]
    new_ids: list[int]
    text: str
    steps: list[Step]
    stopped_by: str
    notices: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        """Prompt and generated ids together."""
        return self.prompt_ids + self.new_ids


def context_length(model: PreTrainedModel) -> int:
    """How many positions the model can see at once."""
    return int(model.config.max_position_embeddings)


def prepare_prompt(
    tokenizer: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int, context: int
) -> tuple[list[int], list[str]]:
    """Encode the prompt; check it; cut it from the left when prompt + new tokens exceed the context."""
    if not prompt or not prompt.strip():
        raise ValueError("提示词 (prompt) 为空：请输入至少一个字，例如 '[CLS]今天天气真'。 (The prompt is empty.)")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens 必须是 >= 0 的整数，收到 {max_new_tokens!r}。 (must be an integer >= 0)")
    if max_new_tokens >= context:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} 超过了模型的上下文长度 {context}：请设得更小。"
            f" (max_new_tokens must be smaller than the context length {context}.)"
        )
    notices = []
    unknown = warn_unknown(tokenizer, prompt)
    if unknown:
        notices.append(f"[UNK]: {''.join(unknown)}")
    ids = encode(tokenizer, prompt)
    room = context - max_new_tokens
    if len(ids) > room:
        message = (
            f"提示词有 {len(ids)} 个词元，加上要生成的 {max_new_tokens} 个超过了上下文长度 {context}，"
            f"已从左边截掉最早的 {len(ids) - room} 个。 (Prompt truncated from the left to {room} tokens.)"
        )
        warnings.warn(message, CourseNotice, stacklevel=3)
        notices.append(message)
        ids = ids[-room:]
    return ids, notices


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, stop_tokens: tuple[str, ...] | list[str]) -> set[int]:
    """Ids of the stop tokens (e.g. '[SEP]', '<|im_end|>'); unknown ones raise an error."""
    ids = set()
    for token in stop_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(f"停止符 {token!r} 不在词表里。 (Stop token {token!r} is not in the vocabulary.)")
        ids.add(token_id)
    return ids


def top_candidates(tokenizer: PreTrainedTokenizerBase, probs: torch.Tensor, n: int) -> list[Candidate]:
    """The n most probable tokens of a probability vector."""
    values, ids = torch.topk(probs, min(n, probs.numel()))
    ids, values = ids.tolist(), values.tolist()  # plain Python numbers: cheaper than one tensor per candidate
    return [Candidate(t, i, v) for t, i, v in zip(tokenizer.convert_ids_to_tokens(ids), ids, values)]


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int = 20,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop_tokens: tuple[str, ...] | list[str] = (),
    use_cache: bool = True,
    top_n: int = 5,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
) -> Generation:
    """Generate up to `max_new_tokens` tokens after `prompt`, one at a time.

    temperature=0 (the default) is greedy and gives the same tokens as `model.generate(do_sample=False)`.
    A positive temperature samples, optionally restricted by top_k / top_p; `seed` makes it repeatable.
    Generation ends early when a token of `stop_tokens` is produced (it is kept in `new_ids`).
    Against repetition: `repetition_penalty` > 1 lowers the scores of tokens already in the text, and
    `no_repeat_ngram_size=n` forbids any n consecutive tokens to occur twice (both as in `model.generate`).
    """
    check_sampling_args(temperature, top_k, top_p)
    check_repetition_args(repetition_penalty, no_repeat_ngram_size)
    prompt_ids, notices = prepare_prompt(tokenizer, prompt, max_new_tokens, context_length(model))
    stops = stop_token_ids(tokenizer, stop_tokens)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    device = model.device

    ids = list(prompt_ids)  # prompt and generated tokens so far
    past = None
    steps: list[Step] = []
    stopped_by = "max_new_tokens"
    for index in range(max_new_tokens):
        fed = ids[-1:] if past is not None else ids  # with a KV cache, only the newest token
        output = model(input_ids=torch.tensor([fed], device=device), cache=past, use_cache=use_cache,
                       logits_to_keep=1)  # scores for the last position only: the only ones the step needs
        past = output.cache if use_cache else None
        logits = output.logits[0, -1].float().cpu()
        logits = repetition_penalty_filter(logits, ids, repetition_penalty)
        logits = no_repeat_ngram_filter(logits, ids, no_repeat_ngram_size)
        probs = next_token_probs(logits, temperature, top_k, top_p)  # computed once, shown in the trace
        next_id = int(torch.argmax(logits)) if temperature == 0 else draw(probs, generator)
        token = tokenizer.convert_ids_to_tokens(next_id)
        steps.append(Step(index, next_id, token, float(probs[next_id]), top_candidates(tokenizer, probs, top_n)))
        ids.append(next_id)
        if next_id in stops:
            stopped_by = "stop_token"
            break

    new_ids = [step.id for step in steps]
    return Generation(prompt_ids, new_ids, decode(tokenizer, new_ids), steps, stopped_by, notices)
