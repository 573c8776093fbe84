"""Train the tiny stand-in Chinese GPT2 models on the corpus from build_corpus.py.

    python -m training.train_standin base --out helpers/standins/gpt2-chinese-base
    python -m training.train_standin chat --init helpers/standins/gpt2-chinese-base \\
        --out helpers/standins/gpt2-chinese-chat

`base` trains a GPT2LMHeadModel from scratch on build/corpus/base_{train,val}.txt; `chat` fine-tunes a
saved base folder on build/corpus/chat_{train,val}.txt. The loss is next-token cross-entropy on every
non-padding token. Batching, the loss's shift, the optimisation step, evaluation and the learning-rate
schedule are `helpers.training`, the code lesson 09 teaches with. Checkpoints go to build/checkpoints/<stage>/ and --resume continues from there.
The output folder has the layout of uer/gpt2-chinese-cluecorpussmall (config.json, model.safetensors in
fp16, vocab.txt, tokenizer files).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from tqdm import tqdm

from helpers import training as shared
from training.build_corpus import REPO_ROOT, UNK_ID, VOCAB_SIZE, load_tokenizer, locate_vocab

PAD_ID, CLS_ID, SEP_ID = 0, 101, 102
DEFAULT_CORPUS = REPO_ROOT / "build" / "corpus"
DEFAULT_CHECKPOINTS = REPO_ROOT / "build" / "checkpoints"
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}


@dataclass
class TrainConfig:
    """Everything one training run depends on (saved next to the checkpoints)."""

    stage: str = "base"
    out: Path = REPO_ROOT / "helpers" / "standins" / "gpt2-chinese-base"
    corpus_dir: Path = DEFAULT_CORPUS
    init: Path | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    steps: int = 1000
    batch_size: int = 64
    batch_tokens: int = 4096
    seq_len: int = 1024
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.01
    seed: int = 0
    n_embd: int = 192
    n_layer: int = 4
    n_head: int = 6
    dropout: float = 0.0
    mask_first_turn: bool = False
    turn_dropout: float = 0.0
    eval_every: int = 200
    eval_batches: int = 20
    checkpoint_every: int = 200
    threads: int = 2
    amp: bool = True
    progress: bool = True
    history: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def load_samples(path: Path, tokenizer, seq_len: int) -> list[list[int]]:
    """Token ids of each line (special tokens are already written in the text), cut to seq_len."""
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return shared.encode_lines(tokenizer, lines, seq_len)


make_batches = shared.make_batches  # one epoch of length-bucketed batches (shared with lesson 09)


def collate(batch: list[list[int]], mask_first_turn: bool = False,
            inputs: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Right-pad with [PAD]; padding gets attention 0 and label -100.

    With mask_first_turn, the tokens up to and including the first [SEP] also get label -100: the loss
    then covers only the replies, not the user's opening turn, which nothing before it can predict.
    `inputs` (same lengths as batch, e.g. with some tokens dropped) replaces the model's input ids; the
    labels always come from batch.
    """
    collated = shared.collate(batch, inputs, pad_id=PAD_ID)
    if mask_first_turn:
        for row, sample in enumerate(batch):
            if SEP_ID in sample:
                collated["labels"][row, :sample.index(SEP_ID) + 1] = shared.IGNORE_INDEX
    return collated


