"""Tests of the stand-in training code (a micro run) and of the two shipped stand-in folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
STANDINS = REPO_ROOT / "helpers" / "standins"
SHIPPED = ("gpt2-chinese-base", "gpt2-chinese-chat")
PROMPT_IDS = [101, 791, 1921, 1921, 3698, 4696]  # [CLS]今天天气真

SENTENCES = (
    "今天天气真好，我们一起去公园散步吧。", "今天天气真冷，出门记得多穿一件衣服。",
    "妈妈做的饺子特别香。", "周末我要回家看爷爷奶奶。", "明天有数学考试，我得早点睡觉。",
    "我每天坐地铁上班。", "这家小店的牛肉面真好吃。", "晚饭后我们一家人一起看电视。",
)
DIALOGUES = ("今天天气真好[SEP]是啊，我们出去走走吧[SEP]", "你好[SEP]你好，很高兴认识你[SEP]",
             "我饿了[SEP]我们去吃饭吧[SEP]")


def write_micro_corpus(folder: Path) -> Path:
    """A tiny corpus in the layout build_corpus.py writes."""
    folder.mkdir(parents=True)
    base = ["[CLS]" + s for s in SENTENCES] * 6 + ["[CLS]" + "".join(SENTENCES[:4])] * 4
    (folder / "base_train.txt").write_text("\n".join(base) + "\n", encoding="utf-8")
    (folder / "base_val.txt").write_text("\n".join("[CLS]" + s for s in SENTENCES[:3]) + "\n", encoding="utf-8")
    chat = ["[CLS]" + d for d in DIALOGUES]
    (folder / "chat_train.txt").write_text("\n".join(chat * 4) + "\n", encoding="utf-8")
    (folder / "chat_val.txt").write_text(chat[0] + "\n", encoding="utf-8")
    return folder


def check_tokenizer(folder: Path):
    """The folder's tokenizer is the 21128-entry uer/BERT Chinese one; returns it."""
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    assert len(tokenizer) == 21128
    assert tokenizer.convert_tokens_to_ids("今") == 791
    assert tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 100, 101, 102, 103]
    assert tokenizer.encode("[CLS]今天天气真", add_special_tokens=False) == PROMPT_IDS
    assert "token_type_ids" not in tokenizer("[CLS]今天", add_special_tokens=False)  # GPT2 would embed them
    return tokenizer


def test_micro_training_run_learns_saves_and_resumes(tmp_path: Path) -> None:
    from transformers import GPT2LMHeadModel

    from training.train_standin import TrainConfig, train

    corpus = write_micro_corpus(tmp_path / "corpus")
    out = tmp_path / "model"
    settings = dict(stage="base", out=out, corpus_dir=corpus, checkpoint_dir=tmp_path / "ckpt",
                    batch_size=8, batch_tokens=512, seq_len=64, lr=1e-2, warmup=3, n_embd=32, n_layer=1,
                    n_head=2, eval_every=10, checkpoint_every=10, progress=False)
    result = train(TrainConfig(steps=30, **settings))

    losses = result["train_losses"]
    assert len(losses) == 30
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert first > 9.0  # about log(active tokens + shared row) at initialisation
    assert last < first - 3.0, (first, last)
    assert result["history"][-1]["val_loss"] < result["history"][0]["val_loss"]

    model = GPT2LMHeadModel.from_pretrained(str(out))
    assert model.dtype == torch.float32  # float16 on disk, float32 by default when loaded
    assert model.config.vocab_size == 21128 and model.config.n_positions == 1024
    check_tokenizer(out)
    assert (out / "vocab.txt").exists() and (out / "model.safetensors").exists()

    resumed = train(TrainConfig(steps=34, resume=True, **settings))
    assert len(resumed["train_losses"]) == 4  # continued from the step-30 checkpoint
    assert resumed["val_loss"] < result["history"][0]["val_loss"]


def test_micro_chat_fine_tune_from_base(tmp_path: Path) -> None:
    from training.train_standin import TrainConfig, train

    corpus = write_micro_corpus(tmp_path / "corpus")
    common = dict(corpus_dir=corpus, batch_size=8, batch_tokens=512, seq_len=64, warmup=2, n_embd=32,
                  n_layer=1, n_head=2, eval_every=100, checkpoint_every=100, progress=False)
    train(TrainConfig(stage="base", out=tmp_path / "base", checkpoint_dir=tmp_path / "c1", steps=10, lr=1e-2,
                      **common))
    result = train(TrainConfig(stage="chat", out=tmp_path / "chat", init=tmp_path / "base",
                               checkpoint_dir=tmp_path / "c2", steps=15, lr=1e-2, mask_first_turn=True,
                               turn_dropout=0.1, **common))
    assert result["train_losses"][-1] < result["train_losses"][0]
    from transformers import GenerationConfig

    assert GenerationConfig.from_pretrained(str(tmp_path / "chat")).eos_token_id == 102


