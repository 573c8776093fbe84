"""Checkers for the lab exercises: run the learner's function, compare with a reference, say so kindly.

Every checker calls the learner's function on several inputs (including edge cases), compares each
answer with the course's own helpers or with the model's own modules, and prints one verdict in Chinese:

    ✅ 通过：...                       every input gave the right answer
    ❌ 没通过：... 输入 / 期望 / 得到 / 提示   the first input that went wrong, and a hint
    ❌ 还没有实现：...                   the exercise still raises NotImplementedError

A checker returns True when everything passed and False otherwise. It never raises because of the
learner's code (errors are caught and reported with the line that failed) and never writes any file.
"""

from __future__ import annotations

import copy
import math
import traceback
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from transformers.utils import logging as hf_logging

from .chat import first_reply, sep_prompt, split_turns, template_prompt
from .generation import generate
from .sampling import next_token_probs, softmax, top_k_filter, top_p_filter
from .tokens import decode, encode, token_table, unknown_characters

# ---------------------------------------------------------------------------------------------------
# Reporting: the only machinery every checker shares.
# ---------------------------------------------------------------------------------------------------


class Mismatch(Exception):
    """The learner's answer differs from the reference for one input."""

    def __init__(self, case: str, expected: str, got: str, hint: str):
        super().__init__(case)
        self.case, self.expected, self.got, self.hint = case, expected, got, hint


class LearnerError(Exception):
    """The learner's code raised an exception (other than NotImplementedError) for one input."""

    def __init__(self, case: str, error: Exception, hint: str = ""):
        super().__init__(case)
        self.case, self.error, self.hint = case, error, hint


def call(fn: Callable[..., Any], case: str, *args: Any, **kwargs: Any) -> Any:
    """Run the learner's function; an exception becomes a LearnerError that remembers the input."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # the learner's bug, reported by `verdict`
        raise LearnerError(case, error) from None


def failing_line(error: Exception) -> str:
    """'第 N 行：code' for the innermost frame of the learner's own code (not torch, not this file)."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__)
        if "site-packages" not in frame.filename and frame.filename != __file__
    ]
    if not frames:
        return ""
    frame = frames[-1]
    return f"\n   出错的位置：第 {frame.lineno} 行  {(frame.line or '').strip()}".rstrip()


def verdict(title: str, body: Callable[[], int], hint: str) -> bool:
    """Run a checker's body (returns how many inputs it tried) and print one verdict; True if it passed."""
    try:
        count = body()
    except NotImplementedError as error:
        print(f"❌ {title}：还没有实现：{error}。写好代码、重新运行定义函数的单元格，再运行这个检查。")
        return False
    except LearnerError as failure:
        error = failure.error
        print(
            f"❌ 没通过：{title}\n   输入 (input)：{failure.case}\n"
            f"   你的代码报错了：{type(error).__name__}: {error}{failing_line(error)}\n"
            + (f"   提示 (hint)：{failure.hint}\n   参考思路：{hint}" if failure.hint else f"   提示 (hint)：{hint}")
        )
        return False
    except Mismatch as failure:
        print(
            f"❌ 没通过：{title}\n   输入 (input)：{failure.case}\n   期望 (expected)：{failure.expected}\n"
            f"   得到 (got)：{failure.got}\n   提示 (hint)：{failure.hint}"
        )
        return False
    print(f"✅ 通过：{title}（{count} 个测试输入全部正确）")
    return True


def rounded(value: Any) -> Any:
    """Floats rounded to 4 decimals, inside nested lists too (bools and ints untouched)."""
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 4)
    return value


def show(value: Any) -> str:
    """A short, readable rendering of a value for the verdict."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bool and value.numel() <= 64:
            return f"tensor({value.int().tolist()})（1 = True，0 = False）"
        if value.numel() <= 12:
            return f"tensor({rounded(value.tolist())})"
        first = rounded(value.flatten()[:4].tolist())
        return f"形状 (shape) {tuple(value.shape)} 的张量，前 4 个值 {first} …"
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + " …"


def expect_equal(case: str, got: Any, expected: Any, hint: str) -> None:
    """Plain equality (strings, lists, ints); a tensor answer is compared through `.tolist()`."""
    if got is None and expected is not None:
        raise Mismatch(case, show(expected), "None", "函数没有返回任何东西：别忘了写 return。")
    if isinstance(got, torch.Tensor) and not isinstance(expected, torch.Tensor):
        got = got.tolist()
    try:
        same = bool(got == expected)
    except (RuntimeError, TypeError, ValueError):
        same = False
    if not same:
        raise Mismatch(case, show(expected), show(got), hint)


def expect_close(case: str, got: Any, expected: torch.Tensor, hint: str, atol: float = 1e-5) -> None:
    """Same shape and (nearly) the same numbers; -inf must match -inf."""
    if got is None:
        raise Mismatch(case, show(expected), "None", "函数没有返回任何东西：别忘了写 return。")
    if not isinstance(got, torch.Tensor):
        raise Mismatch(case, show(expected), f"{type(got).__name__}：{show(got)}", "请返回一个 torch.Tensor。")
    if tuple(got.shape) != tuple(expected.shape):
        raise Mismatch(case, f"形状 (shape) {tuple(expected.shape)}", f"形状 (shape) {tuple(got.shape)}", hint)
    got = got.detach().float().cpu()
    expected = expected.float().cpu()
    if not torch.allclose(got, expected, atol=atol, rtol=1e-4):
        if not torch.equal(torch.isinf(got), torch.isinf(expected)):
            note = "（-inf 的位置不对）"
        elif torch.isnan(got).any():
            note = "（出现了 nan）"
        else:
            finite = torch.isfinite(expected)
            note = f"（最大误差 max abs diff {(got - expected).abs()[finite].max().item():.2e}）"
        raise Mismatch(case, show(expected), show(got) + note, hint)


def as_id_list(ids: Any) -> Any:
    """Token ids as a flat list of ints, whether the learner returned a tensor [1, n] or [n], or a (nested) list.

    Anything else is returned unchanged, so that the verdict shows what the learner returned.
    """
    if isinstance(ids, torch.Tensor):
        return ids.detach().cpu().flatten().tolist()
    if isinstance(ids, (list, tuple)) and len(ids) == 1 and isinstance(ids[0], (list, tuple, torch.Tensor)):
        return as_id_list(ids[0])
    if isinstance(ids, (list, tuple)):
        try:
            return [int(i) for i in ids]
        except (TypeError, ValueError, RuntimeError):
            return ids
    return ids


def check_cases(title: str, fn: Callable[..., Any], reference: Callable[..., Any],
                cases: list[tuple[tuple, str]], hint: str, compare: Callable[..., None] = expect_equal) -> bool:
    """The common checker: for each (args, hint) compare fn(*args) with reference(*args)."""

    def body() -> int:
        for args, case_hint in cases:
            case = ", ".join(show(arg) for arg in args)
            try:
                got = call(fn, case, *clone(args))
            except LearnerError as failure:
                failure.hint = case_hint
                raise
            compare(case, got, reference(*args), case_hint)
        return len(cases)

    return verdict(title, body, hint)


def clone(args: tuple) -> tuple:
    """Deep copies of the arguments, so that the learner's function cannot change the reference's inputs."""
    return copy.deepcopy(args)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings and transformers' log lines (they would land in the notebook's stderr)."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)


def reference_greedy(model: Any, input_ids: torch.Tensor, steps: int) -> list[int]:
    """Prompt + `steps` greedy tokens from transformers' own `model.generate` (never stopping early)."""
    if steps == 0:
        return input_ids[0].tolist()
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    with quiet(), torch.no_grad():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=steps,
                             min_new_tokens=steps, do_sample=False, pad_token_id=pad, eos_token_id=None)
    return out[0].tolist()


