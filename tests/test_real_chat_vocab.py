"""The real chat model brings its own vocabulary: the course's chat code must use that vocabulary's ids.

According to the public code of its project (shibing624/dialogbot, dialogbot/gpt/config/config.json),
`shibing624/gpt2-dialogbot-base-chinese` has vocab_size 13317 with a BertTokenizer-style vocab.txt: not the
21128-line uer vocabulary of the stand-in, so [CLS] and [SEP] are not 101 and 102 there. The hub copy cannot be read
offline; this test serves a tiny GPT2 with a different BERT-style vocabulary from the local fake hub instead, loads
it through the course's own download and loading path, and runs every chat code path on it.

The tiny model is a "bigram machine": its blocks add nothing (their output projections are zero, positions are
zero), so the next token depends only on the last one, through an lm_head we write by hand. Its greedy chat reply
is therefore known in advance: after `[SEP]` it writes 是, then 的, then its own [SEP].
"""

from __future__ import annotations

import io

import pytest
import torch
from huggingface_hub import close_session, constants
from transformers import GPT2Config, GPT2LMHeadModel

from fake_hub import FakeHub
from helpers import __main__ as cli
from helpers import loading
from helpers.chat import ChatSession, first_reply, sep_prompt, split_turns
from helpers.generation import generate, stop_token_ids
from helpers.registry import get_spec
from helpers.tokens import decode, encode, format_token_table, has_char_vocab, token_table

SPEC = get_spec("gpt2-chinese-chat")
CHARS = "今天气真好是的你最近怎么样挺呢我也还在上班吃饭了吗饿想去哪里做什么呀啊，。？！"
FILLER = "一二三四五六七八九十百千万人大小中上下左右前后东西南北春夏秋冬日月水火木金土山石田"
# Special tokens at ids that differ from the uer vocabulary's ([PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102).
SPECIAL_AT = {5: "[PAD]", 9: "[UNK]", 17: "[CLS]", 23: "[SEP]", 31: "[MASK]"}
# The reply the bigram machine writes: after [SEP] comes 是, after 是 comes 的, after 的 its [SEP].
CHAIN = {"[SEP]": "是", "是": "的", "的": "[SEP]"}


def make_vocab() -> list[str]:
    """A 120-line BERT-style vocab.txt: Chinese characters, special tokens in unusual places, no '##' pieces."""
    chars = list(dict.fromkeys(CHARS + FILLER))
    lines: list[str] = []
    while chars or len(lines) in SPECIAL_AT:
        lines.append(SPECIAL_AT[len(lines)] if len(lines) in SPECIAL_AT else chars.pop(0))
    lines += [f"[unused{i}]" for i in range(120 - len(lines))]
    return lines


VOCAB = make_vocab()
ID = {token: i for i, token in enumerate(VOCAB)}


def bigram_model() -> GPT2LMHeadModel:
    """A GPT2 whose next token depends only on the current one: `CHAIN`, else the token itself."""
    size = len(VOCAB)
    config = GPT2Config(vocab_size=size, n_positions=64, n_embd=size, n_layer=1, n_head=4,
                        tie_word_embeddings=False, bos_token_id=ID["[CLS]"], eos_token_id=ID["[SEP]"],
                        pad_token_id=ID["[PAD]"])
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for block in model.transformer.h:  # the blocks add nothing to the residual stream
            for linear in (block.attn.c_proj, block.mlp.c_proj):
                linear.weight.zero_()
                linear.bias.zero_()
        model.transformer.wpe.weight.zero_()
        model.transformer.wte.weight.copy_(torch.eye(size))  # token i = the i-th unit vector
        following = torch.arange(size)
        for current, nxt in CHAIN.items():
            following[ID[current]] = ID[nxt]
        lm_head = torch.zeros(size, size)
        lm_head[following, torch.arange(size)] = 1.0  # logit of `following[i]` is high when the last token is i
        model.lm_head.weight.copy_(lm_head)
    return model


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory) -> dict[str, bytes]:
    """The three files the course downloads for the chat model: config.json, pytorch_model.bin, vocab.txt."""
    folder = tmp_path_factory.mktemp("real-chat-repo")
    model = bigram_model()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    assert set(SPEC.files) == {"config.json", "pytorch_model.bin", "vocab.txt"}
    return {name: (folder / name).read_bytes() for name in SPEC.files}


