"""Chat as text generation: build the prompt from the history, generate, cut out the reply.

Two formats:
- the Chinese dialogue GPT2 writes a conversation as `[CLS]A说的[SEP]B说的[SEP]A说的[SEP]...`;
- SmolLM2 (like ChatGPT-style models) uses a chat template with `<|im_start|>` / `<|im_end|>`.

Special tokens are handled as text ("[CLS]", "[SEP]") and turned into ids by the loaded tokenizer, so the same
code serves the stand-in (uer vocabulary: [CLS]=101, [SEP]=102) and the real chat model, whose own vocabulary
(13317 lines according to its project's public code) gives them other ids.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .generation import Generation, context_length, generate, stop_token_ids
from .registry import get_spec
from .tokens import CourseNotice, decode, encode

SEP = "[SEP]"
CLS = "[CLS]"


def split_turns(text: str) -> list[str]:
    """Split generated text at [SEP] into turns A, B, A, B, ... (the leading [CLS] and empty pieces dropped)."""
    text = text.replace(CLS, "")
    return [turn.strip() for turn in text.split(SEP) if turn.strip()]


def first_reply(text: str) -> str:
    """What a chat product shows: the text between the prompt's end and the next [SEP]."""
    return text.split(SEP, 1)[0].strip()


def sep_prompt(history: list[str]) -> str:
    """The GPT2 dialogue prompt for a history of turns (user first): `[CLS]t1[SEP]t2[SEP]...[SEP]`."""
    return CLS + "".join(turn + SEP for turn in history)


def template_prompt(tokenizer: PreTrainedTokenizerBase, history: list[str], system: str | None = None) -> str:
    """The chat-template prompt for a history of turns (user first), ready for the assistant's reply."""
    messages = [{"role": "system", "content": system}] if system else []
    for index, turn in enumerate(history):
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": turn})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def newest_turns_that_fit(tokenizer: PreTrainedTokenizerBase, history: list[str], max_tokens: int,
                          prompt: Callable[[list[str]], str] = sep_prompt) -> list[str]:
    """The newest turns whose prompt (`prompt(turns)`) has at most `max_tokens` tokens.

    Older turns leave in pairs (a user's turn and its reply), so the kept history still starts with the user.
    ValueError when even the newest turn alone does not fit.
    """
    start = 0
    while len(encode(tokenizer, prompt(history[start:]))) > max_tokens:
        if start >= len(history) - 1:
            raise ValueError(f"the newest turn alone needs more than {max_tokens} tokens")
        start += 2
    return list(history[start:])


def uses_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer brings its own chat template (SmolLM2), False for the [SEP] format."""
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass
class ChatSession:
    """A multi-turn chat that keeps its history, for either prompt format."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    system: str | None = None
    history: list[str] = field(default_factory=list)
    last: Generation | None = None
    first_seen: int = 0  # index of the oldest turn still in the prompt (older ones no longer fit the context)

    def format(self, turns: list[str]) -> str:
        """The prompt for these turns (user first), in the model's own format."""
        if uses_chat_template(self.tokenizer):
            return template_prompt(self.tokenizer, turns, self.system)
        return sep_prompt(turns)

    def prompt(self) -> str:
        """The prompt the model sees for the current history (from `first_seen` on)."""
        return self.format(self.history[self.first_seen:])

    def fit_context(self, max_new_tokens: int) -> None:
        """Leave out the oldest turns, a user turn and its reply at a time, until prompt + reply fit the context.

        The prompt keeps its start ([CLS] or the system prompt): cutting the token list from the left would drop it
        and could cut a turn in half. A newest turn that is too long on its own is refused with a clear error.
        """
        room = context_length(self.model) - max_new_tokens
        if room <= 0:  # generate() explains that max_new_tokens is too large
            return
        turns = self.history[self.first_seen:]
        try:
            kept = newest_turns_that_fit(self.tokenizer, turns, room, self.format)
        except ValueError:
            too_long = self.history.pop()
            raise ValueError(
                f"这一句有 {len(encode(self.tokenizer, too_long))} 个词元，放不进上下文（最多约 {room} 个）："
                "请分成几句短一点的话。 (This turn alone does not fit the context; split it into shorter turns.)"
            ) from None
        dropped = len(turns) - len(kept)
        if dropped:
            self.first_seen += dropped
            warnings.warn(
                f"对话太长：最早的 {dropped} 句话已不再放进提示词（上下文长度 {context_length(self.model)}）。"
                f" (The oldest {dropped} turns no longer fit the context and were left out of the prompt.)",
                CourseNotice,
                stacklevel=3,
            )

    def say(self, user_text: str, max_new_tokens: int = 40, **sampling) -> str:
        """Add the user's turn, generate until the stop token, add and return the reply."""
        if not user_text or not user_text.strip():
            raise ValueError("请输入一句话再发送。 (Say something first.)")
        self.history.append(user_text.strip())
        self.fit_context(max_new_tokens)
        stop_tokens = get_spec(self.name).stop_tokens
        self.last = generate(
            self.model, self.tokenizer, self.prompt(), max_new_tokens, stop_tokens=stop_tokens, **sampling
        )
        stops = stop_token_ids(self.tokenizer, stop_tokens)
        reply_ids = [i for i in self.last.new_ids if i not in stops]
        reply = decode(self.tokenizer, reply_ids, skip_special_tokens=True).strip()
        self.history.append(reply)
        return reply