# ---------------------------------------------------------------------------------------------------
# Lab 01: chat is text generation ([SEP] turns).
# ---------------------------------------------------------------------------------------------------

SEED_CHAT = "[CLS]今天天气真好[SEP]是的，你最近怎么样[SEP]挺好的，你呢[SEP]"


def check_split_turns(my_split_turns: Callable[[str], list[str]]) -> bool:
    """`split_turns(text) -> list[str]`: the turns between [SEP]s, without [CLS], spaces and empty pieces."""
    cases = [
        ((SEED_CHAT,), "去掉开头的 [CLS]，也别忘了最后一个 [SEP] 后面会切出一个空字符串，要丢掉。"),
        (("今天天气真好[SEP]是的[SEP]我还没说", ), "最后一段没有 [SEP] 结尾，也算一轮（只是还没说完）。"),
        (("[CLS]你好[SEP][SEP]在吗[SEP]",), "两个 [SEP] 紧挨着时，中间是空字符串，要丢掉。"),
        ((" 你好 [SEP] 在的 [SEP]",), "每一轮两头的空格要去掉（str.strip）。"),
        (("",), "空字符串里一轮对话也没有：应返回 []。"),
    ]
    return check_cases("split_turns 切分对话轮次", my_split_turns, split_turns, cases,
                       "先把 [CLS] 换成空字符串，再用 text.split('[SEP]') 切开，去掉空白的片段。")


def check_first_reply(my_first_reply: Callable[[str], str]) -> bool:
    """`first_reply(new_text) -> str`: what a chat product shows, the text before the first [SEP]."""
    cases = [
        (("是的，你最近怎么样[SEP]挺好的，你呢[SEP]我也是",), "回复是第一个 [SEP] 之前的文字，后面的内容是模型替双方“编”的，不显示。"),
        (("好啊[SEP]",), "去掉 [SEP] 本身。"),
        (("模型还没说完，没有遇到分隔符",), "没有 [SEP] 时，整段文字都是回复。"),
        (("[SEP]后面的话",), "一开头就是 [SEP]：这次回复是空字符串。"),
        ((" 你好 [SEP]",), "回复两头的空格要去掉（str.strip）。"),
        (("",), "空字符串的回复还是空字符串。"),
    ]
    return check_cases("first_reply 提取要显示的回复", my_first_reply, first_reply, cases,
                       "text.split('[SEP]', 1)[0] 就是第一个 [SEP] 之前的部分。")


def check_build_prompt(my_build_prompt: Callable[[list[str]], str]) -> bool:
    """`build_prompt(history) -> str`: `[CLS]turn1[SEP]turn2[SEP]...[SEP]`, ready for the next turn."""
    cases = [
        ((["你好"],), "每一轮后面都跟一个 [SEP]，最后以 [SEP] 结尾，模型才知道轮到对方说话。"),
        ((["今天天气真好", "是的，你最近怎么样", "挺好的"],), "开头是 [CLS]，每一轮后面跟一个 [SEP]。"),
        (([],), "没有历史时，提示词只有 [CLS]。"),
    ]
    return check_cases("build_prompt 用对话历史拼出提示词", my_build_prompt, sep_prompt, cases,
                       "'[CLS]' + ''.join(turn + '[SEP]' for turn in history)")


# ---------------------------------------------------------------------------------------------------
# Lab 02: tokens, ids and vocab.txt.
# ---------------------------------------------------------------------------------------------------