@pytest.fixture
def real_chat(repo_files, monkeypatch, tmp_path):
    """The tiny model loaded by `load_model("gpt2-chinese-chat")`, downloaded from the fake hub into an empty cache."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LLM_COURSE_OFFLINE", "HF_TOKEN", "HTTP_PROXY",
                 "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LLM_COURSE_MODELS", str(tmp_path / "course-models"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    close_session()
    with FakeHub({SPEC.hub_id: dict(repo_files)}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        model, tokenizer = loading.load_model("gpt2-chinese-chat", quiet=True)
        yield model, tokenizer, hub
    close_session()


def test_the_course_loads_the_served_model_with_its_own_vocabulary(real_chat, repo_files):
    model, tokenizer, hub = real_chat
    assert model.course_source.source == "download"
    assert [r.filename for r in hub.requests if r.method == "GET"] == list(SPEC.files)
    served = torch.load(io.BytesIO(repo_files["pytorch_model.bin"]), weights_only=True)
    assert torch.equal(model.lm_head.weight, served["lm_head.weight"])
    assert len(tokenizer) == model.config.vocab_size == 120
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) == (
        5, 9, 17, 23)
    assert has_char_vocab(tokenizer)  # BERT-style, although it has no '##' pieces such as '##的'


def test_tokenize_display_shows_this_vocabularys_ids_and_lines(real_chat, repo_files, capsys):
    _, tokenizer, _ = real_chat
    rows = token_table(tokenizer, "[CLS]今天天气真")
    assert [row.token for row in rows] == ["[CLS]", "今", "天", "天", "气", "真"]
    assert [row.id for row in rows] == [17, ID["今"], ID["天"], ID["天"], ID["气"], ID["真"]]
    lines = repo_files["vocab.txt"].decode("utf-8").split("\n")
    assert all(lines[row.vocab_line - 1] == row.token for row in rows)  # line N + 1 holds id N
    assert [row.special for row in rows] == [True, False, False, False, False, False]
    assert token_table(tokenizer, "饕")[0].unknown and token_table(tokenizer, "饕")[0].id == 9
    assert format_token_table(rows).splitlines()[1].split()[:3] == ["0", "[CLS]", "17"]

    assert cli.main(["tokenize", "[CLS]今天天气真", "--model", "gpt2-chinese-chat", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"id": 17' in out and '"id": 101' not in out


def test_generate_stops_at_the_models_own_sep(real_chat):
    model, tokenizer, _ = real_chat
    assert stop_token_ids(tokenizer, ("[SEP]",)) == {23}
    result = generate(model, tokenizer, "[CLS]今天天气真好[SEP]", max_new_tokens=10, stop_tokens=("[SEP]",))
    assert result.prompt_ids == [17, *encode(tokenizer, "今天天气真好"), 23]
    assert result.new_ids == [ID["是"], ID["的"], 23]
    assert result.stopped_by == "stop_token"
    assert result.text == "是的[SEP]"  # decoded without spaces between characters
    # Same tokens as transformers' own greedy search told to stop at this vocabulary's [SEP].
    expected = model.generate(torch.tensor([result.prompt_ids]), do_sample=False, max_new_tokens=10,
                              eos_token_id=23, pad_token_id=5)
    assert expected[0, len(result.prompt_ids):].tolist() == result.new_ids
    # Without the stop token the bigram machine goes on: 是的[SEP]是的[SEP]...
    longer = generate(model, tokenizer, "[CLS]今天天气真好[SEP]", max_new_tokens=6)
    assert longer.new_ids == [ID["是"], ID["的"], 23] * 2 and longer.stopped_by == "max_new_tokens"
    assert split_turns("[CLS]今天天气真好[SEP]" + longer.text) == ["今天天气真好", "是的", "是的"]
    assert first_reply(longer.text) == "是的"


def test_chat_session_uses_the_models_own_cls_and_sep(real_chat):
    model, tokenizer, _ = real_chat
    session = ChatSession(model, tokenizer, "gpt2-chinese-chat")
    assert session.say("今天天气真好", max_new_tokens=10) == "是的"
    assert session.last.prompt_ids[0] == 17 and session.last.prompt_ids[-1] == 23
    assert session.last.new_ids[-1] == 23 and session.last.stopped_by == "stop_token"
    assert session.say("你在做什么", max_new_tokens=10) == "是的"
    assert session.history == ["今天天气真好", "是的", "你在做什么", "是的"]
    assert session.last.prompt_ids == encode(tokenizer, sep_prompt(["今天天气真好", "是的", "你在做什么"]))
    assert session.last.prompt_ids.count(23) == 3 and 101 not in session.last.prompt_ids


def test_chat_session_leaves_out_whole_old_turns_and_keeps_cls(real_chat):
    model, tokenizer, _ = real_chat  # 64 positions: a long history no longer fits
    session = ChatSession(model, tokenizer, "gpt2-chinese-chat")
    for turn in ["今天天气真好今天天气真好", "我饿了我饿了", "你想去哪里你想去哪里"]:
        assert session.say(turn, max_new_tokens=10) == "是的"
    assert len(encode(tokenizer, session.prompt())) == 41
    with pytest.warns(UserWarning, match="最早的 2 句话"):
        assert session.say("你最近怎么样", max_new_tokens=30) == "是的"
    assert session.first_seen == 2 and session.history[:2] == ["今天天气真好今天天气真好", "是的"]
    assert session.last.prompt_ids[0] == 17  # [CLS] is still first, and no turn is cut in half
    assert decode(tokenizer, session.last.prompt_ids).startswith("[CLS]我饿了我饿了[SEP]是的[SEP]")
    assert len(session.last.prompt_ids) + 30 <= 64

    with pytest.raises(ValueError, match="放不进上下文"):
        session.say("你" * 60, max_new_tokens=10)
    assert session.history[-1] == "是的" and session.first_seen == 2  # the refused turn leaves no trace


def test_cli_chat_talks_with_the_real_vocabulary(real_chat, monkeypatch, capsys):
    answers = iter(["今天天气真好", "你在做什么", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert cli.main(["chat", "--model", "gpt2-chinese-chat", "--max-new-tokens", "10"]) == 0
    out = capsys.readouterr().out
    assert out.count("模型：是的\n") == 2 and "[SEP]" not in out
