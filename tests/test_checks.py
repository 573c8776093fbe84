"""The lab checkers: a right answer passes, a typical wrong answer fails with its hint, a stub is reported kindly.

Each right answer here is written the way a learner would write it (not the helper it is compared with),
so the tests show that the checkers accept independent, correct implementations.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from helpers import checks
from helpers.generation import generate
from helpers.tokens import encode

# ------------------------------------------------------------------------------ learner-style answers


def split_turns(text):
    return [t.strip() for t in text.replace("[CLS]", "").split("[SEP]") if t.strip()]


def first_reply(text):
    return text.split("[SEP]", 1)[0].strip()


def build_prompt(history):
    return "[CLS]" + "".join(turn + "[SEP]" for turn in history)


def vocab_lines(tokenizer, text):
    return [i + 1 for i in tokenizer.encode(text, add_special_tokens=False)]


def unknown_chars(tokenizer, text):
    found = []
    for ch in text:
        if not ch.isspace() and ch not in found and tokenizer.encode(ch, add_special_tokens=False) == [tokenizer.unk_token_id]:
            found.append(ch)
    return found


def decode_text(tokenizer, ids):
    text = tokenizer.decode(ids)
    return re.sub(r"(?<=[^\x00-\x7f\]])\s+|\s+(?=[^\x00-\x7f\[])|(?<=\])\s+|\s+(?=\[)", "", text)


def rms_norm(x, weight, eps):
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


def swiglu(x, gate_weight, up_weight, down_weight):
    gate = x @ gate_weight.T
    return (gate * torch.sigmoid(gate) * (x @ up_weight.T)) @ down_weight.T


def causal_attention(q, k, v):
    n, d = q.shape
    scores = q @ k.T / math.sqrt(d)
    scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def softmax(logits, temperature=1.0):
    scaled = logits / temperature
    e = torch.exp(scaled - scaled.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def top_k_filter(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return torch.where(logits < kth, torch.tensor(float("-inf")), logits)


def top_p_filter(logits, p):
    probs = softmax(logits)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep_sorted = (sorted_probs.cumsum(-1) - sorted_probs) < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return int(torch.multinomial(softmax(logits), 1, generator=generator))


def greedy_loop(model, input_ids, steps=20):
    for _ in range(steps):
        logits = model(input_ids).logits[:, -1, :]
        next_token = torch.argmax(torch.softmax(logits, dim=-1), dim=-1, keepdim=True)
        input_ids = torch.cat([input_ids, next_token], dim=1)
    return input_ids


def greedy_with_probs(model, input_ids, steps):
    probs_seen = []
    for _ in range(steps):
        probs = torch.softmax(model(input_ids).logits[:, -1, :], dim=-1)
        next_id = int(probs.argmax())
        probs_seen.append(probs[0, next_id].item())
        input_ids = torch.cat([input_ids, torch.tensor([[next_id]])], dim=1)
    return input_ids, probs_seen


def greedy_until(model, input_ids, max_steps, stop_id):
    for _ in range(max_steps):
        next_id = int(model(input_ids).logits[0, -1].argmax())
        input_ids = torch.cat([input_ids, torch.tensor([[next_id]])], dim=1)
        if next_id == stop_id:
            break
    return input_ids


DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml_prompt(history, system=None):
    text = f"<|im_start|>system\n{system or DEFAULT_SYSTEM}<|im_end|>\n"
    for i, turn in enumerate(history):
        text += f"<|im_start|>{'user' if i % 2 == 0 else 'assistant'}\n{turn}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def chat_reply(model, tokenizer, history, max_new_tokens=30):
    if max_new_tokens == 0:
        return ""
    result = generate(model, tokenizer, build_prompt(history), max_new_tokens, stop_tokens=("[SEP]",))
    return first_reply(result.text)


def causal_mask(n):
    return torch.tril(torch.ones(n, n)).bool()


def prefix_mask(n, prefix_len):
    mask = causal_mask(n)
    mask[:prefix_len, :prefix_len] = True
    return mask


def blank_infilling(tokens, spans):
    part_a, part_b, last = [], [], 0
    for start, end in spans:
        part_a += tokens[last:start] + ["[MASK]"]
        part_b += ["[START]", *tokens[start:end], "[END]"]
        last = end
    part_a += tokens[last:]
    return part_a + part_b, len(part_a)


def cached_greedy_loop(model, input_ids, steps):
    past, fed = None, input_ids
    for _ in range(steps):
        out = model(input_ids=fed, past_key_values=past, use_cache=True)
        past = out.past_key_values
        fed = out.logits[:, -1:].argmax(-1)
        input_ids = torch.cat([input_ids, fed], dim=1)
    return input_ids


def kv_cache_bytes(config, seq_len, bytes_per_value=4):
    head_dim = config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * seq_len * bytes_per_value


def stub(*args, **kwargs):
    raise NotImplementedError("练习 1：请在这里写你的代码")


# ------------------------------------------------------------------------------ the table of checkers
# name: (checker, right answer, typical wrong answer, text its hint must contain, fixture the checker needs)

CASES = {
    "split_turns": (checks.check_split_turns, split_turns, lambda t: t.split("[SEP]"), "[CLS]", None),
    "first_reply": (checks.check_first_reply, first_reply, lambda t: t.split("[SEP]")[-1], "第一个 [SEP] 之前", None),
    "build_prompt": (checks.check_build_prompt, build_prompt, lambda h: "[CLS]" + "[SEP]".join(h), "以 [SEP] 结尾", None),
    "vocab_lines": (checks.check_vocab_lines, vocab_lines,
                    lambda tok, text: tok.encode(text, add_special_tokens=False), "行号 = id + 1", "tokenizer"),
    "vocab_lines_specials": (checks.check_vocab_lines, vocab_lines,
                             lambda tok, text: [i + 1 for i in tok.encode(text)], "add_special_tokens=False", "tokenizer"),
    "unknown_chars": (checks.check_unknown_chars, unknown_chars,
                      lambda tok, text: [c for c in text if tok.encode(c, add_special_tokens=False) == [100]],
                      "只列一次", "tokenizer"),
    "decode": (checks.check_decode, decode_text, lambda tok, ids: tok.decode(ids).replace(" ", ""),
               "英文单词之间的空格要保留", "tokenizer"),
    "rmsnorm": (checks.check_rmsnorm, rms_norm,
                lambda x, w, eps: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * w,
                "RMSNorm 不减均值", "smollm2_model"),
    "swiglu": (checks.check_swiglu, swiglu,
               lambda x, g, u, d: (torch.relu(x @ g.T) * (x @ u.T)) @ d.T, "SiLU 只作用在 gate 分支上", "smollm2_model"),
    "causal_attention_no_mask": (checks.check_causal_attention, causal_attention,
                                 lambda q, k, v: torch.softmax(q @ k.T / math.sqrt(q.size(-1)), -1) @ v,
                                 "未来", "smollm2_model"),
    "causal_attention_no_scale": (checks.check_causal_attention, causal_attention,
                                  lambda q, k, v: torch.softmax((q @ k.T).masked_fill(
                                      torch.ones(len(q), len(q), dtype=torch.bool).triu(1), float("-inf")), -1) @ v,
                                  "sqrt(d)", "smollm2_model"),
    "softmax": (checks.check_softmax, softmax, lambda x, t=1.0: x.exp() / x.exp().sum(), "先减去最大值", None),
    "temperature": (checks.check_temperature, softmax, lambda x, t=1.0: softmax(x * t), "温度是“除”", None),
    "top_k": (checks.check_top_k, top_k_filter,
              lambda x, k: torch.full_like(x, float("-inf")).scatter(-1, x.topk(k).indices, x.topk(k).values),
              "k 比词表还大", None),
    "top_p": (checks.check_top_p, top_p_filter,
              lambda x, p: x.masked_fill(~torch.zeros_like(x, dtype=torch.bool).scatter(
                  -1, softmax(x).sort(descending=True).indices, softmax(x).sort(descending=True).values.cumsum(-1) <= p),
                  float("-inf")),
              "之前的累计概率是否 < p", None),
    "sampler": (checks.check_sampler, sample_next,
                lambda x, temperature=1.0, top_k=None, top_p=None, generator=None: int(
                    torch.multinomial(softmax(x), 1, generator=generator)) if temperature else int(x.argmax()),
                "先做 top-k 过滤", None),
    "greedy_loop": (checks.check_greedy_loop, greedy_loop,
                    lambda m, ids, steps: torch.cat([ids, torch.stack(
                        [m(ids).logits[0, 0].argmax()] * steps)[None]], 1) if steps else ids,
                    "最后一个位置", "gpt2"),
    "greedy_probs": (checks.check_greedy_probs, greedy_with_probs,
                     lambda m, ids, steps: (greedy_with_probs(m, ids, steps)[0],
                                            [p * 2 for p in greedy_with_probs(m, ids, steps)[1]]),
                     "被选中的那个 token 的概率", "gpt2"),
    "stop_loop": (checks.check_stop_loop, greedy_until,
                  lambda m, ids, n, stop: greedy_until(m, ids, n, stop)[:, :-1]
                  if greedy_until(m, ids, n, stop)[0, -1] == stop else greedy_until(m, ids, n, stop),
                  "停止符本身也保留", "gpt2"),
    "chatml_prompt": (checks.check_chatml_prompt, chatml_prompt,
                      lambda h, s=None: chatml_prompt(h, s).replace("<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n", "")
                      if s is None else chatml_prompt(h, s), "默认的 system", "smollm2_tokenizer"),
    "chat_reply": (checks.check_chat_reply, chat_reply,
                   lambda m, tok, h, n: "" if n == 0 else chat_reply(m, tok, h[-1:] + ["x"], n), "以 [SEP] 结尾", "gpt2"),
    "causal_mask": (checks.check_causal_mask, causal_mask, lambda n: torch.ones(n, n).triu().bool(), "下三角", None),
    "prefix_mask": (checks.check_prefix_mask, prefix_mask,
                    lambda n, p: causal_mask(n) | (torch.arange(n)[:, None] < p), "看不见前缀之后", None),
    "blank_infilling": (checks.check_blank_infilling, blank_infilling,
                        lambda toks, spans: (blank_infilling(toks, spans)[0], len(toks)), "A 部分的长度", None),
    "kv_cache_loop": (checks.check_kv_cache_loop, cached_greedy_loop,
                      lambda m, ids, steps: greedy_loop(m, ids, steps), "只送入 1 个新 token", "smollm2"),
    "kv_cache_size": (checks.check_kv_cache_size, kv_cache_bytes,
                      lambda c, n, b=4: 2 * c.num_hidden_layers * c.hidden_size * n * b, "num_key_value_heads", "smollm2_model"),
}


NEEDS = {None: lambda get: (), "tokenizer": lambda get: (get("gpt2_base")[1],), "gpt2": lambda get: get("gpt2_base"),
         "smollm2": lambda get: get("smollm2"), "smollm2_model": lambda get: (get("smollm2")[0],),
         "smollm2_tokenizer": lambda get: (get("smollm2")[1],)}


@pytest.fixture
def extra_args(request):
    """The model / tokenizer arguments a checker needs besides the learner's function (loaded only if needed)."""
    return lambda need: NEEDS[need](request.getfixturevalue)