class ActiveVocab:
    """The tokens that occur in the corpus, plus one shared "other" row for all remaining tokens.

    Training scores only the active tokens and one extra class, "some inactive token", whose logit is
    h . e_other + log(number of inactive tokens). When every inactive row of the tied embedding is set to
    e_other (done in save_folder), the ordinary full-vocabulary softmax of the saved model is exactly the
    training softmax, so the reported perplexities hold for the saved model (evaluate_standin checks this).
    This makes the output layer about 3-4x cheaper on CPU.
    """

    def __init__(self, active: list[int]):
        active_set = set(active) | {CLS_ID, SEP_ID, UNK_ID}
        inactive = [i for i in range(VOCAB_SIZE) if i not in active_set]
        self.other_id = inactive[0]
        self.ids = torch.tensor(sorted(active_set), dtype=torch.long)
        self.n_inactive = len(inactive)
        self.inactive = torch.tensor(inactive, dtype=torch.long)
        self.compact = torch.full((VOCAB_SIZE,), len(self.ids), dtype=torch.long)  # default: "other"
        self.compact[self.ids] = torch.arange(len(self.ids))

    def logits(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Logits over [active tokens..., other] for final hidden states."""
        rows = torch.cat([weight[self.ids], weight[self.other_id:self.other_id + 1]])
        logits = hidden @ rows.to(hidden.dtype).T
        correction = torch.zeros(len(rows), dtype=logits.dtype, device=logits.device)
        correction[-1] = math.log(self.n_inactive)
        return logits + correction

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels mapped to compact indices (-100 stays -100)."""
        mapped = self.compact.to(labels.device)[labels.clamp(min=0)]
        return mapped.masked_fill(labels == -100, -100)

    @torch.no_grad()
    def tie_inactive_rows(self, model) -> None:
        """Copy the shared "other" row into every inactive row of the tied embedding."""
        weight = model.get_input_embeddings().weight
        weight[self.inactive.to(weight.device)] = weight[self.other_id].clone()


def active_token_ids(corpus_dir: Path, tokenizer) -> list[int]:
    """Every token id in the corpus files of both stages that exist in corpus_dir."""
    ids: set[int] = set()
    for name in ("base_train", "base_val", "chat_train", "chat_val"):
        path = corpus_dir / f"{name}.txt"
        if path.exists():
            for sample in load_samples(path, tokenizer, 10**9):
                ids.update(sample)
    return sorted(ids)


def sequence_loss(model, batch: dict[str, torch.Tensor], vocab: ActiveVocab, config: TrainConfig,
                  device: torch.device, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the active vocabulary (+ the shared "other" class)."""
    with autocast(config, device):
        hidden = model.transformer(input_ids=batch["input_ids"],
                                   attention_mask=batch["attention_mask"]).last_hidden_state
        logits = vocab.logits(hidden, model.get_input_embeddings().weight)
    return shared.next_token_loss(logits, vocab.targets(batch["labels"]), reduction)


def drop_first_turn_tokens(sample: list[int], rate: float, rng: random.Random) -> list[int]:
    """Replace each token of the first turn (between [CLS] and the first [SEP]) by [UNK] with probability
    `rate`, so that the chat model learns to answer from several words of a turn, not from one.
    Used for the inputs only: the targets stay the original tokens."""
    if rate <= 0 or SEP_ID not in sample:
        return sample
    end = sample.index(SEP_ID)
    return [UNK_ID if 0 < i < end and rng.random() < rate else token for i, token in enumerate(sample)]


def endless_batches(samples: list[list[int]], config: TrainConfig, rng: random.Random,
                    skip: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches for ever (epoch after epoch); the first `skip` are drawn and dropped (for --resume)."""
    drawn = 0
    while True:
        for batch in make_batches(samples, config.batch_size, config.batch_tokens, rng):
            drawn += 1
            if drawn > skip:
                noise = random.Random(f"{config.seed}-{drawn}")  # per batch, so --resume draws the same
                noisy = [drop_first_turn_tokens(sample, config.turn_dropout, noise) for sample in batch]
                yield collate(batch, config.mask_first_turn, inputs=noisy)


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

def new_model(config: TrainConfig):
    """A randomly initialised GPT2LMHeadModel with the uer vocabulary size and 1024 positions."""
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2_config = GPT2Config(
        vocab_size=VOCAB_SIZE, n_positions=1024, n_embd=config.n_embd, n_layer=config.n_layer,
        n_head=config.n_head, bos_token_id=CLS_ID, eos_token_id=None, pad_token_id=PAD_ID,
        tokenizer_class="BertTokenizer", resid_pdrop=config.dropout, embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
    )
    return GPT2LMHeadModel(gpt2_config)


def load_model(folder: Path, dropout: float = 0.0):
    """Load a saved stand-in in float32 for further training, with the given dropout rate."""
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32, resid_pdrop=dropout,
                                           embd_pdrop=dropout, attn_pdrop=dropout)


def autocast(config: TrainConfig, device: torch.device):
    """bfloat16 autocast when asked for (about 1.7x faster on CPUs with AVX512-BF16), else a no-op."""
    if config.amp:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def evaluate_loss(model, samples: list[list[int]], vocab: ActiveVocab, config: TrainConfig,
                  device: torch.device, max_batches: int | None = None) -> float:
    """Mean next-token cross-entropy per predicted token over (the first batches of) samples."""
    batches = make_batches(samples, config.batch_size, config.batch_tokens, random.Random(0))
    collated = (collate(batch, config.mask_first_turn) for batch in batches[:max_batches])
    loss = shared.evaluate(model, collated, lambda m, b, reduction: sequence_loss(m, b, vocab, config, device,
                                                                                 reduction), device)
    model.train()
    return loss


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak learning rate."""
    return shared.lr_at(step, config.lr, config.warmup, config.steps)


# ---------------------------------------------------------------------------------------------
# Checkpoints and the saved folder
# ---------------------------------------------------------------------------------------------

def save_checkpoint(path: Path, model, optimizer, step: int, config: TrainConfig) -> None:
    """Everything needed to resume: weights, optimizer state, step and the run's history."""
    path.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "history": config.history}
    torch.save(state, path / "checkpoint.pt.tmp")
    (path / "checkpoint.pt.tmp").replace(path / "checkpoint.pt")


