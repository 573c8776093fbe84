"""Training a GPT: batches with shifted labels, the next-token loss, one optimisation step, evaluation.

Lesson 09 and `training/train_standin.py` (which built the course's stand-in models) share this code:

    batch = collate(samples)                  # right-padded ids; padding gets label -100
    loss = train_step(model, optimizer, batch) # forward, next-token cross-entropy, backward, step
    val = evaluate(model, batches)             # mean loss per predicted token; perplexity = exp(val)

The labels of a batch are the input ids themselves: position i is scored on token i + 1, so
`next_token_loss` drops the last position's logits and the first label (the shift).
The same shift happens inside transformers when you call `model(input_ids, labels=input_ids)`.
"""

from __future__ import annotations

import functools
import math
import random
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label of positions that are not scored (padding); F.cross_entropy skips it
PAD_ID = 0  # [PAD] in the uer/BERT Chinese vocabulary

LossFn = Callable[..., torch.Tensor]  # loss_fn(model, batch, reduction="mean") -> scalar tensor


# ---------------------------------------------------------------------------------------------------
# The shift and the loss
# ---------------------------------------------------------------------------------------------------


def shift_for_next_token(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) = (ids[..., :-1], ids[..., 1:]): at every position the target is the next token."""
    return ids[..., :-1], ids[..., 1:]


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each position's logits against the *next* label; labels of -100 are skipped.

    logits [batch, seq, vocab] and labels [batch, seq] are aligned with the input ids (labels = ids),
    as for `model(input_ids, labels=input_ids)`; the result equals that call's `.loss` for "mean".
    """
    logits, targets = logits[:, :-1, :], labels[:, 1:]
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


def lm_loss(model, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Forward pass of a causal LM on a batch, then `next_token_loss` on its logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return next_token_loss(logits, batch["labels"], reduction)


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy in nats): as unsure as a fair choice among this many tokens."""
    return math.exp(loss)


# ---------------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------------


def collate(samples: list[list[int]], inputs: list[list[int]] | None = None,
            pad_id: int = PAD_ID) -> dict[str, torch.Tensor]:
    """Right-pad token-id lists into a batch; padding gets attention 0 and label -100.

    `inputs` (same lengths as samples, e.g. with some tokens replaced) becomes the model's input ids;
    the labels always come from `samples`.
    """
    if not samples:
        raise ValueError("collate 需要至少一个样本。 (collate needs at least one sample.)")
    width = max(len(s) for s in samples)
    input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(samples), width), dtype=torch.long)
    for row, (sample, model_input) in enumerate(zip(samples, inputs or samples)):
        input_ids[row, :len(model_input)] = torch.tensor(model_input)
        labels[row, :len(sample)] = torch.tensor(sample)
        attention[row, :len(sample)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def make_batches(samples: list[list[int]], batch_size: int, batch_tokens: int,
                 rng: random.Random) -> list[list[list[int]]]:
    """One epoch of batches in a random (seeded) order: similar lengths together, so little padding.

    A batch has at most `batch_size` rows and at most `batch_tokens` tokens (padding included).
    """
    order = list(range(len(samples)))
    rng.shuffle(order)
    chunk = 64 * batch_size
    batches: list[list[list[int]]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: len(samples[i]))
        batch: list[list[int]] = []
        for index in part:
            longest = max(len(samples[index]), max((len(s) for s in batch), default=0))
            if batch and (len(batch) >= batch_size or longest * (len(batch) + 1) > batch_tokens):
                batches.append(batch)
                batch = []
            batch.append(samples[index])
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def endless_batches(samples: list[list[int]], batch_size: int, batch_tokens: int,
                    seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Collated batches epoch after epoch, in an order fixed by `seed`."""
    rng = random.Random(seed)
    while True:
        for batch in make_batches(samples, batch_size, batch_tokens, rng):
            yield collate(batch)


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """The batch's tensors on `device`."""
    return {key: value.to(device) for key, value in batch.items()}


# ---------------------------------------------------------------------------------------------------
# One optimisation step, evaluation, the learning-rate schedule
# ---------------------------------------------------------------------------------------------------