@pytest.mark.parametrize("name", CASES)
def test_right_answer_passes(name, extra_args, capsys):
    checker, right, _, _, need = CASES[name]
    assert checker(right, *extra_args(need)) is True
    out = capsys.readouterr().out
    assert out.startswith("✅ 通过：") and "❌" not in out


@pytest.mark.parametrize("name", CASES)
def test_typical_wrong_answer_fails_with_its_hint(name, extra_args, capsys):
    checker, _, wrong, hint, need = CASES[name]
    assert checker(wrong, *extra_args(need)) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ 没通过：") and "提示 (hint)：" in out
    assert hint in out


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("vocab_lines_specials", "causal_attention_no_scale")])
def test_stub_is_reported_as_not_implemented(name, extra_args, capsys):
    checker, _, _, _, need = CASES[name]
    assert checker(stub, *extra_args(need)) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ ") and "还没有实现：练习 1：请在这里写你的代码" in out
    assert "Traceback" not in out


def test_a_crash_in_the_learners_code_is_reported_with_its_line(capsys):
    def broken_softmax(logits):
        total = logits.exp().sum()
        return logits.exp() / total.nonexistent

    assert checks.check_softmax(broken_softmax) is False
    out = capsys.readouterr().out
    assert "你的代码报错了：AttributeError" in out
    assert "total.nonexistent" in out and "Traceback" not in out