def check_vocab_lines(my_vocab_lines: Callable[[Any, str], list[int]], tokenizer: Any) -> bool:
    """`vocab_lines(tokenizer, text) -> list[int]`: the vocab.txt line of every token of `text`."""
    texts = [
        ("[CLS]今天天气真", "vocab.txt 的行号从 1 开始，而 id 从 0 开始：行号 = id + 1。"),
        ("我爱machine learning", "英文单词可能是一个整词 token：先用分词器编码，再换算行号，不要按字母数。"),
        ("他说“你好”", "词表里没有的字符会变成 [UNK]（id 100），它也有自己的行号。"),
        ("", "空字符串没有 token：应返回 []。"),
    ]
    cases = [((tokenizer, text), hint) for text, hint in texts]

    def reference(tok: Any, text: str) -> list[int]:
        return [row.vocab_line for row in token_table(tok, text)]

    def body() -> int:
        for (tok, text), hint in cases:
            got = call(my_vocab_lines, repr(text), tok, text)
            if isinstance(got, (list, tuple)) and len(got) == len(reference(tok, text)) + 2:
                hint = "多了两个 token：编码时用 add_special_tokens=False（或 helpers.tokens.encode），不要自动加 [CLS]/[SEP]。"
            expect_equal(repr(text), got, reference(tok, text), hint)
        return len(cases)

    return verdict("vocab_lines 找到每个 token 在 vocab.txt 的行号", body,
                   "ids = tokenizer.encode(text, add_special_tokens=False)，行号 = id + 1。")


def check_unknown_chars(my_unknown_chars: Callable[[Any, str], list[str]], tokenizer: Any) -> bool:
    """`unknown_chars(tokenizer, text) -> list[str]`: characters that become [UNK], each once, in order."""
    texts = [
        ("今天天气真好", "这句话的每个字都在词表里：应返回 []。"),
        ("他说“你好”😀", "弯引号 “ ” 和表情符号不在词表里，会变成 [UNK]。"),
        ("😀😀好😀", "同一个字符只列一次，按第一次出现的顺序。"),
        ("𠮷野家 好", "空格不是 [UNK]，不要列出来。"),
        ("", "空字符串里没有字符：应返回 []。"),
    ]
    cases = [((tokenizer, text), hint) for text, hint in texts]

    def body() -> int:
        for (tok, text), hint in cases:
            expect_equal(repr(text), call(my_unknown_chars, repr(text), tok, text), unknown_characters(tok, text), hint)
        return len(cases)

    return verdict("unknown_chars 找出会变成 [UNK] 的字符", body,
                   "逐个字符编码：encode(tokenizer, ch) == [tokenizer.unk_token_id] 的就是词表里没有的字符。")


def check_decode(my_decode: Callable[[Any, list[int]], str], tokenizer: Any) -> bool:
    """`decode_text(tokenizer, ids) -> str`: text without the spaces between Chinese characters."""
    texts = [
        ("今天天气真好", "tokenizer.decode 会在汉字之间加空格：把它们去掉。"),
        ("[CLS]今天天气真", "特殊 token 后面的空格也要去掉：[CLS]今天……"),
        ("我爱machine learning！", "只去掉挨着汉字（或全角标点、特殊 token 方括号）的空格，英文单词之间的空格要保留。"),
        ("", "空的 id 列表解码成空字符串。"),
    ]
    cases = [(text, encode(tokenizer, text), hint) for text, hint in texts]

    def body() -> int:
        for text, ids, hint in cases:
            case = f"{ids}（{text!r} 的 id）"
            expect_equal(case, call(my_decode, case, tokenizer, list(ids)), decode(tokenizer, ids), hint)
        return len(cases)

    return verdict("decode_text 解码时去掉多余的空格", body,
                   "先 tokenizer.decode(ids)，再用正则表达式删掉挨着非 ASCII 字符的空白。")


# ---------------------------------------------------------------------------------------------------
# Lab 03: the pieces of a Llama block, checked against SmolLM2's own modules.
# ---------------------------------------------------------------------------------------------------

PROBE_IDS = torch.tensor([[504, 3458, 282, 4649, 314, 2114, 30]])  # any token ids: the weights are what matter


def hidden_states(model: Any) -> tuple[torch.Tensor, ...]:
    """SmolLM2's hidden states for PROBE_IDS: [0] the embeddings, [i] the input of block i."""
    with quiet(), torch.no_grad():
        return model(PROBE_IDS, output_hidden_states=True).hidden_states


def reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) * weight, over the last dimension."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def check_rmsnorm(my_rms_norm: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], model: Any) -> bool:
    """`rms_norm(x, weight, eps) -> Tensor`, on small inputs and on SmolLM2's real norms."""
    gen = torch.Generator().manual_seed(0)
    small = [
        ((torch.tensor([[3.0, 4.0]]), torch.ones(2), 0.0),
         "RMSNorm 不减均值（那是 LayerNorm）：x / sqrt(mean(x²) + eps)。[3, 4] 的 RMS 是 sqrt(12.5)。"),
        ((torch.tensor([[3.0, 4.0]]), torch.tensor([2.0, 0.5]), 0.0), "最后要逐元素乘以 weight。"),
        ((torch.randn(2, 3, 8, generator=gen), torch.rand(8, generator=gen) + 0.5, 1e-5),
         "沿最后一维求均值：x.pow(2).mean(dim=-1, keepdim=True)。"),
        ((torch.zeros(1, 4), torch.ones(4), 1e-5), "全 0 的输入：eps 要加在开根号之前，避免除以 0。"),
    ]

    def body() -> int:
        for args, hint in small:
            case = ", ".join(show(a) for a in args)
            expect_close(case, call(my_rms_norm, case, *clone(args)), reference_rms_norm(*args), hint)
        states = hidden_states(model)
        real = [("第 0 层的 input_layernorm，输入是词嵌入", model.model.layers[0].input_layernorm, states[0]),
                ("最后的 norm（model.model.norm），输入是一个深层的隐藏状态", model.model.norm, states[-2])]
        for case, norm, x in real:
            with torch.no_grad():
                expected = norm(x)
            got = call(my_rms_norm, case, x.clone(), norm.weight.detach().clone(), norm.variance_epsilon)
            expect_close(f"SmolLM2 {case}", got, expected, "和 SmolLM2 的模块对不上：检查 eps 的位置和 weight。", atol=1e-4)
        return len(small) + len(real)

    return verdict("rms_norm（RMSNorm 归一化）", body, "x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight")