def save_folder(model, tokenizer, out: Path, stage: str) -> None:
    """Write the model folder: fp16 safetensors, config, exact vocab.txt and tokenizer files."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.safetensors", "pytorch_model.bin", "tokenizer.json", "generation_config.json"):
        (out / stale).unlink(missing_ok=True)
    eos = SEP_ID if stage == "chat" else None
    model.config.eos_token_id = eos
    model.config.pad_token_id = PAD_ID
    model.config.bos_token_id = CLS_ID
    model.generation_config = GenerationConfig(bos_token_id=CLS_ID, eos_token_id=eos, pad_token_id=PAD_ID)
    half = model.to("cpu").half()
    half.save_pretrained(str(out), safe_serialization=True)
    model.float()
    load_as_float32_by_default(out)
    write_tokenizer_files(tokenizer, out)


def load_as_float32_by_default(out: Path) -> None:
    """Set config.json's dtype to float32: the weights stay float16 on disk (half the size), but
    from_pretrained without a dtype then loads float32, like the original fp32 checkpoints."""
    path = out / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["dtype"] = "float32"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_tokenizer_files(tokenizer, out: Path) -> None:
    """tokenizer.json + tokenizer_config.json (save_pretrained), the exact vocab.txt, special_tokens_map.json.

    transformers 5 no longer writes vocab.txt or special_tokens_map.json, so they are written here.
    """
    (out / "tokenizer.json").unlink(missing_ok=True)
    tokenizer.save_pretrained(str(out))
    shutil.copyfile(locate_vocab(), out / "vocab.txt")
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------------

def train(config: TrainConfig) -> dict:
    """Train (or resume) one stage, save the folder, and return the final losses and timings."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config.amp = config.amp and (device.type == "cuda" or _cpu_has_bf16())
    tokenizer = load_tokenizer()
    prefix = "base" if config.stage == "base" else "chat"
    train_samples = load_samples(config.corpus_dir / f"{prefix}_train.txt", tokenizer, config.seq_len)
    val_samples = load_samples(config.corpus_dir / f"{prefix}_val.txt", tokenizer, config.seq_len)

    vocab = ActiveVocab(active_token_ids(config.corpus_dir, tokenizer))
    model = load_model(config.init, config.dropout) if config.init else new_model(config)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95),
                                  weight_decay=config.weight_decay)
    checkpoint_dir = config.checkpoint_dir or DEFAULT_CHECKPOINTS / config.stage
    start = 0
    if config.resume and (checkpoint_dir / "checkpoint.pt").exists():
        state = torch.load(checkpoint_dir / "checkpoint.pt", map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, config.history = state["step"], state["history"]
        print(f"resumed from step {start}")

    rng = random.Random(config.seed)
    batches = endless_batches(train_samples, config, rng, skip=start)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{config.stage}: {n_params / 1e6:.2f}M parameters, {len(train_samples)} train / "
          f"{len(val_samples)} val samples, {len(vocab.ids)} active tokens, device {device}, "
          f"bf16 autocast {config.amp}")
    started = time.time()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not config.progress)
    running, losses = None, []
    for step in bar:
        loss = train_step(model, optimizer, next(batches), vocab, lr_at(step, config), config, device)
        losses.append(round(loss, 4))
        running = loss if running is None else 0.95 * running + 0.05 * loss
        bar.set_postfix(loss=f"{running:.3f}")
        done = step + 1
        if done % config.eval_every == 0 or done == config.steps:
            val = evaluate_loss(model, val_samples, vocab, config, device, config.eval_batches)
            record = {"step": done, "train_loss": round(running, 4), "val_loss": round(val, 4),
                      "val_ppl": round(math.exp(val), 2)}
            config.history.append(record)
            tqdm.write(json.dumps(record))
        if done % config.checkpoint_every == 0 or done == config.steps:
            save_checkpoint(checkpoint_dir, model, optimizer, done, config)

    val_loss = evaluate_loss(model, val_samples, vocab, config, device)
    result = {"stage": config.stage, "steps": config.steps, "parameters": n_params, "active_tokens": len(vocab.ids),
              "final_train_loss": round(running or float("nan"), 4), "val_loss": round(val_loss, 4),
              "val_ppl": round(math.exp(val_loss), 2), "train_seconds": round(time.time() - started, 1),
              "history": config.history, "device": str(device), "train_losses": losses}
    print(json.dumps({k: v for k, v in result.items() if k not in ("history", "train_losses")}))
    vocab.tie_inactive_rows(model)
    save_folder(model, tokenizer, config.out, config.stage)
    summary = {**result, "config": {k: str(v) for k, v in asdict(config).items() if k != "history"}}
    (checkpoint_dir / "train_result.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return result


def train_step(model, optimizer, batch: dict[str, torch.Tensor], vocab: ActiveVocab, lr: float,
               config: TrainConfig, device: torch.device) -> float:
    """One optimizer step on one batch (helpers.training.train_step); returns the batch loss."""
    shared.set_lr(optimizer, lr)
    return shared.train_step(model, optimizer, shared.to_device(batch, device),
                            lambda m, b: sequence_loss(m, b, vocab, config, device), max_grad_norm=1.0)


def _cpu_has_bf16() -> bool:
    """True when the CPU advertises AVX512-BF16 or AMX (Linux only; elsewhere stay in float32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("base", "chat"))
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--init", type=Path, help="folder to start from (required for chat)")
    parser.add_argument("--corpus-dir", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--checkpoint-dir", type=Path, help="default: build/checkpoints/<stage>")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64, help="most sequences per batch")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="most tokens (with padding) per batch")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-embd", type=int, default=192)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout rate while training (0 = none)")
    parser.add_argument("--mask-first-turn", action="store_true",
                        help="chat: no loss on the user's first turn (train on the replies only)")
    parser.add_argument("--turn-dropout", type=float, default=0.0,
                        help="chat: chance of replacing each token of the first turn by [UNK] while training")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--eval-batches", type=int, default=20)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="train in float32")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    if args.stage == "chat" and args.init is None:
        parser.error("chat needs --init <base model folder>")
    return TrainConfig(**vars(args))


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