def test_a_missing_return_is_named():
    assert checks.check_split_turns(lambda text: None) is False


def test_missing_return_hint(capsys):
    checks.check_first_reply(lambda text: None)
    assert "别忘了写 return" in capsys.readouterr().out


def test_a_learner_who_changes_the_input_in_place_still_gets_a_fair_check():
    def in_place_top_k(logits, k):
        kth = torch.topk(logits, min(k, logits.size(-1))).values[..., -1:]
        logits[logits < kth] = float("-inf")
        return logits

    assert checks.check_top_k(in_place_top_k) is True


def test_kv_cache_reference_equals_the_real_cache(smollm2):
    model, _ = smollm2
    assert checks.measured_cache_bytes(model, 5) == checks.reference_cache_bytes(model.config, 5) == 2 * 30 * 3 * 64 * 5 * 4


def test_attention_reference_reproduces_smollm2_layer_0(smollm2):
    model, _ = smollm2
    q, k, v, expected = checks.attention_inputs(model)
    assert q.shape == (9, 7, 64) and k.shape == (3, 7, 64)
    heads = torch.cat([checks.reference_attention(q[h], k[h // 3], v[h // 3]) for h in range(9)], dim=-1)
    with torch.no_grad():
        got = model.model.layers[0].self_attn.o_proj(heads)
    assert torch.allclose(got, expected, atol=1e-4)


def test_greedy_reference_is_model_generate_on_the_prompt(gpt2_base):
    model, tok = gpt2_base
    ids = torch.tensor([encode(tok, "[CLS]今天天气真")])
    assert checks.reference_greedy(model, ids, 6)[:6] == [101, 791, 1921, 1921, 3698, 4696]
    assert checks.reference_greedy(model, ids, 6) == generate(model, tok, "[CLS]今天天气真", 6).ids


def test_answers_in_another_reasonable_form_are_accepted(gpt2_base):
    model, tok = gpt2_base
    assert checks.check_vocab_lines(lambda t, text: torch.tensor(vocab_lines(t, text), dtype=torch.long), tok)
    assert checks.check_greedy_loop(lambda m, ids, steps: greedy_loop(m, ids, steps)[0].tolist(), model, tok)
    assert checks.check_causal_mask(lambda n: torch.tril(torch.ones(n, n)))


def test_odd_return_values_give_a_verdict_not_a_crash(gpt2_base, capsys):
    model, tok = gpt2_base
    assert checks.check_greedy_probs(lambda m, ids, steps: (greedy_loop(m, ids, steps), "abc"), model, tok) is False
    assert checks.check_vocab_lines(lambda t, text: 42, tok) is False
    assert checks.check_greedy_loop(lambda m, ids, steps: {"ids": ids}, model, tok) is False
    out = capsys.readouterr().out
    assert out.count("❌ 没通过") == 3 and "Traceback" not in out


def test_a_learner_who_changes_the_history_list_does_not_fool_the_checker():
    def appending_build_prompt(history):
        history.append("多出来的一句")
        return build_prompt(history[:-1])

    assert checks.check_build_prompt(appending_build_prompt) is True