def train_step(model, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
               loss_fn: LossFn = lm_loss, max_grad_norm: float | None = 1.0) -> float:
    """One step on one batch: loss, gradients, (clipped) update, gradients reset. Returns the loss."""
    model.train()
    loss = loss_fn(model, batch)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def count_targets(batch: dict[str, torch.Tensor]) -> int:
    """How many next-token predictions the batch scores (labels after the shift that are not -100)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


@torch.no_grad()
def evaluate(model, batches: Iterable[dict[str, torch.Tensor]], loss_fn: LossFn = lm_loss,
             device: torch.device | str | None = None) -> float:
    """Mean next-token cross-entropy per predicted token over all batches (the model is left in eval mode)."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        if device is not None:
            batch = to_device(batch, device)
        total += loss_fn(model, batch, reduction="sum").item()
        count += count_targets(batch)
    if count == 0:
        raise ValueError("没有可以评估的词元。 (No tokens to evaluate.)")
    return total / count


def lr_at(step: int, peak: float, warmup: int, total: int, floor: float = 0.1) -> float:
    """Linear warm-up to `peak`, then cosine decay to `floor * peak` at step `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Use learning rate `lr` for every parameter group from the next step on."""
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---------------------------------------------------------------------------------------------------
# A small model and the lesson's corpus
# ---------------------------------------------------------------------------------------------------


def tiny_gpt2(n_embd: int = 64, n_layer: int = 2, n_head: int = 4, n_positions: int = 64,
              vocab_size: int = 21128, dropout: float = 0.0, seed: int = 0):
    """A randomly initialised GPT2LMHeadModel with the uer vocabulary ([PAD]=0, [CLS]=101)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=101 if vocab_size > 101 else None, eos_token_id=None, pad_token_id=PAD_ID,
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                        tokenizer_class="BertTokenizer")
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # the next-token loss; unset for GPT2, transformers would warn and use it anyway
    return model


def _build_corpus_module():
    """training/build_corpus.py of the course's checkout (the lesson reads its data, never copies it)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "training" / "build_corpus.py").is_file():
        raise FileNotFoundError(f"找不到 {root / 'training'}：这一课需要课程仓库里的 training/ 文件夹。"
                                " (Lesson 09 needs the course checkout's training/ folder.)")
    if str(root) not in sys.path:
        sys.path.append(str(root))
    from training import build_corpus

    return build_corpus


def lesson_corpus(seed: int = 0, val_fraction: float = 0.05, paragraphs: int = 2000,
                  chat_eval_fraction: float = 0.08) -> dict[str, list[str]]:
    """The course's own offline texts, as training/build_corpus.py prepares them for the stand-ins.

    "base_train"/"base_val": "[CLS]sentence(s)" from training/data/everyday_zh.txt (sentences split into
    train and validation first, then diary-like paragraphs built from each part);
    "chat_train"/"chat_val": "[CLS]turn[SEP]reply[SEP]..." dialogues of training/dialogue_topics.py,
    "chat_heldout": dialogues whose first turn never opens a training dialogue.
    The downloaded reviews the stand-ins also saw are not used (no network needed).
    """
    corpus = _build_corpus_module()
    rng = random.Random(seed)
    sentences = [corpus.normalise(line) for line in corpus.read_lines(corpus.EVERYDAY_FILE)]
    train_sentences, val_sentences = corpus.split_train_val(sentences, val_fraction, rng)
    base_train = train_sentences + corpus.everyday_paragraphs(train_sentences, rng, paragraphs)
    base_val = val_sentences + corpus.everyday_paragraphs(val_sentences, rng, len(val_sentences))
    rng.shuffle(base_train)
    normalise = functools.lru_cache(maxsize=None)(corpus.normalise)  # turns repeat across dialogues
    dialogues = [[normalise(turn) for turn in d] for d in corpus.dialogues()]
    chat, heldout = corpus.split_by_opening(dialogues, chat_eval_fraction)
    chat_train, chat_val = corpus.split_train_val(chat, val_fraction, rng)
    return {"base_train": ["[CLS]" + t for t in base_train], "base_val": ["[CLS]" + t for t in base_val],
            "chat_train": [corpus.format_dialogue(d) for d in chat_train],
            "chat_val": [corpus.format_dialogue(d) for d in chat_val],
            "chat_heldout": [corpus.format_dialogue(d) for d in heldout]}


def encode_lines(tokenizer, lines: list[str], max_len: int) -> list[list[int]]:
    """Token ids of each line (special tokens are written in the text), cut to max_len; lines of < 2 ids dropped."""
    encoded = tokenizer(lines, add_special_tokens=False)["input_ids"]
    return [ids[:max_len] for ids in encoded if len(ids) >= 2]