def reference_swiglu(x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """down( silu(x Wgᵀ) * (x Wuᵀ) )."""
    return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)


SWIGLU_HINT = ("SwiGLU = down( silu(x @ gate.T) * (x @ up.T) )：SiLU 只作用在 gate 分支上；"
               "nn.Linear 的权重形状是 [输出, 输入]，所以要乘它的转置 .T。")


def check_swiglu(my_swiglu: Callable[..., torch.Tensor], model: Any) -> bool:
    """`swiglu(x, gate_weight, up_weight, down_weight) -> Tensor`, on small inputs and SmolLM2's MLPs."""
    gen = torch.Generator().manual_seed(1)
    small = [(torch.randn(1, 3, 4, generator=gen), torch.randn(6, 4, generator=gen),
              torch.randn(6, 4, generator=gen), torch.randn(4, 6, generator=gen))]

    def body() -> int:
        for args in small:
            case = ", ".join(show(a) for a in args)
            expect_close(case, call(my_swiglu, case, *clone(args)), reference_swiglu(*args), SWIGLU_HINT)
        states = hidden_states(model)
        layers = (0, len(model.model.layers) // 2)
        for index in layers:
            mlp = model.model.layers[index].mlp
            with torch.no_grad():
                x = model.model.layers[index].post_attention_layernorm(states[index])
                expected = mlp(x)
            weights = [w.weight.detach().clone() for w in (mlp.gate_proj, mlp.up_proj, mlp.down_proj)]
            case = f"SmolLM2 第 {index} 层的 mlp，x 的形状 {tuple(x.shape)}"
            expect_close(case, call(my_swiglu, case, x.clone(), *weights), expected, SWIGLU_HINT, atol=1e-4)
        return len(small) + len(layers)

    return verdict("swiglu（SwiGLU 前馈网络）", body, SWIGLU_HINT)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Single-head causal self-attention: softmax(q kᵀ / sqrt(d) with the future masked) v."""
    scores = q @ k.T / math.sqrt(q.size(-1))
    future = torch.ones(len(q), len(k), dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v


def attention_inputs(model: Any, layer: int = 0) -> tuple[torch.Tensor, ...]:
    """Layer `layer` of SmolLM2 on PROBE_IDS: per-head q [H, T, d], k and v [KV, T, d] (RoPE applied), output."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    attn = model.model.layers[layer].self_attn
    seen: dict[str, Any] = {}
    pre = attn.register_forward_pre_hook(lambda m, a, kw: seen.update(x=kw.get("hidden_states", a[0] if a else None),
                                                                      rope=kw["position_embeddings"]),
                                         with_kwargs=True)
    post = attn.register_forward_hook(lambda m, a, out: seen.update(out=out[0]))
    try:
        hidden_states(model)
    finally:
        pre.remove()
        post.remove()
    x, (cos, sin), d = seen["x"], seen["rope"], attn.head_dim
    with torch.no_grad():
        q = attn.q_proj(x).view(1, x.size(1), -1, d).transpose(1, 2)
        k = attn.k_proj(x).view(1, x.size(1), -1, d).transpose(1, 2)
        v = attn.v_proj(x).view(1, x.size(1), -1, d).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
    return q[0], k[0], v[0], seen["out"][0]


ATTENTION_HINT = ("scores = q @ k.T / sqrt(d)；把 j > i 的位置（未来）设为 -inf；"
                  "weights = softmax(scores, dim=-1)；输出 = weights @ v。")


def check_causal_attention(my_attention: Callable[..., torch.Tensor], model: Any) -> bool:
    """`causal_attention(q, k, v) -> Tensor` for one head ([T, d] each); then all heads of SmolLM2's layer 0."""
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(5, 8, generator=gen) for _ in range(3))
    one = tuple(torch.randn(1, 4, generator=gen) for _ in range(3))
    small = [(one, "只有一个 token 时，它只能看见自己：输出就等于 v。"),
             ((q, k, v), ATTENTION_HINT)]

    def body() -> int:
        for args, hint in small:
            case = ", ".join(show(a) for a in args)
            expect_close(case, call(my_attention, case, *clone(args)), reference_attention(*args), hint)
        # The future must not matter: change the last token's key and value, earlier outputs stay the same.
        before = call(my_attention, "因果性测试", q.clone(), k.clone(), v.clone())
        after = call(my_attention, "因果性测试", q.clone(), torch.cat([k[:-1], k[-1:] + 5]), torch.cat([v[:-1], v[-1:] + 5]))
        expect_close("改变最后一个 token 的 k 和 v 之后，前 4 个位置的输出", after[:-1], before[:-1].detach(),
                     "第 i 个位置只能看见 0..i：未来的 token 不能影响过去。检查掩码是不是上三角 triu(1)。")
        # Real inputs: every head of layer 0 (grouped-query attention: head h uses key/value head h // group).
        hq, hk, hv, expected = attention_inputs(model)
        group = hq.size(0) // hk.size(0)
        heads = [call(my_attention, f"SmolLM2 第 0 层第 {h} 个头", hq[h].clone(), hk[h // group].clone(),
                      hv[h // group].clone()) for h in range(hq.size(0))]
        attn = model.model.layers[0].self_attn
        with torch.no_grad():
            got = attn.o_proj(torch.cat([torch.as_tensor(h) for h in heads], dim=-1))
        expect_close(f"SmolLM2 第 0 层的 {hq.size(0)} 个头（拼起来再经过 o_proj），{hq.size(1)} 个 token",
                     got, expected, "和 SmolLM2 自己的注意力对不上：检查缩放用的是 sqrt(head_dim)，掩码方向对不对。", atol=1e-4)
        return len(small) + 2

    return verdict("causal_attention（单头因果自注意力）", body, ATTENTION_HINT)


# ---------------------------------------------------------------------------------------------------
# Lab 04: softmax, temperature, top-k, top-p and the sampler.
# ---------------------------------------------------------------------------------------------------


def check_softmax(my_softmax: Callable[..., torch.Tensor]) -> bool:
    """`softmax(logits) -> Tensor`: positive, sums to 1 along the last dimension, stable for huge scores."""
    cases = [
        ((torch.tensor([2.0, 1.0, 0.1]),), "softmax = exp(x) / sum(exp(x))。"),
        ((torch.tensor([0.0, 0.0, 0.0, 0.0]),), "分数都一样时，每个 token 的概率都一样：1/4。"),
        ((torch.tensor([1000.0, 1001.0, 1002.0]),),
         "exp(1000) 会溢出成 inf，得到 nan：先减去最大值再取 exp（结果不变，但不会溢出）。"),
        ((torch.tensor([[1.0, 2.0, 3.0], [3.0, 3.0, -1.0]]),),
         "二维输入时每一行分别归一化：沿最后一维 (dim=-1, keepdim=True) 求最大值和求和。"),
        ((torch.tensor([5.0]),), "只有一个 token 时，它的概率是 1。"),
    ]
    return check_cases("softmax（把分数变成概率）", my_softmax, softmax, cases,
                       "x = logits - logits.max(dim=-1, keepdim=True).values；e = x.exp()；return e / e.sum(dim=-1, keepdim=True)",
                       compare=expect_close)


def check_temperature(my_softmax: Callable[..., torch.Tensor]) -> bool:
    """`softmax(logits, temperature) -> Tensor`: the scores are divided by the temperature first."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    cases = [
        ((logits, 1.0), "温度 1 就是普通的 softmax。"),
        ((logits, 0.5), "温度是“除”：logits / temperature。温度越低，分布越尖（最大的更大）。"),
        ((logits, 2.0), "温度越高，分布越平：logits / 2。"),
        ((logits, 0.01), "温度很低时 logits / T 很大：先除以温度，再减去最大值，避免溢出。"),
    ]
    return check_cases("softmax 的温度 temperature", my_softmax, softmax, cases,
                       "先 logits / temperature，再做（数值稳定的）softmax。", compare=expect_close)


def check_top_k(my_top_k: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """`top_k_filter(logits, k) -> Tensor`: keep the k best scores (and ties with the k-th), the rest -inf."""
    logits = torch.tensor([0.1, 3.0, 2.0, -1.0, 5.0])
    cases = [
        ((logits, 2), "只保留分数最高的 k 个，其余设为 float('-inf')（不是 0）。"),
        ((logits, 1), "k=1 只剩下最高分。"),
        ((logits, 10), "k 比词表还大时全部保留：先 k = min(k, logits.size(-1))。"),
        ((torch.tensor([1.0, 3.0, 3.0, 2.0]), 1), "和第 k 名分数相同（并列）的 token 也保留：用“小于第 k 大的值”来判断要去掉谁。"),
        ((torch.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]]), 2), "二维输入时每一行分别取前 k 个：沿最后一维做。"),
    ]
    return check_cases("top_k_filter（只保留前 k 名）", my_top_k, top_k_filter, cases,
                       "kth = torch.topk(logits, k).values[..., -1:]；logits.masked_fill(logits < kth, float('-inf'))",
                       compare=expect_close)


def reference_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """helpers' top_p_filter, with p = 1 meaning "keep everything" exactly."""
    return logits.clone() if p >= 1 else top_p_filter(logits, p)


def check_top_p(my_top_p: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """`top_p_filter(logits, p) -> Tensor`: keep the smallest top set whose probability reaches p."""
    logits = torch.tensor([0.2, 0.5, 0.3]).log()  # probabilities 0.2, 0.5, 0.3, deliberately unsorted
    cases = [
        ((logits, 0.75), "保留“加上它累计概率才达到 p”的那个 token：判断的是它之前的累计概率是否 < p。"
                         "这里 0.5 + 0.3 = 0.8 ≥ 0.75，所以 0.5 和 0.3 都保留。"),
        ((logits, 0.3), "概率最大的 token 总是保留，哪怕它一个就超过了 p。"),
        ((logits, 0.01), "p 很小时只剩概率最大的那一个，不能全部去掉。"),
        ((logits, 1.0), "p=1 表示不过滤：全部保留。"),
        ((torch.tensor([3.0, 1.0, 2.0, 0.0]), 0.9), "排序后算累计概率，再把结果放回原来的位置（scatter）。"),
    ]
    return check_cases("top_p_filter（核采样 nucleus）", my_top_p, reference_top_p, cases,
                       "probs 从大到小排序，mass_before = cumsum - probs，保留 mass_before < p 的，再按原顺序放回。",
                       compare=expect_close)


def check_sampler(my_sample: Callable[..., int]) -> bool:
    """`sample_next(logits, temperature, top_k, top_p, generator) -> int`: greedy at 0, else a fair draw."""
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = probs.log()

    def draw(case: str, n: int, seed: int, **settings: Any) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        picks = []
        for _ in range(n):
            got = call(my_sample, case, logits.clone(), generator=gen, **settings)
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = int(got)
            if not isinstance(got, int):
                raise Mismatch(case, "一个 int（token id）", show(got), "返回一个整数 token id：int(...)。")
            picks.append(got)
        return picks

    def frequencies(picks: list[int]) -> list[float]:
        return [round(picks.count(i) / len(picks), 3) for i in range(len(probs))]

    def body() -> int:
        for scores in (logits, torch.tensor([0.0, 4.0, 1.0, 3.9])):
            case = f"{show(scores)}，temperature=0"
            expect_equal(case, call(my_sample, case, scores.clone(), temperature=0.0), int(scores.argmax()),
                         "temperature=0 表示贪心：直接返回 argmax，不要抽样，也不要除以 0。")
        case = f"{show(logits)}，temperature=1，top_k=2，抽 200 次"
        picks = draw(case, 200, 0, temperature=1.0, top_k=2)
        expect_equal(case, sorted(set(picks)), [0, 1],
                     "top_k=2 时只能抽到前 2 名（id 0 和 1）：先做 top-k 过滤，再抽样。")
        case = f"{show(logits)}，temperature=1，top_p=0.5，抽 200 次"
        expect_equal(case, sorted(set(draw(case, 200, 0, temperature=1.0, top_p=0.5))), [0],
                     "top_p=0.5 时只剩概率 0.6 的 id 0：抽样前先做 top-p 过滤。")
        for temperature in (1.0, 2.0):
            case = f"{show(logits)}，temperature={temperature}，抽 2000 次的频率"
            got = frequencies(draw(case, 2000, 1, temperature=temperature))
            want = next_token_probs(logits, temperature).tolist()
            if max(abs(g - w) for g, w in zip(got, want)) > 0.05:
                raise Mismatch(case, f"接近 {rounded(want)}", str(got),
                               "按概率抽样：probs = softmax(logits / temperature)，再 torch.multinomial(probs, 1, generator=generator)。")
        case = "同一个种子 (seed=123) 抽两遍，各 20 次"
        expect_equal(case, draw(case, 20, 123, temperature=1.0), draw(case, 20, 123, temperature=1.0),
                     "把 generator 传给 torch.multinomial(..., generator=generator)，结果才能复现。")
        return 8

    return verdict("sample_next（选出下一个 token）", body,
                   "temperature=0 → argmax；否则 logits / T → top-k → top-p → softmax → torch.multinomial。")


# ---------------------------------------------------------------------------------------------------
# Lab 05: the generation loop, compared with transformers' model.generate.
# ---------------------------------------------------------------------------------------------------

GPT2_PROMPTS = ("[CLS]今天天气真", "[CLS]我们一起去")


def prompt_tensor(tokenizer: Any, text: str) -> torch.Tensor:
    """A prompt as the [1, n] id tensor the loop exercises take."""
    return torch.tensor([encode(tokenizer, text)])


def check_greedy_loop(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """`greedy_loop(model, input_ids, steps) -> Tensor [1, n + steps]`, equal to `model.generate(do_sample=False)`."""
    cases = [(GPT2_PROMPTS[0], 20), (GPT2_PROMPTS[1], 5), (GPT2_PROMPTS[0], 1), (GPT2_PROMPTS[1], 0)]

    def body() -> int:
        for text, steps in cases:
            ids = prompt_tensor(tokenizer, text)
            case = f"{text!r}，steps={steps}"
            got = call(my_loop, case, model, ids.clone(), steps)
            expected = reference_greedy(model, ids, steps)
            hint = ("每一步取最后一个位置的 logits：output.logits[:, -1, :]，argmax 之后用 torch.cat 接到 input_ids 后面，"
                    "下一步把整个序列再送进模型。返回提示词 + 新 token。")
            if steps == 0:
                hint = "steps=0 时一个新 token 也不生成，原样返回 input_ids。"
            expect_equal(case, as_id_list(got), expected, hint)
        return len(cases)

    return verdict("greedy_loop（贪心生成循环）", body, "for _ in range(steps): logits = model(input_ids).logits[:, -1, :] …")


def check_greedy_probs(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """`greedy_with_probs(model, input_ids, steps) -> (Tensor, list[float])`: also each chosen token's probability."""
    cases = [(GPT2_PROMPTS[0], 8), (GPT2_PROMPTS[1], 3)]

    def body() -> int:
        for text, steps in cases:
            case = f"{text!r}，steps={steps}"
            got = call(my_loop, case, model, prompt_tensor(tokenizer, text), steps)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise Mismatch(case, "(ids, probs) 两个值", show(got), "返回两个值：return input_ids, probs。")
            ref = generate(model, tokenizer, text, max_new_tokens=steps)
            expect_equal(case + " 的 ids", as_id_list(got[0]), ref.ids, "ids 部分和 greedy_loop 一样：提示词 + 新 token。")
            want = torch.tensor([s.prob for s in ref.steps])
            try:
                got_probs = torch.tensor([float(p) for p in got[1]])
            except (TypeError, ValueError, RuntimeError):
                raise Mismatch(case + " 的概率", show(want), show(got[1]),
                               "probs 是一个列表，每一步放一个浮点数：probs[0, next_id].item()。") from None
            expect_close(case + " 的概率", got_probs, want,
                         "记录的是 softmax 之后、被选中的那个 token 的概率：probs[0, next_id]（不是 logits）。", atol=1e-4)
        return len(cases)

    return verdict("greedy_with_probs（记录每一步的概率）", body, "probs = torch.softmax(logits, dim=-1)；记录 probs[0, next_id].item()")


def check_stop_loop(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """`greedy_until(model, input_ids, max_steps, stop_id) -> Tensor`: stop right after producing `stop_id`."""
    ids = prompt_tensor(tokenizer, GPT2_PROMPTS[0])
    free = reference_greedy(model, ids, 10)
    new = free[ids.size(1):]
    stop = new[3]
    never = next(i for i in range(1000, 2000) if i not in new)
    cases = [
        (stop, 10, free[: ids.size(1) + new.index(stop) + 1],
         "生成出停止符后立刻停下，停止符本身也保留在结果里（和 helpers.generation.generate 一样）。"),
        (never, 10, free, "停止符一直没出现时，生成满 max_steps 个 token。"),
        (stop, 0, ids[0].tolist(), "max_steps=0 时原样返回 input_ids。"),
    ]

    def body() -> int:
        for stop_id, max_steps, expected, hint in cases:
            case = f"{GPT2_PROMPTS[0]!r}，max_steps={max_steps}，stop_id={stop_id}"
            expect_equal(case, as_id_list(call(my_loop, case, model, ids.clone(), max_steps, stop_id)), expected, hint)
        return len(cases)

    return verdict("greedy_until（遇到停止符就停）", body, "在循环里：接上新 token 之后，if next_id == stop_id: break")


# ---------------------------------------------------------------------------------------------------
# Lab 06: chat prompts and replies.
# ---------------------------------------------------------------------------------------------------


def check_chatml_prompt(my_prompt: Callable[..., str], tokenizer: Any) -> bool:
    """`chatml_prompt(history, system=None) -> str`: SmolLM2's chat template, written by hand."""
    cases = [
        ((["Hi"], None), "没有 system 时，SmolLM2 的模板会自动加上默认的 system 消息（见提示）。"),
        ((["Hi"], "Be brief."), "每条消息是 <|im_start|>角色\\n内容<|im_end|>\\n；最后加 <|im_start|>assistant\\n，让模型接着说。"),
        ((["Hi", "Hello! How can I help?", "Tell me a joke."], "Be brief."),
         "历史里第 0、2、4… 条是 user，第 1、3… 条是 assistant。"),
    ]

    def reference(history: list[str], system: str | None) -> str:
        return template_prompt(tokenizer, history, system)

    return check_cases("chatml_prompt（手写聊天模板）", my_prompt, reference, cases,
                       "对照 tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) 的输出。")


def check_chat_reply(my_reply: Callable[..., str], model: Any, tokenizer: Any) -> bool:
    """`chat_reply(model, tokenizer, history, max_new_tokens) -> str`: generate until [SEP], return the reply."""
    cases = [(["今天天气真好"], 20), (["你好", "你好呀", "你在做什么"], 12), (["在吗"], 0)]

    def body() -> int:
        for history, max_new_tokens in cases:
            case = f"history={history!r}，max_new_tokens={max_new_tokens}"
            got = call(my_reply, case, model, tokenizer, list(history), max_new_tokens)
            if max_new_tokens == 0:
                expect_equal(case, got, "", "max_new_tokens=0 时一个字也不生成：回复是空字符串。")
                continue
            ref = generate(model, tokenizer, sep_prompt(history), max_new_tokens, stop_tokens=("[SEP]",))
            plain = first_reply(ref.text)
            clean = decode(tokenizer, [i for i in ref.new_ids if i != tokenizer.sep_token_id], skip_special_tokens=True).strip()
            if got != clean:
                expect_equal(case, got, plain, "提示词要用 build_prompt/sep_prompt 拼（以 [SEP] 结尾）；贪心生成，"
                             "遇到 [SEP] 停下；回复是 [SEP] 之前的文字（不含 [SEP]，两头去空格）。")
        return len(cases)

    return verdict("chat_reply（生成一句回复）", body,
                   "generate(model, tokenizer, sep_prompt(history), max_new_tokens, stop_tokens=('[SEP]',))，再取第一个 [SEP] 之前的文字。")


# ---------------------------------------------------------------------------------------------------
# Lab 07: who sees whom (attention masks) and GLM's blank infilling.
# ---------------------------------------------------------------------------------------------------


def reference_causal_mask(n: int) -> torch.Tensor:
    """[n, n] booleans: row i may look at column j when j <= i."""
    return torch.ones(n, n, dtype=torch.bool).tril()


def reference_prefix_mask(n: int, prefix_len: int) -> torch.Tensor:
    """Causal, except that the first `prefix_len` tokens all see each other (GLM's part A, a prefix LM)."""
    mask = reference_causal_mask(n)
    mask[:prefix_len, :prefix_len] = True
    return mask


def expect_mask(case: str, got: Any, expected: torch.Tensor, hint: str) -> None:
    """A mask may be bool or 0/1 numbers; it is compared as booleans."""
    if not isinstance(got, torch.Tensor):
        raise Mismatch(case, show(expected), f"{type(got).__name__}：{show(got)}", "请返回一个 torch.Tensor。")
    if tuple(got.shape) != tuple(expected.shape):
        raise Mismatch(case, f"形状 (shape) {tuple(expected.shape)}", f"形状 (shape) {tuple(got.shape)}", hint)
    if not torch.equal(got.detach().cpu() != 0, expected):
        raise Mismatch(case, show(expected), show(got.detach().cpu() != 0), hint)


def check_causal_mask(my_mask: Callable[[int], torch.Tensor]) -> bool:
    """`causal_mask(n) -> Tensor [n, n]`: True where token i may attend to token j (j <= i)."""
    cases = [
        ((4,), "第 i 行是第 i 个 token：它能看见第 0..i 列（自己和前面的），看不见后面的——是下三角 tril。"),
        ((1,), "只有一个 token 时，它只能看见自己：[[True]]。"),
        ((6,), "对角线也是 True：每个 token 都能看见自己。"),
    ]
    return check_cases("causal_mask（GPT 的因果掩码）", my_mask, reference_causal_mask, cases,
                       "torch.ones(n, n, dtype=torch.bool).tril()", compare=expect_mask)


def check_prefix_mask(my_mask: Callable[[int, int], torch.Tensor]) -> bool:
    """`prefix_mask(n, prefix_len) -> Tensor [n, n]`: the prefix sees itself both ways, the rest is causal."""
    cases = [
        ((5, 3), "前 prefix_len 个 token 互相都能看见（双向），但看不见前缀之后的 token；"
                 "后面的 token 能看见整个前缀和自己之前的 token。"),
        ((4, 0), "prefix_len=0 时就是普通的因果掩码。"),
        ((4, 4), "prefix_len=n 时所有 token 互相都能看见（像 BERT 一样双向）。"),
        ((6, 2), "前缀里的 token 也看不见前缀之后的 token：它们还没生成。"),
    ]
    return check_cases("prefix_mask（GLM 的前缀双向掩码）", my_mask, reference_prefix_mask, cases,
                       "先做因果掩码，再把左上角 [:prefix_len, :prefix_len] 全部设为 True。", compare=expect_mask)


MASK, START, END = "[MASK]", "[START]", "[END]"


def reference_blank_infilling(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], int]:
    """GLM's input: part A (each span replaced by [MASK]) + part B ([START] span [END] per span); len(part A)."""
    part_a: list[str] = []
    part_b: list[str] = []
    last = 0
    for start, end in spans:
        part_a += tokens[last:start] + [MASK]
        part_b += [START] + tokens[start:end] + [END]
        last = end
    part_a += tokens[last:]
    return part_a + part_b, len(part_a)


def check_blank_infilling(my_infilling: Callable[..., tuple[list[str], int]]) -> bool:
    """`blank_infilling(tokens, spans) -> (sequence, prefix_len)`: GLM's autoregressive blank infilling input."""
    cases = [
        ((list("123456"), [(2, 3), (4, 6)]),
         "每个被挖掉的片段在 A 部分只留一个 [MASK]；B 部分依次是 [START] 片段 [END]。prefix_len 是 A 部分的长度。"),
        ((list("今天天气真好"), [(4, 6)]), "片段在结尾时，A 部分以 [MASK] 结尾。"),
        ((list("今天天气真好"), [(0, 1), (1, 2)]), "两个片段紧挨着时，A 部分有两个相邻的 [MASK]。"),
        ((list("今天天气"), []), "没有片段时，序列就是原文，prefix_len = 原文长度。"),
    ]
    return check_cases("blank_infilling（GLM 的自回归填空）", my_infilling, reference_blank_infilling, cases,
                       "遍历 spans：A 部分加上两个片段之间的原文和一个 [MASK]；B 部分加上 [START] + 片段 + [END]。")


# ---------------------------------------------------------------------------------------------------
# Lab 08: the KV cache.
# ---------------------------------------------------------------------------------------------------


class CallRecorder:
    """Wraps a model and records, for every forward call, how many tokens were fed and whether a cache came along."""

    def __init__(self, model: Any):
        self.model = model
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.calls.append((int(ids.shape[-1]) if ids is not None else 0, kwargs.get("past_key_values") is not None))
        return self.model(*args, **kwargs)

    forward = __call__

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def check_kv_cache_loop(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """`cached_greedy_loop(model, input_ids, steps) -> Tensor`: same tokens as model.generate, one new token a step."""
    cases = [("The capital of France is", 5), ("Once upon a time", 2), ("Hello", 0)]

    def body() -> int:
        for text, steps in cases:
            ids = prompt_tensor(tokenizer, text)
            case = f"{text!r}，steps={steps}"
            recorder = CallRecorder(model)
            got = call(my_loop, case, recorder, ids.clone(), steps)
            expect_equal(case, as_id_list(got), reference_greedy(model, ids, steps),
                         "生成的 token 要和不用缓存时完全一样：第一步送入整个提示词，之后每步只送入新 token，"
                         "并且传入上一步的 past_key_values。")
            later = recorder.calls[1:]
            if any(fed != 1 or not cached for fed, cached in later):
                raise Mismatch(case + " 的每次模型调用 (送入的 token 数, 是否带缓存)",
                               f"{[(ids.size(1), False)] + [(1, True)] * (steps - 1)}", str(recorder.calls),
                               "第一步之后，每步只送入 1 个新 token（input_ids[:, -1:]），并传入 past_key_values=past。")
        return len(cases)

    return verdict("cached_greedy_loop（带 KV 缓存的贪心循环）", body,
                   "out = model(input_ids=fed, past_key_values=past, use_cache=True)；past = out.past_key_values")


def measured_cache_bytes(model: Any, seq_len: int) -> int:
    """Bytes of the keys and values the model really caches after reading `seq_len` tokens."""
    ids = torch.ones(1, seq_len, dtype=torch.long)
    with quiet(), torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def reference_cache_bytes(config: Any, seq_len: int, bytes_per_value: int = 4) -> int:
    """2 (K and V) × layers × key/value heads × head_dim × tokens × bytes per number."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * seq_len * bytes_per_value


def check_kv_cache_size(my_size: Callable[..., int], model: Any) -> bool:
    """`kv_cache_bytes(config, seq_len, bytes_per_value=4) -> int`, against the cache SmolLM2 really builds."""
    from transformers import LlamaConfig

    small = LlamaConfig(hidden_size=256, num_attention_heads=8, num_key_value_heads=2, num_hidden_layers=4)
    hint = ("K 和 V 各存一份：2 × 层数 × KV 头数 × head_dim × token 数 × 每个数的字节数。"
            "SmolLM2 用分组查询注意力 (GQA)：KV 头只有 config.num_key_value_heads 个，不是 num_attention_heads。")
    cases = [(model.config, 1, 4, "SmolLM2"), (model.config, 16, 4, "SmolLM2"), (model.config, 8192, 2, "SmolLM2"),
             (small, 100, 4, "一个小的 Llama 配置（8 个查询头，2 个 KV 头，4 层）")]

    def body() -> int:
        for config, seq_len, width, label in cases:
            case = f"{label}，seq_len={seq_len}，bytes_per_value={width}"
            got = call(my_size, case, config, seq_len, width)
            expect_equal(case, got, reference_cache_bytes(config, seq_len, width), hint)
        case = "SmolLM2 读入 16 个 token 后真实缓存的字节数"
        expect_equal(case, call(my_size, case, model.config, 16, 4), measured_cache_bytes(model, 16), hint)
        return len(cases) + 1

    return verdict("kv_cache_bytes（KV 缓存有多大）", body, hint)