def test_mask_first_turn_leaves_only_the_replies_as_targets() -> None:
    from training.train_standin import CLS_ID, SEP_ID, collate

    dialogue = [CLS_ID, 791, 1921, SEP_ID, 1962, 8024, SEP_ID, 2769, SEP_ID]  # [CLS]今天[SEP]好，[SEP]我[SEP]
    batch = collate([dialogue, [CLS_ID, 791, 1921]], mask_first_turn=True)
    assert batch["labels"][0].tolist() == [-100] * 4 + [1962, 8024, SEP_ID, 2769, SEP_ID]
    assert batch["labels"][1].tolist() == [CLS_ID, 791, 1921] + [-100] * 6  # no [SEP]: nothing masked
    assert batch["input_ids"][0].tolist() == dialogue  # only the targets change, not the inputs
    assert collate([dialogue])["labels"][0].tolist() == dialogue
    noisy = [CLS_ID, 100, 1921, SEP_ID, 1962, 8024, SEP_ID, 2769, SEP_ID]  # 今 dropped to [UNK]
    batch = collate([dialogue], inputs=[noisy])
    assert batch["input_ids"][0].tolist() == noisy and batch["labels"][0].tolist() == dialogue


def test_turn_dropout_touches_only_the_first_turn() -> None:
    import random

    from training.train_standin import CLS_ID, SEP_ID, UNK_ID, drop_first_turn_tokens

    sample = [CLS_ID] + list(range(1000, 1200)) + [SEP_ID, 2769, 1962, SEP_ID]
    dropped = drop_first_turn_tokens(sample, 0.3, random.Random(0))
    assert len(dropped) == len(sample) and dropped[0] == CLS_ID and dropped[201:] == sample[201:]
    changed = [i for i, (a, b) in enumerate(zip(sample, dropped)) if a != b]
    assert all(dropped[i] == UNK_ID and 1 <= i <= 200 for i in changed)
    assert 30 <= len(changed) <= 90  # about 30% of the 200 first-turn tokens
    assert drop_first_turn_tokens(sample, 0.0, random.Random(0)) == sample
    assert drop_first_turn_tokens([CLS_ID, 791, 1921], 0.9, random.Random(0)) == [CLS_ID, 791, 1921]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_standin_format(name: str) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = STANDINS / name
    for file in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                 "special_tokens_map.json", "README.md"):
        assert (folder / file).is_file(), file
    config = GPT2Config.from_pretrained(str(folder))
    assert config.vocab_size == 21128 and config.n_positions == 1024
    assert config.tokenizer_class == "BertTokenizer"
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8")
    assert len(vocab.rstrip("\n").split("\n")) == 21128
    check_tokenizer(folder)
    model = GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32)
    assert model.get_input_embeddings().weight.shape == (21128, config.n_embd)


def test_shipped_standins_fit_the_size_budget() -> None:
    total = sum(p.stat().st_size for name in SHIPPED for p in (STANDINS / name).iterdir() if p.is_file())
    assert total <= 30_000_000, total


def test_chat_standin_ends_its_reply_with_sep() -> None:
    from transformers import GPT2LMHeadModel

    folder = STANDINS / "gpt2-chinese-chat"
    model = GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32).eval()
    prompt = torch.tensor([PROMPT_IDS])
    out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                         max_new_tokens=40, eos_token_id=102, pad_token_id=0)
    new = out[0, prompt.shape[1]:].tolist()
    assert new[-1] == 102
    # Course notebooks 01 and 06 let it finish the user's turn first, as the real dialogbot model does:
    # a short, non-repeating completion, then [SEP], then a reply that also ends with [SEP].
    completion = new[:-1]
    assert 1 <= len(completion) <= 6 and len(set(completion)) == len(completion), completion
    reply = model.generate(input_ids=out, attention_mask=torch.ones_like(out), do_sample=False,
                           max_new_tokens=40, eos_token_id=102, pad_token_id=0)[0, out.shape[1]:].tolist()
    assert len(reply) >= 2 and reply[-1] == 102, reply


def test_held_out_first_turns_never_open_a_training_dialogue() -> None:
    from training.build_corpus import split_by_opening

    dialogues = [[f"开场{i % 400}", f"回答{i}"] for i in range(1200)] + [["你好", "你好呀"], ["你好", "嗨"]]
    train_part, held_out = split_by_opening(dialogues, 0.25)
    assert sorted(map(tuple, train_part + held_out)) == sorted(map(tuple, dialogues))
    held_openings = {d[0] for d in held_out}
    assert 70 <= len(held_openings) <= 131  # about a quarter of the 401 distinct first turns
    assert not held_openings & {d[0] for d in train_part}
    # Adding dialogues moves no old first turn between the parts.
    _, held_out_more = split_by_opening(dialogues + [[f"新开场{i}", "好"] for i in range(300)], 0.25)
    assert held_openings == {d[0] for d in held_out_more} - {f"新开场{i}" for i in range(300)}


def test_reply_test_counts_only_replies_judged_relevant(tmp_path: Path) -> None:
    from transformers import BertTokenizerFast, GPT2LMHeadModel

    from training.evaluate_standin import chat_eval, read_judgements

    folder = STANDINS / "gpt2-chinese-chat"
    model = GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32).eval()
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    eval_file = tmp_path / "chat_eval.txt"
    eval_file.write_text("你好 | 你好呀\n我饿了 | 吃面吧\n你好 | 嗨\n晚安 | 晚安\n", encoding="utf-8")
    judgements = tmp_path / "judgements.tsv"

    first = chat_eval(model, tokenizer, eval_file, judgements)
    assert [e["user"] for e in first["examples"]] == ["你好", "我饿了", "晚安"]  # one reply per distinct turn
    assert (first["relevant"], first["unjudged"]) == (0, 3)

    a, b, _ = first["examples"]
    judgements.write_text(f"# user\treply\tverdict\n{a['user']}\t{a['reply']}\t1\n"
                          f"{b['user']}\t{b['reply']}\t0\tnot an answer\n你好\t另一个回答\t1\n", encoding="utf-8")
    second = chat_eval(model, tokenizer, eval_file, judgements)
    assert [e["relevant"] for e in second["examples"]] == [True, False, None]
    assert (second["relevant"], second["unjudged"]) == (1, 1)
    assert second["relevant_and_sep_rate"] == round(int(a["ended_with_sep"]) / 3, 3)

    judgements.write_text("你好\t你好呀\tyes\n", encoding="utf-8")
    with pytest.raises(ValueError, match="judgements.tsv:1"):
        read_judgements(judgements)


def held_out_table(card: str) -> list[tuple[str, ...]]:
    """(user, reply, verdict) rows of the "Held-out replies" table in the chat model card."""
    section = card.split("## Held-out replies", 1)[1]
    rows = [line.strip("|").split(" | ") for line in section.split("\n") if line.startswith("| ")]
    return [tuple(cell.strip() for cell in row) for row in rows[1:]]  # skip the header row


CARD_SAMPLE_EVERY = 15  # `make test` regenerates every 15th held-out reply (about 23); `-m slow` all of them


def check_card_rows(step: int) -> None:
    """Rows 0, step, 2*step, ... of the chat card's held-out table are this model's greedy replies, all judged."""
    from transformers import BertTokenizerFast, GPT2LMHeadModel

    from training.evaluate_standin import JUDGEMENTS, greedy_reply, read_judgements

    folder = STANDINS / "gpt2-chinese-chat"
    rows = held_out_table((folder / "README.md").read_text(encoding="utf-8"))
    assert len(rows) >= 100
    model = GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32).eval()
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    verdicts = read_judgements(JUDGEMENTS)
    for user, reply, verdict in rows:  # every row's verdict matches the judgements file (cheap)
        assert verdict == {True: "yes", False: "no"}[verdicts[(user, reply)]], user
    for user, reply, _ in rows[::step]:
        generated, ended_with_sep = greedy_reply(model, tokenizer, user)
        assert ended_with_sep, user  # every reply ends with [SEP] within 40 tokens
        assert generated == reply, user  # the card shows this model's replies
    relevant = sum(verdict == "yes" for _, _, verdict in rows)
    # Regression guard at the measured level (the target is 90%; the card reports the gap).
    assert relevant >= 0.7 * len(rows), (relevant, len(rows))


def test_chat_card_describes_the_shipped_model_and_its_judged_replies() -> None:
    check_card_rows(CARD_SAMPLE_EVERY)


@pytest.mark.slow
def test_chat_card_every_held_out_reply_is_the_model_s() -> None:
    check_card_rows(1)
