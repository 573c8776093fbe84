"""Checkers for the lab exercises: run the learner's function, compare with a reference, say so kindly.

Every checker calls the learner's function on several inputs (edge cases and inputs that separate a right
answer from an almost-right one), compares each answer with the course's own helpers or the model's own
modules, and prints one verdict line in Chinese, then details:

    ✅ 通过：...                           every input gave the right answer
    ❌ 没通过：...  输入 / 期望 / 得到 / 提示 1   the first input that went wrong and the first hint
    ❌ ...：还没有实现：...                   the exercise still raises NotImplementedError

Hints are graduated: a failure shows hint 1 (the mistake this input exposes, or the idea); `hint()` or
`hint(2)`, `hint(3)` show the next levels (more detail). No hint is the solution (that lives in solutions/).

A checker returns True when everything passed and False otherwise. It never raises because of the
learner's code (errors are caught and reported with the line that failed) and never writes any file.
Loop exercises watch every model call the learner's code makes (`ModelCalls`), so they can require the
loop the exercise asks for.
"""

from __future__ import annotations

import copy
import math
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from transformers.utils import logging as hf_logging

from .chat import first_reply, newest_turns_that_fit, sep_prompt, split_turns, template_prompt
from .generation import generate
from .sampling import next_token_probs, softmax, top_k_filter, top_p_filter
from .tokens import decode, encode, token_table, unknown_characters

NO_RETURN = "函数没有返回任何东西：别忘了写 return。"
RETIRED = ("ℹ️  这个练习在新版练习里已经取消（retired），换成了更需要思考的练习；"
           "你以前写的答案仍然会被检查。重新生成的练习 notebook 在 labs/ 里。")

# ---------------------------------------------------------------------------------------------------
# Reporting: the machinery every checker shares (also used by the lesson 09 and 10 checkers).
# ---------------------------------------------------------------------------------------------------


def as_levels(hint: Any) -> list[str]:
    """A hint given as one string or as a list of levels -> a list of non-empty levels."""
    if not hint:
        return []
    if isinstance(hint, str):
        return [hint]
    return [h for h in hint if h]


class Mismatch(Exception):
    """The learner's answer differs from the reference for one input.

    `hint` is one string or a list of levels; it names the mistake this input exposes (hint level 1 first).
    """

    def __init__(self, case: str, expected: str, got: str, hint: Any = ""):
        super().__init__(case)
        self.case, self.expected, self.got, self.hint = case, expected, got, hint


class LearnerError(Exception):
    """The learner's code raised an exception (other than NotImplementedError) for one input."""

    def __init__(self, case: str, error: Exception, hint: Any = ""):
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


@dataclass
class LastFailure:
    """What `hint()` needs to know about the last check that failed."""

    title: str = ""
    levels: tuple[str, ...] = ()
    shown: int = 0


LAST = LastFailure()


def hint_footer(levels: Sequence[str], shown: int) -> str:
    """The line that says how to ask for the next hint level (or that there is none)."""
    if shown < len(levels):
        return f"   还想要更多提示：运行 hint()（下一级是 {shown + 1}/{len(levels)}；提示不会直接给出答案）"
    return "   这是最后一级提示了。"


def hint(level: int | None = None) -> None:
    """Print the next hint level (or level `level`) for the last check that failed."""
    if not LAST.levels:
        print("还没有没通过的检查：先运行练习下面的检查单元格。")
        return
    if level is None:
        level = LAST.shown + 1
    if not isinstance(level, int) or level < 1:
        print("hint 的参数是提示的级别：1、2、3……，例如 hint(2)。")
        return
    count = len(LAST.levels)
    if level > count:
        print(f"「{LAST.title}」一共只有 {count} 级提示，已经都在上面了。再对照练习说明和课程的 notebook 想一想，"
              "或者请老师看看（参考答案在老师的 solutions/ 里）。")
        return
    LAST.shown = max(LAST.shown, level)
    print(f"💡 提示 (hint) {level}/{count}（{LAST.title}）：{LAST.levels[level - 1]}")
    print(hint_footer(LAST.levels, level))


def verdict(title: str, body: Callable[[], int], hint: Any) -> bool:
    """Run a checker's body (returns how many inputs it tried) and print one verdict; True if it passed.

    `hint` (one string or a list of levels) is the checker's general advice: the idea, then the detail.
    A failing input's own hint comes first, so hint level 1 is about the mistake this input exposes.
    """
    general = as_levels(hint)
    try:
        count = body()
    except NotImplementedError as error:
        print(f"❌ {title}：还没有实现：{error}。写好代码、重新运行定义函数的单元格，再运行这个检查。")
        return False
    except LearnerError as failure:
        levels = list(dict.fromkeys(as_levels(failure.hint) + general))
        error = failure.error
        head = (f"❌ 没通过：{title}\n   输入 (input)：{failure.case}\n"
                f"   你的代码报错了：{type(error).__name__}: {error}{failing_line(error)}")
        return report_failure(title, head, levels)
    except Mismatch as failure:
        levels = list(dict.fromkeys(as_levels(failure.hint) + general))
        head = (f"❌ 没通过：{title}\n   输入 (input)：{failure.case}\n   期望 (expected)：{failure.expected}\n"
                f"   得到 (got)：{failure.got}")
        return report_failure(title, head, levels)
    if LAST.title == title:
        LAST.levels, LAST.shown = (), 0
    print(f"✅ 通过：{title}（{count} 个测试输入全部正确）")
    return True


def report_failure(title: str, head: str, levels: list[str]) -> bool:
    """Print a failure with hint level 1 and remember the levels for `hint()`."""
    LAST.title, LAST.levels, LAST.shown = title, tuple(levels), 1 if levels else 0
    lines = [head]
    if levels:
        lines.append(f"   提示 (hint) 1/{len(levels)}：{levels[0]}")
        lines.append(hint_footer(levels, 1))
    print("\n".join(lines))
    return False


def retired(title: str, checker: Callable[[], bool]) -> bool:
    """A retired exercise's checker: say so, then still check the learner's old answer."""
    print(RETIRED)
    return checker()


# ---------------------------------------------------------------------------------------------------
# Showing values and comparing them.
# ---------------------------------------------------------------------------------------------------


def rounded(value: Any) -> Any:
    """Floats rounded to 4 decimals, inside nested lists too (bools and ints untouched)."""
    if isinstance(value, (list, tuple)):
        return type(value)(rounded(v) for v in value)
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
    text = repr(rounded(value) if isinstance(value, (float, list, tuple)) else value)
    return text if len(text) <= 300 else text[:300] + " …"


def first_difference(got: Sequence[Any], expected: Sequence[Any], path: str = "") -> str:
    """'（第一个不同的位置：下标 [i][j]，期望 …，得到 …）' for two (nested) sequences, or a note about lengths."""
    for index, (g, e) in enumerate(zip(got, expected)):
        if not same(g, e):
            inner = f"{path}[{index}]"
            if isinstance(g, (list, tuple)) and isinstance(e, (list, tuple)):
                return first_difference(g, e, inner) or f"（第一个不同的位置：下标 {inner}）"
            return f"（第一个不同的位置：下标 {inner}，期望 {e!r}，得到 {g!r}）"
    if len(got) != len(expected):
        where = f"下标 {path} 处" if path else ""
        return f"（{where}长度不同：期望 {len(expected)} 个，得到 {len(got)} 个）"
    return ""


def first_character_difference(got: str, expected: str) -> str:
    """'（第一个不同的位置：第 i 个字符，期望 …，得到 …）' for two strings (newlines shown as \\n)."""
    index = next((i for i, (g, e) in enumerate(zip(got, expected)) if g != e), min(len(got), len(expected)))
    if index == len(got) == len(expected):
        return ""
    expected_char = repr(expected[index]) if index < len(expected) else "（没有了）"
    got_char = repr(got[index]) if index < len(got) else "（没有了）"
    return f"（第一个不同的位置：第 {index} 个字符（从 0 数），期望 {expected_char}，得到 {got_char}）"


def expect_equal(case: str, got: Any, expected: Any, hint: Any, mistakes: Sequence[tuple[Any, Any]] = ()) -> None:
    """Plain equality (strings, lists, ints). A tensor answer is compared through `.tolist()`.

    `mistakes` are (wrong value, hint) pairs: when the answer equals one of them, that hint comes first.
    Same values in another type (a tuple for a list, "3" for 3) are reported as "类型不同 (type differs)".
    """
    if got is None and expected is not None:
        raise Mismatch(case, show(expected), "None", NO_RETURN)
    if isinstance(got, torch.Tensor) and not isinstance(expected, torch.Tensor):
        got = got.tolist()
    if same(got, expected):
        return
    for wrong, wrong_hint in mistakes:
        if same(got, wrong):
            hint = as_levels(wrong_hint) + as_levels(hint)
            break
    if type(got) is not type(expected) and (show(got) == show(expected) or str(got) == str(expected)
                                             or same(list(got) if isinstance(got, (tuple, list)) else got, expected)):
        raise Mismatch(case, f"{type(expected).__name__}：{show(expected)}", f"{type(got).__name__}：{show(got)}",
                       [f"类型不同 (type differs)：值是一样的，但要返回 {type(expected).__name__}，"
                        f"你返回的是 {type(got).__name__}。"] + as_levels(hint))
    if isinstance(got, str) and isinstance(expected, str):
        note = first_character_difference(got, expected)
    elif isinstance(got, (list, tuple)) and isinstance(expected, (list, tuple, str)):
        note = first_difference(got, expected)
    else:
        note = ""
    raise Mismatch(case, show(expected), show(got) + note, hint)


def same(a: Any, b: Any) -> bool:
    """a == b as one bool, False when the comparison itself fails (tensor vs list, …)."""
    try:
        return bool(a == b)
    except (RuntimeError, TypeError, ValueError):
        return False


def tensor_difference(got: torch.Tensor, expected: torch.Tensor, wrong: torch.Tensor) -> str:
    """'第一个不同的位置 [i, j]：期望 x，得到 y' for the first True of `wrong`."""
    index = tuple(int(i) for i in wrong.nonzero()[0])
    g, e = got[index].item(), expected[index].item()
    g, e = (round(g, 4) if math.isfinite(g) else g), (round(e, 4) if math.isfinite(e) else e)
    return f"（第一个不同的位置 {list(index)}：期望 {e}，得到 {g}；一共 {int(wrong.sum())} 个位置不同）"


def as_tensor(got: Any, expected: torch.Tensor) -> Any:
    """A list/tuple of numbers (or of tensors) the same size as `expected` -> a tensor; else unchanged."""
    if isinstance(got, torch.Tensor) or not isinstance(got, (list, tuple)):
        return got
    try:
        tensor = torch.as_tensor(got, dtype=torch.float32) if not (got and isinstance(got[0], torch.Tensor)) \
            else torch.stack([torch.as_tensor(g) for g in got])
    except (TypeError, ValueError, RuntimeError):
        return got
    return tensor.reshape(expected.shape) if tensor.numel() == expected.numel() else tensor


def expect_close(case: str, got: Any, expected: torch.Tensor, hint: Any, atol: float = 1e-5,
                 mistakes: Sequence[tuple[torch.Tensor, Any]] = ()) -> None:
    """Same shape and (nearly) the same numbers; -inf must match -inf. Shows the first differing position."""
    if got is None:
        raise Mismatch(case, show(expected), "None", NO_RETURN)
    got = as_tensor(got, expected)
    if not isinstance(got, torch.Tensor):
        raise Mismatch(case, show(expected), f"{type(got).__name__}：{show(got)}",
                       ["类型不同 (type differs)：请返回一个 torch.Tensor。"] + as_levels(hint))
    if tuple(got.shape) != tuple(expected.shape):
        raise Mismatch(case, f"形状 (shape) {tuple(expected.shape)}", f"形状 (shape) {tuple(got.shape)}", hint)
    got = got.detach().float().cpu()
    expected = expected.detach().float().cpu()
    if close(got, expected, atol):
        return
    for wrong, wrong_hint in mistakes:
        wrong = wrong.detach().float().cpu()
        finite = wrong[torch.isfinite(wrong)]
        loose = max(atol * 10, 1e-3 * float(finite.abs().max())) if finite.numel() else atol
        if close(got, wrong, loose):  # a mistake is recognised with a looser tolerance than a right answer
            hint = as_levels(wrong_hint) + as_levels(hint)
            break
    wrong_at = ~torch.isclose(got, expected, atol=atol, rtol=1e-4, equal_nan=False)
    both_inf = torch.isinf(got) & torch.isinf(expected) & (torch.sign(got) == torch.sign(expected))
    wrong_at &= ~both_inf
    note = "（出现了 nan）" if torch.isnan(got).any() else ""
    if wrong_at.any():
        note += tensor_difference(got, expected, wrong_at)
    raise Mismatch(case, show(expected), show(got) + note, hint)


def close(got: torch.Tensor, expected: torch.Tensor, atol: float) -> bool:
    """allclose that treats equal infinities as equal."""
    if got.shape != expected.shape:
        return False
    if not torch.equal(torch.isinf(got) & (got > 0), torch.isinf(expected) & (expected > 0)):
        return False
    if not torch.equal(torch.isinf(got) & (got < 0), torch.isinf(expected) & (expected < 0)):
        return False
    finite = torch.isfinite(expected)
    if torch.isnan(got[finite]).any():
        return False
    return bool(torch.allclose(got[finite], expected[finite], atol=atol, rtol=1e-4))


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


def as_list(value: Any) -> Any:
    """A tuple (or a 1-D tensor) where a list is expected -> a list; anything else unchanged."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor) and value.dim() == 1:
        return value.tolist()
    return value


def as_int(value: Any) -> Any:
    """An int, a one-element tensor or a numpy integer -> int; anything else unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value)
    if type(value).__name__.startswith(("int", "uint")) and hasattr(value, "item"):
        return int(value)
    return value


def check_cases(title: str, fn: Callable[..., Any], reference: Callable[..., Any],
                cases: list[tuple[tuple, Any]], hint: Any, compare: Callable[..., None] = expect_equal,
                normalise: Callable[[Any], Any] = lambda value: value,
                mistakes: Sequence[Callable[..., Any]] | Sequence[tuple[Callable[..., Any], str]] = ()) -> bool:
    """The common checker: for each (args, hint) compare normalise(fn(*args)) with reference(*args).

    `mistakes` are (wrong_function, hint) pairs: a beginner's mistake, written out; when the learner's
    answer equals the mistake's answer for this input, the mistake's hint comes first.
    """

    def body() -> int:
        for args, case_hint in cases:
            case = ", ".join(show(arg) for arg in args)
            try:
                got = call(fn, case, *clone(args))
            except LearnerError as failure:
                failure.hint = case_hint
                raise
            known = []
            for wrong, wrong_hint in mistakes:
                try:
                    known.append((wrong(*clone(args)), wrong_hint))
                except Exception:  # a mistake that does not apply to this input
                    pass
            compare(case, normalise(got), reference(*clone(args)), case_hint, mistakes=known)
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


# ---------------------------------------------------------------------------------------------------
# Watching the model calls a learner's loop makes.
# ---------------------------------------------------------------------------------------------------


@dataclass
class ModelCall:
    """One call the learner's code made: where, how many new positions, how many were already cached."""

    where: str   # "model", "decoder stack" or "generate"
    fed: int     # positions fed in this call
    cached: int  # positions already in the cache passed along (0: no cache)

    def __str__(self) -> str:
        if self.where == "generate":
            return "model.generate(...)"
        return f"{self.where}（送入 {self.fed} 个词元，缓存里已有 {self.cached} 个）"


def fed_length(args: tuple, kwargs: dict) -> int:
    """How many positions a forward call feeds (input_ids or inputs_embeds)."""
    ids = kwargs.get("input_ids", args[0] if args and isinstance(args[0], torch.Tensor) else None)
    if ids is None:
        ids = kwargs.get("inputs_embeds")
        return int(ids.shape[1]) if ids is not None else 0
    return int(ids.shape[-1])


def cached_length(kwargs: dict) -> int:
    """Positions already in the cache given with either keyword (cache=, or the older past_key_values=)."""
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    if cache is None:
        return 0
    try:
        return int(cache.get_seq_length())
    except (AttributeError, TypeError):
        return 1


class ModelCalls:
    """Context manager that records every outermost call to the model, its decoder stack and `generate`.

    Calls to `model(...)`, `model.forward(...)`, `model.model(...)` / `model.transformer(...)` (the decoder
    stack, as lab 03 names it) and `model.generate(...)` are all seen; calls nested inside one of them are not
    recorded again. The model itself is passed to the learner unchanged (no wrapper object).
    """

    def __init__(self, model: Any):
        self.model = model
        self.calls: list[ModelCall] = []
        self.depth = 0
        self.patched: list[Any] = []

    def watch(self, module: Any, name: str, where: str) -> None:
        original = getattr(module, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if self.depth == 0:
                fed = fed_length(args, kwargs)
                self.calls.append(ModelCall(where, fed, 0 if where == "generate" else cached_length(kwargs)))
            self.depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1

        object.__setattr__(module, name, watched)
        self.patched.append((module, name))

    def __enter__(self) -> "ModelCalls":
        self.watch(self.model, "forward", "model")
        stack = getattr(self.model, "base_model", self.model)
        if stack is not self.model:
            self.watch(stack, "forward", "decoder stack")
        if hasattr(self.model, "generate"):
            self.watch(self.model, "generate", "generate")
        return self

    def __exit__(self, *exc: Any) -> None:
        for module, name in reversed(self.patched):
            module.__dict__.pop(name, None)
        self.patched.clear()

    @property
    def forwards(self) -> list[ModelCall]:
        return [c for c in self.calls if c.where != "generate"]

    def used_generate(self) -> bool:
        return any(c.where == "generate" for c in self.calls)

    def describe(self, limit: int = 8) -> str:
        shown = [str(c) for c in self.calls[:limit]]
        more = f" … 一共 {len(self.calls)} 次" if len(self.calls) > limit else ""
        return "；".join(shown) + more if shown else "没有调用模型"


def reference_greedy(model: Any, input_ids: torch.Tensor, steps: int) -> list[int]:
    """Prompt + `steps` greedy tokens from transformers' own `model.generate` (never stopping early)."""
    if steps == 0:
        return input_ids[0].tolist()
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    with quiet(), torch.no_grad():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=steps,
                             min_new_tokens=steps, do_sample=False, pad_token_id=pad, eos_token_id=None)
    return out[0].tolist()


NO_GENERATE = ("这个练习要你自己写生成循环：不要调用 model.generate（它把整个循环都做了）。"
               "每一步自己调用一次 model(...)，取最后一个位置的 logits。")


# ---------------------------------------------------------------------------------------------------
# Lab 01: chat is text generation ([SEP] turns).
# ---------------------------------------------------------------------------------------------------

SEED_CHAT = "[CLS]今天天气真好[SEP]是的，你最近怎么样[SEP]挺好的，你呢[SEP]"


def check_split_turns(my_split_turns: Callable[[str], list[str]]) -> bool:
    """`split_turns(text) -> list[str]`: the turns between [SEP]s, without [CLS], spaces and empty pieces."""
    cases = [
        ((SEED_CHAT,), "开头的 [CLS] 不属于任何一轮；最后一个 [SEP] 后面切出来的空字符串也不是一轮。"),
        (("今天天气真好[SEP]是的[SEP]我还没说", ), "最后一段没有 [SEP] 结尾，也算一轮（只是还没说完）。"),
        (("[CLS]你好[SEP][SEP]在吗[SEP]",), "两个 [SEP] 紧挨着时，中间是空字符串，它不是一轮。"),
        ((" 你好 [SEP] 在的 [SEP]",), "每一轮两头的空格要去掉。"),
        (("[CLS] [SEP]好的[SEP]",), "只有空格的片段去掉空格以后是空的，也不算一轮。"),
        (("",), "空字符串里一轮对话也没有：应返回一个空列表。"),
        (("Hello[SEP]World",), "英文也一样切；大小写保持原样。"),
    ]
    mistakes = [
        (lambda t: t.split("[SEP]"), "你直接返回了 split 的结果：[CLS] 还在，空片段也没有丢掉。"),
        (lambda t: [p.strip() for p in t.replace("[CLS]", "").split("[SEP]")],
         "空片段（例如最后一个 [SEP] 后面那段）要丢掉。"),
        (lambda t: [p for p in t.replace("[CLS]", "").split("[SEP]") if p],
         "只去掉了完全空的片段：两头的空格也要去掉，只有空格的片段也要丢掉。"),
    ]
    return check_cases("split_turns 切分对话轮次", my_split_turns, split_turns, cases,
                       ["三件事：去掉 [CLS]、按 [SEP] 切开、丢掉（去掉空格之后）空的片段。",
                        "字符串的 replace、split 和 strip 三个方法就够了；丢掉空片段可以在列表推导式里加一个条件。"],
                       normalise=as_list, mistakes=mistakes)


def check_first_reply(my_first_reply: Callable[[str], str]) -> bool:
    """Retired exercise (lab 01 v1): `first_reply(new_text) -> str`, the text before the first [SEP]."""
    cases = [
        (("是的，你最近怎么样[SEP]挺好的，你呢[SEP]我也是",), "回复是第一个 [SEP] 之前的文字。"),
        (("好啊[SEP]",), "去掉 [SEP] 本身。"),
        (("模型还没说完，没有遇到分隔符",), "没有 [SEP] 时，整段文字都是回复。"),
        (("[SEP]后面的话",), "一开头就是 [SEP]：这次回复是空字符串。"),
        ((" 你好 [SEP]",), "回复两头的空格要去掉。"),
        (("",), "空字符串的回复还是空字符串。"),
    ]
    return retired("first_reply", lambda: check_cases(
        "first_reply 提取要显示的回复", my_first_reply, first_reply, cases,
        ["只要第一个 [SEP] 之前的部分。", "str.split 可以指定最多切几刀。"]))


def check_build_prompt(my_build_prompt: Callable[[list[str]], str]) -> bool:
    """Retired exercise (lab 01 v1): `build_prompt(history) -> str`, `[CLS]turn1[SEP]turn2[SEP]...[SEP]`."""
    cases = [
        ((["你好"],), "每一轮后面都跟一个 [SEP]，最后以 [SEP] 结尾，模型才知道轮到对方说话。"),
        ((["今天天气真好", "是的，你最近怎么样", "挺好的"],), "开头是 [CLS]，每一轮后面跟一个 [SEP]。"),
        (([],), "没有历史时，提示词只有 [CLS]。"),
    ]
    return retired("build_prompt", lambda: check_cases(
        "build_prompt 用对话历史拼出提示词", my_build_prompt, sep_prompt, cases,
        ["[CLS] 开头，每一轮后面跟一个 [SEP]。", "可以用 join，也可以用循环逐轮拼接。"]))


def reference_reply_ids(output_ids: torch.Tensor, prompt_len: int, sep_id: int) -> list[int]:
    """The ids after the prompt, up to (not including) the first `sep_id` after the prompt."""
    new = output_ids[0, prompt_len:].tolist()
    return new[: new.index(sep_id)] if sep_id in new else new


SEP_ID, CLS_ID = 102, 101


def check_reply_ids(my_reply_ids: Callable[..., list[int]]) -> bool:
    """`reply_ids(output_ids, prompt_len, sep_id) -> list[int]`: the reply's ids in a generate() output."""
    you, good, weather, ok, period = 872, 1962, 1921, 1962, 511
    prompt = [CLS_ID, 791, weather, weather, 3698, 4696, 1962, SEP_ID, 3221, 4638, SEP_ID]  # two turns, two [SEP]s
    cases = [
        (prompt + [you, good, period, SEP_ID, 2769, SEP_ID, 738], len(prompt),
         "提示词里本来就有 [SEP]（每一轮后面都有一个）：回复要从提示词之后开始找第一个 [SEP]。"),
        (prompt + [you, good, period], len(prompt), "新生成的部分没有 [SEP]：整段新内容都是回复。"),
        (prompt + [SEP_ID, you, good], len(prompt), "新生成的第一个词元就是 [SEP]：这次的回复是空的。"),
        (prompt, len(prompt), "一个新词元也没有生成：回复是空的。"),
        ([CLS_ID, you, SEP_ID, ok, SEP_ID, SEP_ID], 3, "只要第一个 [SEP] 之前的部分，后面的是模型替双方编的。"),
        ([CLS_ID, you, SEP_ID, good, SEP_ID, period, you, good], 3, "停止符的编号是参数 sep_id，不一定是 102。"),
    ]
    cases = [((torch.tensor([ids]), n, SEP_ID if i < 5 else you), h) for i, (ids, n, h) in enumerate(cases)]

    def from_start(ids: torch.Tensor, n: int, sep: int) -> list[int]:
        full = ids[0].tolist()
        end = full.index(sep) if sep in full else len(full)
        return full[n:end] if end >= n else []

    def with_sep(ids: torch.Tensor, n: int, sep: int) -> list[int]:
        new = ids[0, n:].tolist()
        return new[: new.index(sep) + 1] if sep in new else new

    def last_sep(ids: torch.Tensor, n: int, sep: int) -> list[int]:
        new = ids[0, n:].tolist()
        return new[: len(new) - 1 - new[::-1].index(sep)] if sep in new else new

    def with_prompt(ids: torch.Tensor, n: int, sep: int) -> list[int]:
        return ids[0].tolist()[: n + len(reference_reply_ids(ids, n, sep))]

    mistakes = [
        (from_start, "你的结果把提示词里的 [SEP] 也当成了停止符：要从 prompt_len 之后开始找。"),
        (with_sep, "[SEP] 本身不属于回复。"),
        (last_sep, "要找的是新内容里的第一个 [SEP]，不是最后一个。"),
        (with_prompt, "回复里不包括提示词：从下标 prompt_len 开始取。"),
        (lambda ids, n, sep: reference_reply_ids(ids, n, SEP_ID), "停止符的编号是参数 sep_id，不一定是 102。"),
    ]
    return check_cases("reply_ids 从生成结果里取出回复", my_reply_ids, reference_reply_ids, cases,
                       ["model.generate 返回的是“提示词 + 新词元”；回复是新词元里第一个 [SEP] 之前的部分。",
                        "先用切片取出 prompt_len 之后的新词元（转成列表），再在新词元里找 sep_id 第一次出现的位置；"
                        "找不到时整段都是回复。"],
                       normalise=as_id_list, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------
# Lab 02: tokens, ids, vocab.txt and one BPE merge.
# ---------------------------------------------------------------------------------------------------


def check_vocab_lines(my_vocab_lines: Callable[[Any, str], list[int]], tokenizer: Any) -> bool:
    """Retired exercise (lab 02 v1): `vocab_lines(tokenizer, text) -> list[int]`, 1-based vocab.txt lines."""
    texts = [
        ("[CLS]今天天气真", "vocab.txt 的行号从 1 开始，而编号从 0 开始。"),
        ("我爱machine learning", "英文单词可能是一个整词词元：先用分词器编码，再换算行号。"),
        ("他说“你好”", "词表里没有的字符会变成 [UNK]（编号 100），它也有自己的行号。"),
        ("", "空字符串没有词元：应返回 []。"),
    ]

    def reference(tok: Any, text: str) -> list[int]:
        return [row.vocab_line for row in token_table(tok, text)]

    def body() -> int:
        for text, hint in texts:
            got = as_id_list(call(my_vocab_lines, repr(text), tokenizer, text))
            mistakes = [([i + 1 for i in tokenizer.encode(text)],
                         "多了两个词元：编码时用 add_special_tokens=False，不要自动加 [CLS]/[SEP]。"),
                        ([i for i in encode(tokenizer, text)], "这是编号，不是行号：行号从 1 开始数。")]
            expect_equal(repr(text), got, reference(tokenizer, text), hint, mistakes=mistakes)
        return len(texts)

    return retired("vocab_lines", lambda: verdict("vocab_lines 找到每个词元在 vocab.txt 的行号", body,
                                                  ["行号和编号差 1。", "先编码（不加特殊词元），再逐个换算。"]))


def check_unknown_chars(my_unknown_chars: Callable[[Any, str], list[str]], tokenizer: Any) -> bool:
    """`unknown_chars(tokenizer, text) -> list[str]`: characters that become [UNK], each once, in order."""
    texts = [
        ("今天天气真好", "这句话的每个字都在词表里：应返回空列表。"),
        ("他说“你好”😀", "弯引号 “ ” 和表情符号不在词表里，会变成 [UNK]。"),
        ("😀😀好😀", "同一个字符只列一次，按第一次出现的顺序。"),
        ("𠮷野家 好", "空格不是 [UNK]，不要列出来。"),
        ("Hello WORLD", "这个分词器先把大写字母变成小写再查词表：大写字母不是 [UNK]。要问分词器，不要自己查 vocab。"),
        ("Café Éclair naïve", "带重音的字母 é、É、ï 会先被去掉重音（变成 e、i）再查词表，所以它们不是 [UNK]。"),
        ("", "空字符串里没有字符：应返回空列表。"),
    ]

    def in_vocab_only(tok: Any, text: str) -> list[str]:
        vocab = tok.get_vocab()
        return list(dict.fromkeys(ch for ch in text if not ch.isspace() and ch not in vocab))

    def every_occurrence(tok: Any, text: str) -> list[str]:
        return [ch for ch in text if not ch.isspace() and encode(tok, ch) == [tok.unk_token_id]]

    def body() -> int:
        for text, hint in texts:
            got = as_list(call(my_unknown_chars, repr(text), tokenizer, text))
            mistakes = [(in_vocab_only(tokenizer, text),
                         "你是直接在词表 (vocab) 里查字符的：分词器查表之前会先转小写、去掉重音，"
                         "所以要让分词器来编码每个字符，看结果是不是 [UNK]。"),
                        (every_occurrence(tokenizer, text), "同一个字符出现好几次时只列一次。"),
                        (list(dict.fromkeys(ch for ch in text if encode(tokenizer, ch) == [tokenizer.unk_token_id]
                                            or ch.isspace())), "空白字符（空格）不算 [UNK]。")]
            expect_equal(repr(text), got, unknown_characters(tokenizer, text), hint, mistakes=mistakes)
        return len(texts)

    return verdict("unknown_chars 找出会变成 [UNK] 的字符", body,
                   ["一个字符一个字符地让分词器编码，看它是不是变成了 [UNK] 的编号。",
                    "[UNK] 的编号是 tokenizer.unk_token_id；编码单个字符时不要加特殊词元；用一个列表记住已经找到的字符，"
                    "跳过空白字符。"])


def check_decode(my_decode: Callable[[Any, list[int]], str], tokenizer: Any) -> bool:
    """`decode_text(tokenizer, ids) -> str`: text without the spaces between Chinese characters."""
    texts = [
        ("今天天气真好", "tokenizer.decode 会在汉字之间加空格：把它们去掉。"),
        ("[CLS]今天天气真", "特殊词元后面的空格也要去掉：[CLS]今天……"),
        ("我爱machine learning！", "只去掉挨着汉字（或全角标点、特殊词元方括号）的空格，英文单词之间的空格要保留。"),
        ("I love NLP and 北京", "英文单词之间的空格要保留（这个分词器解码出来是小写，这是它的词表决定的，不用管）。"),
        ("[CLS]hello[SEP]world", "特殊词元的方括号旁边的空格也要去掉，哪怕旁边是英文：[CLS]hello[SEP]world。"),
        ("", "空的编号列表解码成空字符串。"),
        ("好", "只有一个字：没有空格可去。"),
    ]
    cases = [(text, encode(tokenizer, text), hint) for text, hint in texts]

    def body() -> int:
        for text, ids, hint in cases:
            case = f"{ids}（{text!r} 的编号）"
            got = call(my_decode, case, tokenizer, list(ids))
            raw = tokenizer.decode(ids)
            mistakes = [(raw.replace(" ", ""), "你把所有空格都删掉了：英文单词之间的空格要保留。"),
                        (raw, "解码结果里多余的空格一个都没有去掉：汉字之间的、特殊词元方括号旁边的都要去掉。")]
            expect_equal(case, got, decode(tokenizer, ids), hint, mistakes=mistakes)
        return len(cases)

    return verdict("decode_text 解码时去掉多余的空格", body,
                   ["只删“挨着汉字、全角标点或特殊词元方括号”的空格；两个英文单词之间的空格留着。",
                    "可以用正则表达式（re.sub 加上只看左边/右边的零宽断言），也可以按空格切开后逐段判断两边是不是 ASCII 字符。"])


def reference_bpe_merge(words: list[list[str]]) -> tuple[tuple[str, str] | None, list[list[str]]]:
    """One BPE training step: the most frequent adjacent pair (ties: the first seen) and the merged words."""
    counts: dict[tuple[str, str], int] = {}
    for word in words:
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + 1
    if not counts:
        return None, [list(word) for word in words]
    best = max(counts, key=counts.__getitem__)  # the first pair with the highest count
    return best, reference_bpe_merge_given(words, best)


def normalise_bpe(answer: Any) -> Any:
    """(pair, words) with the pair as a tuple and every word as a list, when the answer has that shape."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return answer
    pair, words = answer
    if isinstance(pair, list):
        pair = tuple(pair)
    if isinstance(words, (list, tuple)):
        words = [list(w) if isinstance(w, (list, tuple)) else w for w in words]
    return (pair, words)


def check_bpe_merge(my_merge: Callable[[list[list[str]]], tuple]) -> bool:
    """`bpe_merge_step(words) -> (pair, merged_words)`: one merge of byte-pair encoding (BPE) training."""
    w = [list("low"), list("lower"), list("newest"), list("widest")]
    cases = [
        ((w,), "几对都出现 2 次（并列）：选最先出现的那一对（从第一个词开始、从左往右数）。"),
        (([list("hug")] * 3 + [list("pug")] * 2 + [list("hugs")],),
         "同一个词出现几次，它里面的每一对就要算几次。"),
        (([list("aaa"), list("ba")],),
         "“a a a” 里 (a, a) 出现 2 次（重叠的也算）；合并时从左往右，合并过的符号不能再用：结果是 aa a。"),
        (([list("bc"), list("ab"), list("bc"), list("ab")],),
         "并列时按出现的先后选，不是按字母顺序。"),
        (([["lo", "w"], ["lo", "w", "er"], ["n", "ew"]],), "符号可以是已经合并过的多个字符：合并就是把两个字符串拼起来。"),
        (([list("今天"), list("天气"), list("今天好")],), "中文字符也一样。"),
        (([["x"], []],), "没有任何相邻的一对（单字符的词、空的词）：返回 (None, 原来的词)。"),
        (([["a"], ["b"], ["a"], ["b"], ["c", "d"]],), "词和词之间不相邻：一个词的最后一个符号和下一个词的第一个符号不算一对。"),
        (([list("abab"), list("bc"), list("bc"), list("xy"), list("xy")],), "一个词里同一对出现两次，就要算两次。"),
        (([],), "没有词：返回 (None, [])。"),
    ]

    def counts_of(words: list[list[str]], unique: bool = False, across: bool = False) -> dict:
        counts: dict = {}
        seq = [[s for word in words for s in word]] if across else words
        for word in seq:
            pairs = list(zip(word, word[1:]))
            for pair in (dict.fromkeys(pairs) if unique else pairs):
                counts[pair] = counts.get(pair, 0) + 1
        return counts

    def merge_with(words: list[list[str]], counts: dict, pick: Callable[[dict], Any]) -> tuple:
        if not counts:
            return None, [list(x) for x in words]
        best = pick(counts)
        return best, reference_bpe_merge_given(words, best)

    first_max = lambda c: max(c, key=c.__getitem__)  # noqa: E731
    mistakes = [
        (lambda ws: merge_with(ws, counts_of(ws), lambda c: sorted(c, key=lambda p: (-c[p], p))[0]),
         "并列时你按字母顺序选了：要选最先出现的那一对。"),
        (lambda ws: merge_with(ws, counts_of(ws), lambda c: [p for p in c if c[p] == max(c.values())][-1]),
         "并列时你选了最后出现的那一对：要选最先出现的。"),
        (lambda ws: merge_with(ws, counts_of(ws, unique=True), first_max),
         "一个词里同一对出现好几次时，每次都要算。"),
        (lambda ws: merge_with(ws, counts_of(ws, across=True), first_max),
         "你把所有词连起来数了：词和词之间的两个符号不是相邻的一对。"),
        (lambda ws: (reference_bpe_merge(ws)[0], [list(x) for x in ws]), "选出了那一对，但还没有在词里把它合并。"),
    ]
    return check_cases("bpe_merge_step（BPE 的一次合并）", my_merge, reference_bpe_merge, cases,
                       ["两步：先数每一对相邻符号一共出现几次（每个词里、每个位置都算），选出现最多的；"
                        "再在每个词里从左往右把这一对合成一个符号。",
                        "数数可以用字典（它记得插入顺序，max 遇到并列时返回最先插入的）；"
                        "合并时用下标 i 从左往右走：遇到这一对就拼起来、i 加 2，否则照抄、i 加 1。"],
                       normalise=normalise_bpe, mistakes=mistakes)


def reference_bpe_merge_given(words: list[list[str]], best: tuple[str, str]) -> list[list[str]]:
    """Merge `best` in every word, left to right (the reference's second half, and the checker's known mistakes)."""
    merged = []
    for word in words:
        out, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                out.append(word[i] + word[i + 1])
                i += 2
            else:
                out.append(word[i])
                i += 1
        merged.append(out)
    return merged


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


RMS_HINTS = ["RMSNorm 只除以均方根，不减均值（减均值的是 LayerNorm）。",
             "均方根沿最后一维算（保持维度，好让除法按行进行）；eps 加在开根号之前；最后逐元素乘以 weight。"]


def check_rmsnorm(my_rms_norm: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], model: Any) -> bool:
    """`rms_norm(x, weight, eps) -> Tensor`, on small inputs and on SmolLM2's real norms."""
    gen = torch.Generator().manual_seed(0)
    small = [
        ((torch.tensor([[3.0, 4.0]]), torch.ones(2), 0.0), "[3, 4] 的均方根是 sqrt((9 + 16) / 2) = sqrt(12.5)。"),
        ((torch.tensor([[3.0, 4.0]]), torch.tensor([2.0, 0.5]), 0.0), "最后要逐元素乘以 weight。"),
        ((torch.randn(2, 3, 8, generator=gen), torch.rand(8, generator=gen) + 0.5, 1e-5),
         "三维输入：沿最后一维求均值。"),
        ((torch.tensor([[1.0, 1.0, 1.0, 5.0]]), torch.ones(4), 0.0), "均值不是 0 的向量：RMSNorm 不减均值。"),
        ((torch.zeros(1, 4), torch.ones(4), 1e-5), "全 0 的输入：eps 加在开根号之前，避免除以 0。"),
        ((torch.tensor([[2.0]]), torch.ones(1), 0.0), "只有一维的向量：2 / sqrt(4) = 1。"),
    ]

    def mistakes_for(x: torch.Tensor, w: torch.Tensor, eps: float) -> list[tuple[torch.Tensor, str]]:
        centred = x - x.mean(-1, keepdim=True)
        return [
            (centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * w, "你减了均值：那是 LayerNorm。"),
            (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps), "忘了乘以 weight。"),
            (x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w, "eps 要加在开根号之前（根号里面）。"),
            (x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w, "是均值 (mean)，不是求和 (sum)。"),
            (x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w, "均方根要沿最后一维算（每个向量自己），不是沿第 0 维。"),
        ]

    def body() -> int:
        for args, hint in small:
            case = ", ".join(show(a) for a in args)
            expect_close(case, call(my_rms_norm, case, *clone(args)), reference_rms_norm(*args), hint,
                         mistakes=mistakes_for(*args))
        states = hidden_states(model)
        real = [("第 0 层的 input_layernorm，输入是词嵌入", model.model.layers[0].input_layernorm, states[0]),
                ("最后的 norm（model.model.norm），输入是一个深层的隐藏状态", model.model.norm, states[-2])]
        for case, norm, x in real:
            with torch.no_grad():
                expected = norm(x)
            got = call(my_rms_norm, case, x.clone(), norm.weight.detach().clone(), norm.variance_epsilon)
            expect_close(f"SmolLM2 {case}", got, expected, "和 SmolLM2 的模块对不上：检查 eps 的位置和 weight。", atol=1e-4,
                         mistakes=mistakes_for(x, norm.weight.detach(), norm.variance_epsilon))
        return len(small) + len(real)

    return verdict("rms_norm（RMSNorm 归一化）", body, RMS_HINTS)


def reference_swiglu(x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """down( silu(x Wgᵀ) * (x Wuᵀ) )."""
    return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)


SWIGLU_HINTS = ["SiLU 只作用在 gate 分支上，up 分支不过激活函数；两个分支逐元素相乘，再经过 down。",
                "nn.Linear 的权重形状是 [输出维度, 输入维度]：x 乘权重时要用它的转置。SiLU(z) = z · sigmoid(z)。"]


def check_swiglu(my_swiglu: Callable[..., torch.Tensor], model: Any) -> bool:
    """`swiglu(x, gate_weight, up_weight, down_weight) -> Tensor`, on small inputs and SmolLM2's MLPs."""
    gen = torch.Generator().manual_seed(1)
    small = [(torch.randn(1, 3, 4, generator=gen), torch.randn(6, 4, generator=gen),
              torch.randn(6, 4, generator=gen), torch.randn(4, 6, generator=gen))]

    def mistakes_for(x: torch.Tensor, g: torch.Tensor, u: torch.Tensor, d: torch.Tensor) -> list:
        return [
            (F.linear(F.relu(F.linear(x, g)) * F.linear(x, u), d), "激活函数是 SiLU，不是 ReLU。"),
            (F.linear(F.silu(F.linear(x, u)) * F.linear(x, g), d), "SiLU 要作用在 gate 分支上，不是 up 分支。"),
            (F.linear(F.silu(F.linear(x, g) * F.linear(x, u)), d), "SiLU 只作用在 gate 分支上，要在相乘之前。"),
        ]

    def body() -> int:
        for args in small:
            case = ", ".join(show(a) for a in args)
            try:
                got = call(my_swiglu, case, *clone(args))
            except LearnerError as failure:
                failure.hint = "形状对不上：nn.Linear 的权重形状是 [输出维度, 输入维度]，x 乘权重时要用它的转置。"
                raise
            expect_close(case, got, reference_swiglu(*args), SWIGLU_HINTS[0], mistakes=mistakes_for(*args))
        states = hidden_states(model)
        layers = (0, len(model.model.layers) // 2)
        for index in layers:
            mlp = model.model.layers[index].mlp
            with torch.no_grad():
                x = model.model.layers[index].post_attention_layernorm(states[index])
                expected = mlp(x)
            weights = [w.weight.detach().clone() for w in (mlp.gate_proj, mlp.up_proj, mlp.down_proj)]
            case = f"SmolLM2 第 {index} 层的 mlp，x 的形状 {tuple(x.shape)}"
            expect_close(case, call(my_swiglu, case, x.clone(), *weights), expected, SWIGLU_HINTS[0], atol=1e-4)
        return len(small) + len(layers)

    return verdict("swiglu（SwiGLU 前馈网络）", body, SWIGLU_HINTS)


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


ATTENTION_HINTS = ["三步：打分（查询和键的点积，除以 sqrt(d)）→ 挡住未来（j > i 的位置设为 -inf）→ softmax 之后对值加权求和。",
                   "“未来”是对角线以上的位置（上三角，不含对角线）；softmax 沿最后一维（每一行是一个查询）。"]


def check_causal_attention(my_attention: Callable[..., torch.Tensor], model: Any) -> bool:
    """`causal_attention(q, k, v) -> Tensor` for one head ([T, d] each); then all heads of SmolLM2's layer 0."""
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(5, 8, generator=gen) for _ in range(3))
    one = tuple(torch.randn(1, 4, generator=gen) for _ in range(3))
    small = [(one, "只有一个词元时，它只能看见自己：输出就等于 v。"), ((q, k, v), ATTENTION_HINTS[0])]

    def mistakes_for(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> list:
        n, d = q.shape
        future = torch.ones(n, n, dtype=torch.bool).triu(1)
        scores = q @ k.T
        return [
            (torch.softmax(scores / math.sqrt(d), -1) @ v, "没有挡住未来：第 i 个位置看见了后面的词元。"),
            (torch.softmax(scores.masked_fill(future, float("-inf")), -1) @ v, "打分要除以 sqrt(d)。"),
            (torch.softmax((scores / d).masked_fill(future, float("-inf")), -1) @ v, "除以的是 sqrt(d)，不是 d。"),
            (torch.softmax((scores / math.sqrt(d)).masked_fill(future.T, float("-inf")), -1) @ v,
             "掩码方向反了：要挡住的是 j > i（上三角）。"),
            (torch.softmax((scores / math.sqrt(d)).masked_fill(future, float("-inf")), 0) @ v,
             "softmax 要沿最后一维（每个查询的一行分数）做。"),
        ]

    def body() -> int:
        for args, hint in small:
            case = ", ".join(show(a) for a in args)
            expect_close(case, call(my_attention, case, *clone(args)), reference_attention(*args), hint,
                         mistakes=mistakes_for(*args))
        before = as_tensor(call(my_attention, "因果性测试", q.clone(), k.clone(), v.clone()), q)
        after = as_tensor(call(my_attention, "因果性测试", q.clone(), torch.cat([k[:-1], k[-1:] + 5]),
                               torch.cat([v[:-1], v[-1:] + 5])), q)
        expect_close("改变最后一个词元的 k 和 v 之后，前 4 个位置的输出", after[:-1], before[:-1].detach(),
                     "第 i 个位置只能看见 0..i：未来的词元不能影响过去。检查掩码。")
        hq, hk, hv, expected = attention_inputs(model)
        group = hq.size(0) // hk.size(0)
        heads = [as_tensor(call(my_attention, f"SmolLM2 第 0 层第 {h} 个头", hq[h].clone(), hk[h // group].clone(),
                                hv[h // group].clone()), hq[h]) for h in range(hq.size(0))]
        attn = model.model.layers[0].self_attn
        with torch.no_grad():
            got = attn.o_proj(torch.cat([torch.as_tensor(h) for h in heads], dim=-1))
        expect_close(f"SmolLM2 第 0 层的 {hq.size(0)} 个头（拼起来再经过 o_proj），{hq.size(1)} 个词元",
                     got, expected, "和 SmolLM2 自己的注意力对不上：检查缩放用的是 sqrt(head_dim)，掩码方向对不对。", atol=1e-4)
        return len(small) + 2

    return verdict("causal_attention（单头因果自注意力）", body, ATTENTION_HINTS)


def reference_llama_forward(model: Any, input_ids: torch.Tensor, residual: bool = True, final_norm: bool = True,
                            rope: bool = True, group_by_modulo: bool = False) -> torch.Tensor:
    """SmolLM2's logits [T, vocab] rebuilt from the three parts of lab 03 (the flags switch on beginners' mistakes)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    with torch.no_grad():
        h = model.model.embed_tokens(input_ids)[0]
        T = h.size(0)
        cos, sin = model.model.rotary_emb(h[None], torch.arange(T)[None])
        for layer in model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            d = attn.head_dim
            x = reference_rms_norm(h, layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon)
            q = F.linear(x, attn.q_proj.weight).view(T, -1, d).transpose(0, 1)
            k = F.linear(x, attn.k_proj.weight).view(T, -1, d).transpose(0, 1)
            v = F.linear(x, attn.v_proj.weight).view(T, -1, d).transpose(0, 1)
            if rope:
                q, k = (t[0] for t in apply_rotary_pos_emb(q[None], k[None], cos, sin))
            group = q.size(0) // k.size(0)
            kv = [(i % k.size(0)) if group_by_modulo else i // group for i in range(q.size(0))]
            heads = torch.cat([reference_attention(q[i], k[kv[i]], v[kv[i]]) for i in range(q.size(0))], dim=-1)
            out = F.linear(heads, attn.o_proj.weight)
            h = h + out if residual else out
            x = reference_rms_norm(h, layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon)
            out = reference_swiglu(x, mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight)
            h = h + out if residual else out
        if final_norm:
            h = reference_rms_norm(h, model.model.norm.weight, model.model.norm.variance_epsilon)
        return F.linear(h, model.lm_head.weight)


def check_llama_forward(my_forward: Callable[..., torch.Tensor], model: Any, tokenizer: Any) -> bool:
    """`llama_forward(model, input_ids) -> Tensor [T, vocab]`: the whole block stack from lab 03's parts = model logits."""
    prompts = ["The capital of France is", "Hi", "1 2 3 4 5 6 7 8"]

    def body() -> int:
        for text in prompts:
            ids = prompt_tensor(tokenizer, text)
            case = f"{text!r}（{ids.size(1)} 个词元）"
            with quiet(), torch.no_grad():
                expected = model(ids).logits[0]
            with ModelCalls(model) as calls:
                got = call(my_forward, case, model, ids.clone())
            if calls.calls:
                raise Mismatch(case + " 的模型调用", "不调用整个模型，只用它的权重和子模块",
                               calls.describe(), "这个练习要你自己把每一层搭起来：不要调用 model(...) 或 model.model(...)。")
            if isinstance(got, torch.Tensor) and got.dim() == 3 and got.size(0) == 1:
                got = got[0]
            mistakes = [
                (reference_llama_forward(model, ids, residual=False), "少了残差连接：每个子层的输出要加回到它的输入上。"),
                (reference_llama_forward(model, ids, final_norm=False), "最后一层之后、lm_head 之前还有一个 RMSNorm（model.model.norm）。"),
                (reference_llama_forward(model, ids, rope=False), "查询和键要先加上旋转位置编码 (RoPE)，再做注意力。"),
                (reference_llama_forward(model, ids, group_by_modulo=True),
                 "分组查询注意力：第 h 个查询头用第 h // 3 组键值（相邻的 3 个查询头共用一组），不是 h % 3。"),
            ]
            expect_close(case + " 的 logits", got, expected, "和 SmolLM2 自己算出的 logits 对不上。", atol=2e-3,
                         mistakes=mistakes)
        return len(prompts)

    return verdict("llama_forward（用三块积木搭出整个模型）", body,
                   ["每一层：h = h + 注意力(RMSNorm(h))，再 h = h + SwiGLU(RMSNorm(h))；所有层之后再做一次 RMSNorm，最后乘 lm_head。",
                    "注意力一层里：三个投影得到 q、k、v，按头切开（形状 [头数, T, head_dim]），q 和 k 加上 RoPE，"
                    "每个查询头配上它那一组键值，用你的 causal_attention，拼起来经过 o_proj。"])


# ---------------------------------------------------------------------------------------------------
# Lab 04: softmax, temperature, top-k, top-p and the sampler.
# ---------------------------------------------------------------------------------------------------

SOFTMAX_HINTS = ["softmax：每个分数取 exp，再除以所有 exp 的和；沿最后一维做。",
                 "数值稳定：先减去（沿最后一维的）最大值再取 exp，结果不变、不会溢出。温度是先把分数除以 T。"]


def check_softmax(my_softmax: Callable[..., torch.Tensor]) -> bool:
    """`softmax(logits) -> Tensor`: positive, sums to 1 along the last dimension, stable for huge scores."""
    cases = [
        ((torch.tensor([2.0, 1.0, 0.1]),), "softmax = exp(x) / sum(exp(x))。"),
        ((torch.tensor([0.0, 0.0, 0.0, 0.0]),), "分数都一样时，每个词元的概率都一样：1/4。"),
        ((torch.tensor([1000.0, 1001.0, 1002.0]),),
         "exp(1000) 会溢出成 inf，得到 nan：先减去最大值再取 exp（结果不变，但不会溢出）。"),
        ((torch.tensor([[1.0, 2.0, 3.0], [3.0, 3.0, -1.0]]),),
         "二维输入时每一行分别归一化：最大值和求和都沿最后一维、保持维度。"),
        ((torch.tensor([5.0]),), "只有一个词元时，它的概率是 1。"),
        ((torch.tensor([1.0, float("-inf"), 0.0]),), "分数是 -inf 的词元（被过滤掉的）概率是 0。"),
    ]
    mistakes = [
        (lambda x: x.exp() / x.exp().sum(), "没有先减去最大值：分数很大时会溢出；二维时还要沿最后一维求和。"),
        (lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(), "二维输入要沿最后一维（每一行）分别计算。"),
        (lambda x: x / x.sum(-1, keepdim=True), "softmax 要先取 exp，不是直接除以总和。"),
    ]
    return check_cases("softmax（把分数变成概率）", my_softmax, softmax, cases, SOFTMAX_HINTS, compare=expect_close,
                       mistakes=mistakes)


def check_temperature(my_softmax: Callable[..., torch.Tensor]) -> bool:
    """`softmax(logits, temperature) -> Tensor`: the scores are divided by the temperature first."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    cases = [
        ((logits, 1.0), "温度 1 就是普通的 softmax。"),
        ((logits, 0.5), "温度是“除”：温度越低，分布越尖（最大的更大）。"),
        ((logits, 2.0), "温度越高，分布越平。"),
        ((logits, 0.01), "温度很低时分数除以 T 会很大：先除以温度，再减去最大值，避免溢出。"),
        ((torch.tensor([[1.0, 0.0], [0.0, 3.0]]), 3.0), "二维输入、温度不是 1：每一行分别计算。"),
    ]
    mistakes = [
        (lambda x, t: softmax(x * t), "温度是“除”，不是“乘”：T 越大分布越平。"),
        (lambda x, t: softmax(x) / t, "温度要作用在分数上（softmax 之前），不是概率上。"),
        (lambda x, t: softmax(x), "忘了用温度。"),
    ]
    return check_cases("softmax 的温度 temperature", my_softmax, softmax, cases, SOFTMAX_HINTS[::-1],
                       compare=expect_close, mistakes=mistakes)


TOP_K_HINTS = ["只保留分数最高的 k 个（和第 k 名并列的也保留），其余设为负无穷 float('-inf')，保留的分数不变、位置不变。",
               "先找到第 k 大的分数（torch.topk 可以帮忙），比它小的都去掉；k 比词表大时要先把 k 限制住；沿最后一维做。"]


def check_top_k(my_top_k: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """`top_k_filter(logits, k) -> Tensor`: keep the k best scores (and ties with the k-th), the rest -inf."""
    logits = torch.tensor([0.1, 3.0, 2.0, -1.0, 5.0])
    cases = [
        ((logits, 2), "只保留分数最高的 k 个，其余设为 float('-inf')（不是 0）。分数没有排好序，位置不能变。"),
        ((logits, 1), "k=1 只剩下最高分。"),
        ((logits, 10), "k 比词表还大时全部保留。"),
        ((torch.tensor([1.0, 3.0, 3.0, 2.0]), 1), "和第 k 名分数相同（并列）的词元也保留。"),
        ((torch.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]]), 2), "二维输入时每一行分别取前 k 个：沿最后一维做。"),
        ((torch.tensor([-2.0, -5.0, -1.0, -3.0]), 2), "分数全是负数：被去掉的要设为 -inf，不能设为 0（0 比它们都大）。"),
    ]
    mistakes = [
        (lambda x, k: x.masked_fill(x < x.flatten().topk(min(k, x.numel())).values[-1], float("-inf")),
         "二维输入时每一行分别取前 k 个：第 k 名要沿最后一维找。"),
        (lambda x, k: x.masked_fill(x < torch.topk(x, min(k, x.size(-1))).values[..., -1:], 0.0),
         "被去掉的分数要设为 float('-inf')，不是 0。"),
        (lambda x, k: torch.sort(x, descending=True).values.masked_fill(
            torch.arange(x.size(-1)) >= k, float("-inf")), "结果要保持原来的位置，不能排序。"),
        (lambda x, k: x.masked_fill(x <= torch.topk(x, min(k, x.size(-1))).values[..., -1:], float("-inf")),
         "第 k 名自己（和它并列的）也要保留：去掉的是“比第 k 名小”的。"),
    ]
    return check_cases("top_k_filter（只保留前 k 名）", my_top_k, top_k_filter, cases, TOP_K_HINTS,
                       compare=expect_close, mistakes=mistakes)


def reference_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """helpers' top_p_filter, with p = 1 meaning "keep everything" exactly."""
    return logits.clone() if p >= 1 else top_p_filter(logits, p)


TOP_P_HINTS = ["按概率从大到小排，一个词元被保留，当且仅当排在它前面的词元的概率之和还小于 p；保留的分数不变、位置不变。",
               "先 softmax 再排序，算累计和；“排在它前面的和” = 累计和 − 它自己；最后要把排序后的判断放回原来的位置"
               "（sort 返回的顺序可以配合 scatter 使用）。"]


def check_top_p(my_top_p: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """`top_p_filter(logits, p) -> Tensor`: keep the smallest top set whose probability reaches p."""
    logits = torch.tensor([0.2, 0.5, 0.3]).log()  # probabilities 0.2, 0.5, 0.3, deliberately unsorted
    cases = [
        ((torch.tensor([3.0, 1.0, 2.0, 0.0]), 0.9), "排序后算累计概率，再把结果放回原来的位置。"),
        ((logits, 0.75), "0.5 + 0.3 = 0.8 ≥ 0.75，所以 0.5 和 0.3 都保留：判断的是“它之前的累计概率是否 < p”。"),
        ((logits, 0.3), "概率最大的词元总是保留，哪怕它一个就超过了 p。"),
        ((logits, 0.01), "p 很小时只剩概率最大的那一个，不能全部去掉。"),
        ((logits, 1.0), "p=1 表示不过滤：全部保留。"),
        ((torch.tensor([2.0, float("-inf"), 1.0, 0.5]), 0.8), "已经是 -inf 的词元（比如 top-k 去掉的）仍然是 -inf。"),
        ((torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]), 0.6), "二维输入：每一行分别计算。"),
    ]

    def keep_when(x: torch.Tensor, p: float, rule: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  sort: bool = True, probs: bool = True) -> torch.Tensor:
        probs = softmax(x) if probs else x
        if not sort:
            return x.masked_fill(~rule(probs.cumsum(-1), probs), float("-inf"))
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = torch.zeros_like(sorted_probs, dtype=torch.bool).scatter(
            -1, order, rule(sorted_probs.cumsum(-1), sorted_probs))
        return x.masked_fill(~keep, float("-inf"))

    mistakes = [
        (lambda x, p: keep_when(x, p, lambda c, s: c <= p),
         "你保留的是“加上它以后累计概率 ≤ p”的：会把“刚好越过 p 的那个”去掉，p 很小时甚至全部去掉。"),
        (lambda x, p: keep_when(x, p, lambda c, s: c - s < p, sort=False), "要先按概率从大到小排序，再算累计概率。"),
        (lambda x, p: keep_when(x, p, lambda c, s: c - s < p, probs=False),
         "累加的要是概率（先 softmax），不是 logits。"),
        (lambda x, p: torch.sort(keep_when(x, p, lambda c, s: c - s < p), descending=True).values,
         "结果要放回原来的位置，不能保持排序后的顺序。"),
        (lambda x, p: keep_when(x, p, lambda c, s: c < p), "判断的是“它之前”的累计概率（不含它自己）是否 < p。"),
    ]
    return check_cases("top_p_filter（核采样 nucleus）", my_top_p, reference_top_p, cases, TOP_P_HINTS,
                       compare=expect_close, mistakes=mistakes)


SAMPLER_TOLERANCE = 0.04
SAMPLER_DRAWS = 2000


def check_sampler(my_sample: Callable[..., int]) -> bool:
    """`sample_next(logits, temperature, top_k, top_p, generator) -> int`: greedy at 0, else a fair draw.

    The empirical frequencies of SAMPLER_DRAWS draws (fixed seeds) must be within SAMPLER_TOLERANCE of the exact
    distribution next_token_probs(logits, temperature, top_k, top_p) for every token id.
    """
    logits = torch.tensor([1.0, 3.0, 0.5, 2.0, -1.0])  # unsorted on purpose
    settings = [
        (dict(temperature=1.0), "按概率采样：概率由 softmax 给出。"),
        (dict(temperature=2.0), "温度 2：先把分数除以 2 再 softmax，分布变平。"),
        (dict(temperature=0.7, top_k=3), "先除以温度，再只保留前 3 名，然后按概率抽。"),
        (dict(temperature=2.0, top_p=0.8), "顺序是：先除以温度，再做 top-p（温度改变了概率，也就改变了 top-p 留下谁）。"),
        (dict(temperature=1.5, top_k=4, top_p=0.7), "三者一起：温度 → top-k → top-p → softmax → 采样。"),
    ]

    def draw(case: str, n: int, seed: int, scores: torch.Tensor, **setting: Any) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        picks = []
        for _ in range(n):
            got = as_int(call(my_sample, case, scores.clone(), generator=gen, **setting))
            if not isinstance(got, int) or isinstance(got, bool):
                raise Mismatch(case, "一个 int（词元编号）", f"{type(got).__name__}：{show(got)}",
                               "类型不同 (type differs)：返回一个整数词元编号（int）。")
            picks.append(got)
        return picks

    def frequencies(picks: list[int], size: int) -> list[float]:
        return [round(picks.count(i) / len(picks), 3) for i in range(size)]

    def diagnose(got: list[float], setting: dict) -> str:
        """Name the mistake whose exact distribution the frequencies match."""
        t, k, p = setting.get("temperature", 1.0), setting.get("top_k"), setting.get("top_p")
        candidates = [
            (next_token_probs(logits, 1.0, k, p), "温度没有起作用：要先把分数除以温度。"),
            (softmax(logits / t), "只用了温度：top-k / top-p 过滤没有起作用。"),
        ]
        if p is not None:
            filtered = top_p_filter(logits if k is None else top_k_filter(logits, k), p)
            candidates.append((softmax(filtered / t), "你在除以温度之前做了 top-p：顺序应该是温度 → top-k → top-p。"))
        order = torch.argsort(next_token_probs(logits, t, k, p), descending=True)
        sorted_probs = next_token_probs(logits, t, k, p)[order]
        candidates.append((sorted_probs, "你返回的是排序以后的位置（第几名），不是词元编号：要把位置换回原来的编号。"))
        for probs, message in candidates:
            if max(abs(g - w) for g, w in zip(got, probs.tolist())) <= SAMPLER_TOLERANCE:
                return message
        return ""

    def body() -> int:
        count = 0
        for scores in (logits, torch.tensor([0.0, 4.0, 1.0, 3.9]), torch.tensor([2.0, 5.0, 5.0, 1.0])):
            case = f"{show(scores)}，temperature=0"
            expected = int(scores.argmax())
            got = as_int(call(my_sample, case, scores.clone(), temperature=0.0))
            expect_equal(case, got, expected, "temperature=0 表示贪心：直接返回分数最高的编号，不要采样，也不要除以 0。"
                         + ("（并列时取第一个，和 argmax 一样。）" if scores[1] == scores[2] else ""))
            count += 1
        for setting, hint in settings:
            described = "，".join(f"{k}={v}" for k, v in setting.items())
            case = f"logits={show(logits)}，{described}，固定种子抽 {SAMPLER_DRAWS} 次的频率"
            picks = draw(case, SAMPLER_DRAWS, 1, logits, **setting)
            want = next_token_probs(logits, **setting).tolist()
            got = frequencies(picks, len(want))
            allowed = {i for i, w in enumerate(want) if w > 0}
            outside = sorted(set(picks) - allowed)
            if outside or max(abs(g - w) for g, w in zip(got, want)) > SAMPLER_TOLERANCE:
                note = f"（抽到了不该抽到的编号 {outside}）" if outside else ""
                mistake = diagnose(got, setting)
                raise Mismatch(case, f"每个编号的频率和 {rounded(want)} 相差不超过 {SAMPLER_TOLERANCE}",
                               str(got) + note, [mistake, hint] if mistake else hint)
            count += 1
        case = "同一个种子 (seed=123) 抽两遍，各 20 次（中间别的代码也用了随机数）"
        first = draw(case, 20, 123, logits, temperature=1.0)
        torch.rand(7)
        expect_equal(case, draw(case, 20, 123, logits, temperature=1.0), first,
                     "采样时要用传进来的 generator（torch.multinomial 和 torch.rand 都有 generator 参数），结果才能复现。")
        return count + 1

    return verdict("sample_next（选出下一个词元）", body,
                   ["temperature=0 → 贪心；否则顺序是：分数除以温度 → top-k → top-p → softmax → 按概率抽一个。",
                    "用练习 1–3 写好的函数；采样函数要把 generator 传进去；返回的是词元编号（原来的位置），一个 int。"])


def reference_repetition_penalty(logits: torch.Tensor, generated_ids: Any, penalty: float) -> torch.Tensor:
    """transformers' own RepetitionPenaltyLogitsProcessor: every id seen once or more, penalised once."""
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    ids = torch.as_tensor(list(as_id_list(generated_ids)), dtype=torch.long)
    if ids.numel() == 0:
        return logits.clone()
    return RepetitionPenaltyLogitsProcessor(float(penalty))(ids[None], logits[None].clone())[0]


def penalised_greedy(model: Any, input_ids: torch.Tensor, steps: int, penalty: float,
                     apply: Callable[..., Any]) -> list[int]:
    """Greedy ids with `apply(logits, ids_so_far, penalty)` before each argmax (the prompt counts as seen)."""
    ids = input_ids[0].tolist()
    with quiet(), torch.no_grad():
        for _ in range(steps):
            last = model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(as_tensor(apply(last.clone(), list(ids), penalty), last).argmax()))
    return ids


def check_repetition_penalty(my_penalty: Callable[..., torch.Tensor], model: Any, tokenizer: Any) -> bool:
    """`repetition_penalty(logits, generated_ids, penalty) -> Tensor`: CTRL's penalty, as transformers applies it.

    Then a greedy loop that uses the learner's function must reproduce `model.generate(repetition_penalty=...)`.
    """
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, -0.2])
    cases = [
        ((logits, [0, 1], 2.0), "正的分数除以 penalty，负的分数乘以 penalty：两种情况都让这个词元更不可能被选中。"),
        ((logits, [3, 3, 3], 2.0), "同一个词元出现几次都只惩罚一次。"),
        ((logits, [4, 2, 0], 1.5), "编号没有排好序也一样；负分数乘以 penalty 会变得更小。"),
        ((logits, torch.tensor([1, 3]), 2.0), "已经出现的编号也可能是一个一维张量。"),
        ((logits, [], 2.0), "还没有出现过任何词元：分数不变。"),
        ((logits, [0, 1, 2], 1.0), "penalty=1 表示不惩罚：分数不变。"),
        ((logits, [0, 1], 0.5), "penalty < 1 反过来鼓励重复：公式不变。"),
        ((torch.tensor([0.0, 1.0]), [0, 1], 2.0), "分数正好是 0 时，乘除都还是 0。"),
    ]

    def compounding(x: torch.Tensor, ids: Any, p: float) -> torch.Tensor:
        x = x.clone()
        for i in as_id_list(ids):
            x[i] = x[i] / p if x[i] > 0 else x[i] * p
        return x

    def divide_all(x: torch.Tensor, ids: Any, p: float) -> torch.Tensor:
        x = x.clone()
        index = torch.as_tensor(list(as_id_list(ids)), dtype=torch.long)
        x[index] = x[index] / p
        return x

    def multiply_all(x: torch.Tensor, ids: Any, p: float) -> torch.Tensor:
        x = x.clone()
        index = torch.as_tensor(list(as_id_list(ids)), dtype=torch.long)
        x[index] = x[index] * p
        return x

    def subtract(x: torch.Tensor, ids: Any, p: float) -> torch.Tensor:
        x = x.clone()
        index = torch.as_tensor(sorted(set(as_id_list(ids))), dtype=torch.long)
        x[index] = x[index] - p
        return x

    mistakes = [
        (divide_all, "负的分数不能除以 penalty（那样它反而变大、更可能被选中）：负的要乘以 penalty。"),
        (multiply_all, "正的分数要除以 penalty，不是乘以。"),
        (compounding, "同一个词元出现好几次时，你惩罚了好几次：每个出现过的编号只惩罚一次。"),
        (subtract, "重复惩罚是除以（正分数）或乘以（负分数）penalty，不是减去它。"),
    ]
    prompt = "The cat sat on the mat. The cat sat on the mat. The cat"

    def body() -> int:
        for args, hint in cases:
            case = ", ".join(show(a) for a in args)
            got = call(my_penalty, case, *clone(args))
            known = [(wrong(*clone(args)), wrong_hint) for wrong, wrong_hint in mistakes]
            expect_close(case, got, reference_repetition_penalty(*args), hint, mistakes=known)
        ids = prompt_tensor(tokenizer, prompt)
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        with quiet(), torch.no_grad():
            reference = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, min_new_tokens=8,
                                       do_sample=False, repetition_penalty=1.3, pad_token_id=pad, eos_token_id=None)
        case = f"在贪心循环里每一步用你的函数（penalty=1.3），提示词 {prompt!r}，生成 8 个词元"
        got = penalised_greedy(model, ids, 8, 1.3, lambda x, seen, p: call(my_penalty, case, x, seen, p))
        expect_equal(case, got, reference[0].tolist(),
                     "和 model.generate(repetition_penalty=1.3) 的结果不一样：提示词里的词元也算“出现过”。")
        return len(cases) + 1

    return verdict("repetition_penalty（重复惩罚）", body,
                   ["对每个已经出现过的词元（提示词里的也算）：分数是正的就除以 penalty，是负的就乘以 penalty；"
                    "没出现过的词元不变；每个词元只惩罚一次。",
                    "先复制一份 logits；把出现过的编号去重（或者用张量下标一次取出所有出现过的位置），"
                    "用 torch.where 按正负分别处理，再写回这些位置。"])


# ---------------------------------------------------------------------------------------------------
# Lab 05: the generation loop, compared with transformers' model.generate.
# ---------------------------------------------------------------------------------------------------

GPT2_PROMPTS = ("[CLS]今天天气真", "[CLS]我们一起去")


def prompt_tensor(tokenizer: Any, text: str) -> torch.Tensor:
    """A prompt as the [1, n] id tensor the loop exercises take."""
    return torch.tensor([encode(tokenizer, text)])


def expect_plain_loop(case: str, calls: ModelCalls, prompt_len: int, steps: int) -> None:
    """The loop of lab 05: one forward per step, the whole sequence each time, no generate."""
    if calls.used_generate():
        raise Mismatch(case + " 的模型调用", f"{steps} 次 model(...)", calls.describe(), NO_GENERATE)
    want = [(prompt_len + i, 0) for i in range(steps)]
    got = [(c.fed, c.cached) for c in calls.forwards]
    if got != want:
        hint = ("每一步调用一次模型，送入到目前为止的整个序列（提示词 + 已经生成的词元）。"
                if len(got) == steps else f"每一步正好调用一次模型：{steps} 步就是 {steps} 次。")
        raise Mismatch(case + " 的模型调用", f"{steps} 次，每次送入的词元数 {[w[0] for w in want]}",
                       calls.describe(), hint)


def check_greedy_loop(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """Retired exercise (lab 05 v1): `greedy_loop(model, input_ids, steps) -> Tensor [1, n + steps]`."""
    cases = [(GPT2_PROMPTS[0], 20), (GPT2_PROMPTS[1], 5), (GPT2_PROMPTS[0], 1), (GPT2_PROMPTS[1], 0)]

    def body() -> int:
        for text, steps in cases:
            ids = prompt_tensor(tokenizer, text)
            case = f"{text!r}，steps={steps}"
            expected = reference_greedy(model, ids, steps)
            with ModelCalls(model) as calls:
                got = call(my_loop, case, model, ids.clone(), steps)
            expect_equal(case, as_id_list(got), expected, "每一步取最后一个位置的 logits，选最大的，接到序列后面。"
                         if steps else "steps=0 时一个新词元也不生成，原样返回 input_ids。")
            expect_plain_loop(case, calls, ids.size(1), steps)
        return len(cases)

    return retired("greedy_loop", lambda: verdict("greedy_loop（贪心生成循环）", body,
                                                  ["送进去 → 取最后一个位置 → 选最大的 → 接上 → 再送进去。"]))


def reference_greedy_probs(model: Any, input_ids: torch.Tensor, steps: int) -> tuple[list[int], torch.Tensor,
                                                                                     torch.Tensor]:
    """Greedy ids (prompt + steps), the chosen tokens' probabilities and their logits, without a cache."""
    ids, probs, logits = input_ids.clone(), [], []
    with quiet(), torch.no_grad():
        for _ in range(steps):
            last = model(ids).logits[0, -1].float()
            best = int(last.argmax())
            probs.append(float(torch.softmax(last, -1)[best]))
            logits.append(float(last[best]))
            ids = torch.cat([ids, torch.tensor([[best]])], dim=1)
    return ids[0].tolist(), torch.tensor(probs), torch.tensor(logits)


def check_greedy_probs(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """`greedy_with_probs(model, input_ids, steps) -> (ids, probs)`: greedy ids and each chosen token's probability.

    The loop is watched: one forward per step with the whole sequence, and no `model.generate`.
    """
    cases = [(GPT2_PROMPTS[0], 8), (GPT2_PROMPTS[1], 3), (GPT2_PROMPTS[0], 1), (GPT2_PROMPTS[1], 0)]

    def body() -> int:
        for text, steps in cases:
            case = f"{text!r}，steps={steps}"
            ids = prompt_tensor(tokenizer, text)
            expected_ids, want, logit_values = reference_greedy_probs(model, ids, steps)
            with ModelCalls(model) as calls:
                got = call(my_loop, case, model, ids.clone(), steps)
            if not (isinstance(got, (tuple, list)) and len(got) == 2):
                raise Mismatch(case, "(ids, probs) 两个值", show(got), "要返回两个值：生成的编号和概率列表。")
            expect_equal(case + " 的 ids", as_id_list(got[0]), expected_ids,
                         "ids 是提示词 + 新词元（形状 [1, 提示词长度 + steps]）；每一步取最后一个位置的 logits 里最大的。"
                         if steps else "steps=0：原样返回 input_ids，概率列表是空的。")
            try:
                got_probs = torch.tensor([float(p) for p in got[1]])
            except (TypeError, ValueError, RuntimeError):
                raise Mismatch(case + " 的概率", show(want), show(got[1]),
                               "probs 是一个列表，每一步放一个数（Python 浮点数，或者只有一个元素的张量）。") from None
            mistakes = [(logit_values, "你记录的是 logits（未归一化的分数），要记录 softmax 之后的概率。"),
                        (want.log(), "你记录的是对数概率：要记录概率本身。")]
            expect_close(case + " 的概率", got_probs, want,
                         "记录的是 softmax 之后、被选中的那个词元的概率，每一步一个数。", atol=1e-4, mistakes=mistakes)
            expect_plain_loop(case, calls, ids.size(1), steps)
        return len(cases)

    return verdict("greedy_with_probs（贪心生成并记录每一步的概率）", body,
                   ["每一步：整个序列送进模型 → 最后一个位置的 logits → softmax 成概率 → 选概率最大的 → 记下它的概率 → 接上。",
                    "被选中词元的概率就是概率向量在那个编号上的值；.item() 能把一个元素的张量变成 Python 浮点数。"
                    "不要调用 model.generate。"])


def check_stop_loop(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """`greedy_until(model, input_ids, max_steps, stop_id) -> Tensor`: stop right after producing `stop_id`."""
    ids = prompt_tensor(tokenizer, GPT2_PROMPTS[0])
    n = ids.size(1)
    free = reference_greedy(model, ids, 12)
    new = free[n:]
    stop = new[3]
    first = new[0]
    in_prompt = next(i for i in ids[0].tolist()[1:] if i not in new)
    never = next(i for i in range(1000, 2000) if i not in free)
    last = ids[0, -1].item()
    cases = [
        (stop, 10, free[: n + new.index(stop) + 1],
         "生成出停止符后立刻停下，停止符本身也保留在结果里（和 transformers 的 generate 一样）。"),
        (in_prompt, 10, free[: n + 10],
         "这个停止符在提示词里出现过，但新生成的词元里没有它：只看新生成的词元，不看提示词。"),
        (never, 10, free[: n + 10], "停止符一直没出现时，生成满 max_steps 个词元。"),
        (last, 10, free[: n + new.index(last) + 1] if last in new[:10] else free[: n + 10],
         "提示词的最后一个词元正好是停止符：它是提示词，不是新生成的，不能因为它停下。"),
        (first, 10, free[: n + 1], "第一个新词元就是停止符：只生成 1 个就停。"),
        (stop, 3, free[: n + 3], "max_steps 到了就停，哪怕还没遇到停止符。"),
        (stop, 0, ids[0].tolist(), "max_steps=0 时原样返回 input_ids。"),
    ]

    def body() -> int:
        for stop_id, max_steps, expected, hint in cases:
            case = f"{GPT2_PROMPTS[0]!r}，max_steps={max_steps}，stop_id={stop_id}"
            with ModelCalls(model) as calls:
                got = as_id_list(call(my_loop, case, model, ids.clone(), max_steps, stop_id))
            mistakes = []
            if stop_id in ids[0].tolist():
                mistakes.append((ids[0].tolist() + free[n:n + 1], "你的结果把提示词里的停止符也当成了停止：只检查新生成的词元。"))
                mistakes.append((ids[0].tolist(), "你的结果把提示词里的停止符也当成了停止：只检查新生成的词元。"))
            if stop_id in new[:max_steps]:
                mistakes.append((expected[:-1], "停止符本身要保留在结果里：先接上，再判断要不要停。"))
            mistakes.append((free[: n + max_steps + 1], f"多生成了一个：最多生成 max_steps={max_steps} 个。"))
            expect_equal(case, got, expected, hint, mistakes=mistakes)
            if calls.used_generate():
                raise Mismatch(case + " 的模型调用", "自己写的循环", calls.describe(), NO_GENERATE)
            if len(calls.forwards) != len(expected) - n:
                raise Mismatch(case + " 的模型调用次数", str(len(expected) - n), str(len(calls.forwards)),
                               "每生成一个词元调用一次模型；停下以后不要再调用。")
        return len(cases)

    return verdict("greedy_until（遇到停止符就停）", body,
                   ["循环最多 max_steps 次；每一步先把新词元接上，再看它是不是停止符，是就跳出循环。",
                    "只比较这一步新生成的那一个编号（一个 int）和 stop_id；不要在整个序列里找 stop_id，因为提示词里可能就有它。"])


# ---------------------------------------------------------------------------------------------------
# Lab 06: chat prompts and replies.
# ---------------------------------------------------------------------------------------------------


def check_chatml_prompt(my_prompt: Callable[..., str], tokenizer: Any) -> bool:
    """`chatml_prompt(history, system=None) -> str`: SmolLM2's chat template, written by hand."""
    cases = [
        ((["Hi"], None), "格式要和上面分词器自带模板的输出一字不差，包括每个换行；没有给 system 时用默认的 system 消息。"),
        ((["Hi"], "Be brief."), "每条消息是 <|im_start|>角色、换行、内容、<|im_end|>、换行；最后加上给 assistant 的开头，让模型接着说。"),
        ((["Hi", "Hello! How can I help?", "Tell me a joke."], "Be brief."),
         "历史里第 0、2、4… 条是 user，第 1、3… 条是 assistant。"),
        (([], "Be brief."), "没有历史时：只有 system 消息和给 assistant 的开头。"),
        ((["第一行\n第二行"], None), "内容里的换行原样保留。"),
    ]

    def reference(history: list[str], system: str | None) -> str:
        return template_prompt(tokenizer, history, system)

    def no_generation_prompt(history: list[str], system: str | None) -> str:
        return reference(history, system)[: -len("<|im_start|>assistant\n")]

    def all_user(history: list[str], system: str | None) -> str:
        text = reference(history, system).replace("<|im_start|>assistant\n", "<|im_start|>user\n")
        return text[: -len("<|im_start|>user\n")] + "<|im_start|>assistant\n"

    def swapped(history: list[str], system: str | None) -> str:
        text = reference(history, system)
        head, _, rest = text.partition("<|im_end|>\n")
        rest = rest.replace("<|im_start|>user\n", "\0").replace("<|im_start|>assistant\n", "<|im_start|>user\n")
        rest = rest.replace("\0", "<|im_start|>assistant\n")
        return head + "<|im_end|>\n" + rest[: -len("<|im_start|>user\n")] + "<|im_start|>assistant\n"

    def no_default_system(history: list[str], system: str | None) -> str:
        text = reference(history, system)
        return text if system else text.partition("<|im_end|>\n")[2]

    mistakes = [(no_generation_prompt, "最后要加上 <|im_start|>assistant 和换行：意思是“轮到模型说了”。"),
                (no_default_system, "没有给 system 时，第一条也是 system 消息，内容用默认的设定（见练习说明）。"),
                (lambda h, sy: reference(h, sy)[:-1], "最后的 <|im_start|>assistant 后面还有一个换行。"),
                (lambda h, sy: reference(h, sy).replace("<|im_start|>user\n", "<|im_start|>user \n")
                 .replace("<|im_start|>system\n", "<|im_start|>system \n"),
                 "角色名后面直接换行，中间没有空格。"),
                (all_user, "user 和 assistant 要交替：第 1、3… 条是 assistant。"),
                (swapped, "角色反了：第 0、2、4… 条是 user，第 1、3… 条是 assistant。"),
                (lambda h, sy: reference(h, sy).replace("<|im_end|>\n", "<|im_end|>"),
                 "每条消息的 <|im_end|> 后面还有一个换行。")]
    return check_cases("chatml_prompt（手写聊天模板）", my_prompt, reference, cases,
                       ["每条消息的格式都一样：开始标记 + 角色 + 换行 + 内容 + 结束标记 + 换行；第一条是 system。",
                        "对照上面 tokenizer.apply_chat_template(..., add_generation_prompt=True, tokenize=False) 的输出，"
                        "一个字符一个字符地比（包括换行）。"], mistakes=mistakes)


def reference_fit_history(tokenizer: Any, history: list[str], max_tokens: int) -> list[str]:
    """The newest turns whose `[CLS]t1[SEP]t2[SEP]...` prompt has at most `max_tokens` tokens: what the course's own
    chat (`ChatSession.fit_context`) keeps. ValueError when even the newest turn alone does not fit."""
    return newest_turns_that_fit(tokenizer, history, max_tokens)


FIT_HISTORY_CASES = [
    (["hello world"], 6, "数的是词元，不是字符：hello 和 world 各是 1 个词元，[CLS] 和 [SEP] 也各算 1 个。"),
    (["你好"], 5, "[CLS]你好[SEP] 是 4 个词元：提示词里写好的 [CLS]、[SEP] 只算一次。"),
    (["你好"], 4, "提示词正好 max_tokens 个词元时放得下，一句也不删（“不超过”包括等于）。"),
    (["你好"], 3, "[CLS]你好[SEP] 有 4 个词元，放不进 3 个：最新的一句单独都放不下时，抛出 ValueError。"),
    (["你好", "你好呀", "你在做什么"], 100, "放得下就一句也不删。"),
    (["你好", "你好呀", "你在做什么"], 13,
     "整段提示词有 14 个词元，多了 1 个：要删掉最早的一问一答。"),
    (["你好", "你好呀", "你在做什么"], 12,
     "删的时候一次删两句（用户的一句和模型的回复），留下的第一句仍是用户说的。"),
    (["我买了iPhone 15", "恭喜你", "hello world"], 14,
     "数的是词元，不是字符：iPhone 是 1 个词元、15 是 1 个词元，[CLS] 和 [SEP] 各算 1 个。"),
    (["在吗", "在的，怎么了", "周末有空吗", "有空，你想去哪儿", "去爬山吧", "好啊，几点出发", "早上八点"], 20,
     "一对删掉以后还放不下，就继续从最早的一对删起。"),
    (["在吗", "在的，怎么了", "周末有空吗", "有空，你想去哪儿", "去爬山吧", "好啊，几点出发", "早上八点"], 34,
     "删掉最早的一问一答就放得下了：留下 5 句，不要多删。"),
    (["你好", "你好呀", "这一句话很长很长很长"], 8, "最新的一句单独都放不下时，抛出 ValueError。"),
]


def fit_history_mistakes(tokenizer: Any) -> list[tuple[Callable[..., Any], str]]:
    """Beginners' versions of fit_history, each with the hint that names its mistake."""

    def keep_newest(history: list[str], max_tokens: int, size: Callable[[list[str]], int], step: int = 2,
                    fits: Callable[[int, int], bool] = lambda n, limit: n <= limit) -> list[str]:
        start = 0
        while not fits(size(history[start:]), max_tokens):
            if start >= len(history) - 1:
                raise ValueError("too long")
            start += step
        return list(history[start:])

    def keep_oldest(history: list[str], max_tokens: int) -> list[str]:
        end = len(history)
        while prompt_tokens(history[:end]) > max_tokens:
            if end <= 1:
                raise ValueError("too long")
            end -= 2
        return list(history[:end])

    prompt_tokens = lambda turns: len(encode(tokenizer, sep_prompt(turns)))  # noqa: E731
    return [
        (lambda h, n: keep_newest(h, n, lambda turns: len(sep_prompt(turns))),
         "你数的是字符 (len(字符串))，要数的是词元：先用分词器编码，再数编号的个数。"),
        (lambda h, n: keep_newest(h, n, lambda turns: len(tokenizer.encode(sep_prompt(turns)))),
         "你数的词元多了 2 个：分词器默认还会自己加上 [CLS] 和 [SEP]；编码时用 add_special_tokens=False"
         "（或者课程的 encode）。"),
        (lambda h, n: keep_newest(h, n, prompt_tokens, step=1),
         "一次只删了一句：这样留下的第一句可能是模型的回复。要一次删两句（用户的一句和它的回复）。"),
        (lambda h, n: keep_newest(h, n, prompt_tokens, fits=lambda size, limit: size < limit),
         "你的结果像是多数了 1 个词元：正好 max_tokens 个词元也放得下，比较时用 <=（不超过），不是 <；"
         "如果你的提示词没写 [CLS]、让分词器去加，它会在末尾再多加一个 [SEP]。"),
        (lambda h, n: keep_newest(h, n, lambda turns: prompt_tokens(turns) - 1),
         "你的结果像是少数了 1 个词元：提示词以 [CLS] 开头，每一句（包括最后一句）后面都有一个 [SEP]，它们各算 1 个。"),
        (lambda h, n: keep_newest(h, n, lambda turns: sum(len(encode(tokenizer, turn)) for turn in turns)),
         "[CLS] 和每句后面的 [SEP] 也占位置：数的是整段提示词的词元。"),
        (keep_oldest, "要删的是最早的几句，留下最新的几句（用户刚说的那句一定要留下）。"),
    ]


def check_fit_history(my_fit: Callable[..., list[str]], tokenizer: Any) -> bool:
    """`fit_history(tokenizer, history, max_tokens) -> list[str]`: drop the oldest turn pairs until the prompt fits."""
    mistakes = fit_history_mistakes(tokenizer)

    def outcome(fn: Callable[..., Any], history: list[str], max_tokens: int) -> Any:
        """What a function returns for this input, or ValueError (the class) when it raises one."""
        try:
            return as_list(fn(list(history), max_tokens))
        except ValueError:
            return ValueError

    def body() -> int:
        alive = list(mistakes)  # the beginners' versions that agreed with the learner on every earlier input
        for history, max_tokens, case_hint in FIT_HISTORY_CASES:
            case = f"history={history!r}，max_tokens={max_tokens}"
            expected = outcome(lambda h, n: reference_fit_history(tokenizer, h, n), history, max_tokens)
            known = [(outcome(wrong, history, max_tokens), wrong_hint) for wrong, wrong_hint in alive]
            given = list(history)
            try:
                got = as_list(my_fit(tokenizer, given, max_tokens))
            except NotImplementedError:
                raise
            except ValueError as error:
                if expected is ValueError:
                    got = ValueError
                else:
                    named = [hint for value, hint in known if value is ValueError]
                    raise LearnerError(case, error, named[:1] + [case_hint]) from None
            except Exception as error:
                wrong_kind = [f"这里要抛出的是 ValueError，你的代码抛出了 {type(error).__name__}。"] if expected is ValueError else []
                raise LearnerError(case, error, wrong_kind + [case_hint]) from None
            if given != history:
                raise Mismatch(case, f"调用以后 history 仍是 {show(history)}", f"调用以后 history 变成了 {show(given)}",
                               "不要改动传进来的 history（例如 pop、del、remove）：返回一个新的列表。")
            if isinstance(got, str):
                raise Mismatch(case, show(expected), show(got),
                               "类型不同 (type differs)：要返回留下来的那几句话（一个列表），不是拼好的提示词。")
            if expected is ValueError and got is not ValueError:
                named = [hint for value, hint in known if same(value, got)]
                raise Mismatch(case, "抛出 ValueError（最新的一句单独都放不下）", show(got),
                               named[:1] + [case_hint, "不要返回空列表或者只截掉一半的句子：告诉调用的人这句话太长了。"])
            if got is not ValueError:
                expect_equal(case, got, expected, case_hint, mistakes=[(v, h) for v, h in known if v is not ValueError])
            alive = [(wrong, hint) for (wrong, hint), (value, _) in zip(alive, known) if same(value, expected)]
        return len(FIT_HISTORY_CASES)

    return verdict("fit_history（放不下时删掉最早的对话）", body,
                   ["先拼出整段提示词、数它的词元；太长就去掉最早的两句，再数，直到放得下。",
                    "数词元要用分词器：把整段提示词（[CLS] 开头，每句后面一个 [SEP]）编码，数编号的个数；"
                    "课程的 encode 不会自己再加 [CLS]、[SEP]。只剩最新的一句还放不下时，抛出 ValueError。",
                    "如果检查一直不结束：多半是循环里每次都从原来的 history 去删，永远删不短；"
                    "要在上一次留下的结果上继续删。"])


def check_chat_reply(my_reply: Callable[..., str], model: Any, tokenizer: Any) -> bool:
    """Retired exercise (lab 06 v1): `chat_reply(model, tokenizer, history, max_new_tokens) -> str`."""
    return retired("chat_reply", lambda: check_chat_reply_v1(my_reply, model, tokenizer))


def check_chat_reply_v1(my_reply: Callable[..., str], model: Any, tokenizer: Any) -> bool:
    """`chat_reply(model, tokenizer, history, max_new_tokens) -> str`: generate until [SEP], return the reply."""
    cases = [(["今天天气真好"], 20), (["你好", "你好呀", "你在做什么"], 12), (["在吗"], 1), (["在吗"], 0)]

    def body() -> int:
        for history, max_new_tokens in cases:
            case = f"history={history!r}，max_new_tokens={max_new_tokens}"
            got = call(my_reply, case, model, tokenizer, list(history), max_new_tokens)
            if max_new_tokens == 0:
                expect_equal(case, got, "", "max_new_tokens=0 时一个字也不生成：回复是空字符串。")
                continue
            ref = generate(model, tokenizer, sep_prompt(history), max_new_tokens, stop_tokens=("[SEP]",))
            plain = first_reply(ref.text)
            clean = decode(tokenizer, [i for i in ref.new_ids if i != tokenizer.sep_token_id],
                           skip_special_tokens=True).strip()
            if got != clean:
                unfinished = generate(model, tokenizer, "[CLS]" + "[SEP]".join(history), max_new_tokens,
                                      stop_tokens=("[SEP]",))
                mistakes = [(first_reply(unfinished.text), "提示词要以 [SEP] 结尾（这一轮说完了，轮到对方）。"),
                            (ref.text.strip(), "回复里不要带 [SEP]：只要第一个 [SEP] 之前的文字。")]
                expect_equal(case, got, plain, "提示词按 [CLS]第1句[SEP]…[SEP] 拼；贪心生成，遇到 [SEP] 停下；"
                             "回复是 [SEP] 之前的文字（两头去空格）。", mistakes=mistakes)
        return len(cases)

    return verdict("chat_reply（生成一句回复）", body,
                   ["三步：用历史拼出以 [SEP] 结尾的提示词 → 贪心生成、遇到 [SEP] 停下 → 取第一个 [SEP] 之前的文字。",
                    "课程的 generate 有 stop_tokens 参数；它返回的 result.text 只含新生成的文字。"])


# ---------------------------------------------------------------------------------------------------
# Lab 07: who sees whom (measured), and GLM's blank infilling in the lesson's notation.
# ---------------------------------------------------------------------------------------------------


def reference_causal_mask(n: int) -> torch.Tensor:
    """[n, n] booleans: row i may look at column j when j <= i."""
    return torch.ones(n, n, dtype=torch.bool).tril()


def reference_prefix_mask(n: int, prefix_len: int) -> torch.Tensor:
    """Causal, except that the first `prefix_len` tokens all see each other (GLM's part A, a prefix LM)."""
    mask = reference_causal_mask(n)
    mask[:prefix_len, :prefix_len] = True
    return mask


def expect_mask(case: str, got: Any, expected: torch.Tensor, hint: Any, mistakes: Sequence = ()) -> None:
    """A mask may be bool or 0/1 numbers (or nested lists); it is compared as booleans."""
    if isinstance(got, (list, tuple)):
        try:
            got = torch.tensor(got)
        except (TypeError, ValueError, RuntimeError):
            pass
    if not isinstance(got, torch.Tensor):
        raise Mismatch(case, show(expected), f"{type(got).__name__}：{show(got)}",
                       ["类型不同 (type differs)：请返回一个 torch.Tensor。"] + as_levels(hint))
    if tuple(got.shape) != tuple(expected.shape):
        raise Mismatch(case, f"形状 (shape) {tuple(expected.shape)}", f"形状 (shape) {tuple(got.shape)}", hint)
    got = got.detach().cpu() != 0
    if torch.equal(got, expected):
        return
    for wrong, wrong_hint in mistakes:
        if isinstance(wrong, torch.Tensor) and wrong.shape == got.shape and torch.equal(got, wrong.bool()):
            hint = as_levels(wrong_hint) + as_levels(hint)
            break
    index = [int(i) for i in (got != expected).nonzero()[0]]
    note = f"（第一个不同的位置 [行 {index[0]}, 列 {index[1]}]：期望 {bool(expected[tuple(index)])}，得到 {bool(got[tuple(index)])}）"
    raise Mismatch(case, show(expected), show(got) + note, hint)


def check_causal_mask(my_mask: Callable[[int], torch.Tensor]) -> bool:
    """Retired exercise (lab 07 v1): `causal_mask(n) -> Tensor [n, n]`, True where j <= i."""
    cases = [((4,), "第 i 行能看见第 0..i 列（自己和前面的）。"), ((1,), "只有一个词元时，它只能看见自己。"),
             ((6,), "对角线也是 True：每个词元都能看见自己。")]
    return retired("causal_mask", lambda: check_cases("causal_mask（GPT 的因果掩码）", my_mask, reference_causal_mask,
                                                      cases, ["下三角（含对角线）。"], compare=expect_mask))


def check_prefix_mask(my_mask: Callable[[int, int], torch.Tensor]) -> bool:
    """Retired exercise (lab 07 v1): `prefix_mask(n, prefix_len) -> Tensor [n, n]`."""
    cases = [((5, 3), "前缀互相都能看见，但看不见前缀之后的词元。"), ((4, 0), "prefix_len=0 时就是因果掩码。"),
             ((4, 4), "prefix_len=n 时全部互相看见。"), ((6, 2), "前缀里的词元看不见前缀之后的词元。")]
    return retired("prefix_mask", lambda: check_cases("prefix_mask（GLM 的前缀双向掩码）", my_mask,
                                                      reference_prefix_mask, cases, ["先因果，再把左上角的前缀块全设为 True。"],
                                                      compare=expect_mask))


MASK, START, END = "[MASK]", "[START]", "[END]"


def reference_blank_infilling(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], int]:
    """Lab 07 v1's format: part A (each span replaced by [MASK]) + part B ([START] span [END]); len(part A)."""
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
    """Retired exercise (lab 07 v1): `blank_infilling(tokens, spans) -> (sequence, prefix_len)`."""
    cases = [((list("123456"), [(2, 3), (4, 6)]), "A 部分每段一个 [MASK]；B 部分依次是 [START] 片段 [END]。"),
             ((list("今天天气真好"), [(4, 6)]), "片段在结尾时，A 部分以 [MASK] 结尾。"),
             ((list("今天天气"), []), "没有片段时，序列就是原文。")]
    return retired("blank_infilling", lambda: check_cases("blank_infilling（GLM 的自回归填空）", my_infilling,
                                                          reference_blank_infilling, cases, ["A 部分 + B 部分。"]))


M, S, E, NO_TARGET = "[M]", "[S]", "[E]", "-"


def reference_glm_example(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
    """GLM's inputs and targets in lesson 07's notation; part B follows the order in which `spans` are given.

    Part A: the text, each span replaced by one [M] (in text order). Part B: for each span, in the given
    order, [S] and the span. Targets: '-' for part A; for part B each position predicts the next token of
    its span, and the last position of a span predicts [E]. [E] appears only in the targets.
    """
    part_a: list[str] = []
    last = 0
    for start, end in sorted(spans):
        part_a += tokens[last:start] + [M]
        last = end
    part_a += tokens[last:]
    inputs_b: list[str] = []
    targets_b: list[str] = []
    for start, end in spans:
        inputs_b += [S] + tokens[start:end]
        targets_b += tokens[start:end] + [E]
    return part_a + inputs_b, [NO_TARGET] * len(part_a) + targets_b


def normalise_pair_of_lists(answer: Any) -> Any:
    """(list, list) with tuples turned into lists, when the answer has that shape."""
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return tuple(list(x) if isinstance(x, tuple) else x for x in answer)
    return answer


def check_glm_example(my_glm: Callable[..., tuple[list[str], list[str]]]) -> bool:
    """`glm_example(tokens, spans) -> (inputs, targets)`: GLM's autoregressive blank infilling, [M]/[S]/[E]."""
    six = list("123456")
    cases = [
        ((six, [(2, 3), (4, 6)]), "课程里的例子：A 部分 1 2 [M] 4 [M]；B 部分 [S] 3 [S] 5 6；[E] 只出现在目标 (targets) 里。"),
        ((six, [(4, 6), (2, 3)]), "GLM 会打乱各段的顺序：B 部分按 spans 给出的顺序排，但 A 部分里的 [M] 还是按原文的位置。"),
        ((list("今天天气真好"), [(0, 2)]), "片段在开头：A 部分以 [M] 开头。"),
        ((list("今天天气真好"), [(5, 6)]), "长度为 1 的片段在结尾：A 部分以 [M] 结尾；在 [S] 处预测那个字，在那个字处预测 [E]。"),
        ((six, [(0, 6)]), "整句都挖掉：A 部分只剩一个 [M]。"),
        ((six, [(1, 2), (2, 4)]), "两个片段紧挨着：A 部分有两个相邻的 [M]。"),
        ((list("今天天气"), []), "没有片段：输入就是原文，目标全是 '-'。"),
        (([], []), "空的输入：两个空列表。"),
        ((list("abcdefgh"), [(6, 8), (0, 1), (3, 5)]), "三个片段、长度 2/1/2、顺序打乱。"),
    ]

    def old_style(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
        inputs, targets = reference_glm_example(tokens, spans)
        n_a = targets.count(NO_TARGET) if spans else len(inputs)
        b_in, b_t = [], []
        for start, end in spans:
            b_in += [S] + tokens[start:end] + [E]
            b_t += tokens[start:end] + [E, NO_TARGET]
        return inputs[:n_a] + b_in, targets[:n_a] + b_t

    def sorted_b(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
        return reference_glm_example(tokens, sorted(spans))

    def a_in_given_order(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
        part_a, last = [], 0
        for start, end in spans:
            part_a += tokens[last:start] + [M]
            last = end
        part_a += tokens[last:]
        inputs, targets = reference_glm_example(tokens, spans)
        n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
        return part_a + inputs[n_a:], [NO_TARGET] * len(part_a) + targets[n_a:]

    def mask_per_token(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
        hidden = {i for s, e in spans for i in range(s, e)}
        part_a = [M if i in hidden else t for i, t in enumerate(tokens)]
        inputs, targets = reference_glm_example(tokens, spans)
        n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
        return part_a + inputs[n_a:], [NO_TARGET] * len(part_a) + targets[n_a:]

    def targets_equal_inputs(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
        inputs, targets = reference_glm_example(tokens, spans)
        n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
        return inputs, targets[:n_a] + inputs[n_a:]

    def a_targets(tokens: list[str], spans: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
        inputs, targets = reference_glm_example(tokens, spans)
        n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
        return inputs, inputs[1:n_a + 1] + targets[n_a:]

    mistakes = [
        (a_targets, "A 部分的位置没有目标（用 '-' 表示）：只在 B 部分预测。"),
        (old_style, "[E] 不是输入：它只出现在目标里（每段最后一个位置要预测 [E]）。"),
        (sorted_b, "B 部分要按 spans 给出的顺序排（GLM 打乱了片段的顺序），不要排序。"),
        (a_in_given_order, "A 部分是原文，[M] 要留在原文里的位置上：按位置从前往后处理 A 部分。"),
        (mask_per_token, "每个片段在 A 部分只留一个 [M]，不管片段里有几个词元。"),
        (targets_equal_inputs, "目标是“下一个词元”：[S] 处预测片段的第一个词元，片段最后一个词元处预测 [E]。"),
    ]
    return check_cases("glm_example（GLM 的输入和目标）", my_glm, reference_glm_example, cases,
                       ["输入 = A 部分（原文，每段换成一个 [M]）+ B 部分（每段前面加 [S]）；目标和输入一样长："
                        "A 部分没有目标（'-'），B 部分每个位置的目标是它后面那个词元，每段最后一个位置的目标是 [E]。",
                        "A 部分要按原文位置处理片段（可以对 spans 排序）；B 部分按 spans 原来的顺序；"
                        "一段的输入是 [S] + 片段，目标是 片段 + [E]，两者一样长。"],
                       normalise=normalise_pair_of_lists, mistakes=mistakes)


class ToyLayer:
    """A made-up one-layer model with a chosen attention mask: outputs[i] mixes the embeddings of the j it sees."""

    def __init__(self, mask: torch.Tensor, vocab: int = 50):
        self.mask = mask.float()
        gen = torch.Generator().manual_seed(7)
        self.embed = torch.randn(vocab, 6, generator=gen)
        self.mix = torch.rand(*mask.shape, generator=gen) + 0.5

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed[input_ids[0] % self.embed.size(0)]
        return ((self.mask * self.mix) @ x)[None]


def reference_visibility(forward: Callable[[torch.Tensor], torch.Tensor], input_ids: torch.Tensor) -> torch.Tensor:
    """[n, n] booleans: True where changing input token j changes output position i (measured, not assumed)."""
    with torch.no_grad():
        base = forward(input_ids)
        n = input_ids.size(1)
        seen = torch.zeros(n, n, dtype=torch.bool)
        for j in range(n):
            changed = input_ids.clone()
            changed[0, j] = changed[0, j] + 1
            out = forward(changed)
            seen[:, j] = (out - base).abs().amax(dim=-1)[0] > 1e-4
    return seen


def check_visibility(my_visibility: Callable[..., torch.Tensor], model: Any, tokenizer: Any) -> bool:
    """`visibility(forward, input_ids) -> Tensor [n, n]`: measure who sees whom by changing one input at a time."""
    n = 5
    window = torch.ones(n, n, dtype=torch.bool).tril() & ~torch.ones(n, n, dtype=torch.bool).tril(-2)
    boxes = [
        ("一个因果（GPT 式）的小模型", ToyLayer(reference_causal_mask(n)), "因果：第 i 个输出只受第 0..i 个输入影响。"),
        ("一个双向（BERT 式）的小模型", ToyLayer(torch.ones(n, n, dtype=torch.bool)), "双向：每个输出都受所有输入影响。"),
        ("一个前缀双向（GLM 式，前缀 3 个）的小模型", ToyLayer(reference_prefix_mask(n, 3)),
         "前缀部分互相看见，后面的是因果的：你的函数要测量，而不是假设是哪一种。"),
        ("一个只看自己和前一个词元的小模型", ToyLayer(window), "每个输出只受自己和前一个输入影响：测出来是什么就是什么。"),
    ]
    ids_small = torch.tensor([[3, 14, 15, 9, 26]])

    def body() -> int:
        for label, box, hint in boxes:
            expected = reference_visibility(box, ids_small)
            got = call(my_visibility, label, box, ids_small.clone())
            expect_mask(label + f"，input_ids={ids_small.tolist()}", got, expected, hint,
                        mistakes=[(expected.T, "行和列反了：第 i 行第 j 列表示“第 i 个输出能看见第 j 个输入”，"
                                               "改变第 j 个输入后，看哪些行（输出位置）变了。")])
        ids = prompt_tensor(tokenizer, "[CLS]今天天气真好")

        def gpt2_logits(input_ids: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(input_ids).logits

        got = call(my_visibility, "GPT2 替身模型的 logits", gpt2_logits, ids.clone())
        expect_mask("GPT2 替身模型的 logits，'[CLS]今天天气真好'", got, reference_causal_mask(ids.size(1)),
                    "真实的 GPT2 是因果的：第 i 个位置的 logits 只受第 0..i 个词元影响。")
        return len(boxes) + 1

    return verdict("visibility（测量谁能看见谁）", body,
                   ["一次只改一个输入词元（换成另一个编号），看哪些位置的输出变了：变了的位置能“看见”这个输入。",
                    "先算一遍原来的输出；对每个 j：复制 input_ids、把第 j 个编号改掉、再算一遍输出，"
                    "每一行比较两次输出的最大差（大于一个小阈值就算变了），结果写进第 j 列。"])


# ---------------------------------------------------------------------------------------------------
# Lab 08: the KV cache.
# ---------------------------------------------------------------------------------------------------


class CallRecorder:
    """Kept for compatibility: wraps a model and records (tokens fed, cache given) for every call."""

    def __init__(self, model: Any):
        self.model = model
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((fed_length(args, kwargs), cached_length(kwargs) > 0))
        return self.model(*args, **kwargs)

    forward = __call__

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def check_kv_cache_loop(my_loop: Callable[..., Any], model: Any, tokenizer: Any) -> bool:
    """`cached_greedy_loop(model, input_ids, steps) -> Tensor`: same tokens as model.generate, one new token a step.

    Every call is watched: the prompt once without a cache, then one new token per step with the cache
    (the `cache=` keyword of transformers 5 or the older `past_key_values=`; the model or its decoder stack).
    """
    cases = [("The capital of France is", 5), ("Once upon a time", 2), ("Hello", 1), ("Hello", 0)]

    def body() -> int:
        for text, steps in cases:
            ids = prompt_tensor(tokenizer, text)
            n = ids.size(1)
            case = f"{text!r}，steps={steps}"
            expected = reference_greedy(model, ids, steps)
            with quiet(), ModelCalls(model) as calls:
                got = call(my_loop, case, model, ids.clone(), steps)
            if calls.used_generate():
                raise Mismatch(case + " 的模型调用", "自己写的循环", calls.describe(), NO_GENERATE)
            want = [(n, 0)] + [(1, n + i) for i in range(steps - 1)] if steps else []
            got_calls = [(c.fed, c.cached) for c in calls.forwards]
            if got_calls != want:
                if len(got_calls) != len(want):
                    hint = f"每一步正好调用一次模型：{steps} 步就是 {steps} 次（最后一个词元选出来以后不用再送进模型）。"
                elif any(cached == 0 for _, cached in got_calls[1:]):
                    hint = "第一步之后要把上一步返回的缓存传回去（关键字 cache=，旧写法 past_key_values= 也可以）。"
                else:
                    hint = "有缓存时每步只送入 1 个新词元（形状 [1, 1]），不要再送入整个序列。"
                raise Mismatch(case + " 的每次模型调用",
                               "；".join(str(ModelCall("model", f, c)) for f, c in want) or "不调用模型",
                               calls.describe(), hint)
            expect_equal(case, as_id_list(got), expected,
                         "生成的词元要和不用缓存时完全一样：第一步送入整个提示词，之后每步只送入上一步选出的新词元，"
                         "并把上一步返回的缓存传回去。" if steps else "steps=0：原样返回 input_ids。")
        return len(cases)

    return verdict("cached_greedy_loop（带 KV 缓存的贪心循环）", body,
                   ["第一步送入整个提示词、不带缓存；以后每一步只送入上一步选出的那一个词元，同时把上一步返回的缓存传回去。",
                    "调用模型时加上 use_cache=True 和 cache=上一步的缓存（第一步是 None）；输出的 .cache 就是更新后的缓存。"
                    "用一个变量记住“这一步要送入的编号”。"])


def measured_cache_bytes(model: Any, seq_len: int) -> int:
    """Bytes of the keys and values the model really caches after reading `seq_len` tokens."""
    ids = torch.ones(1, seq_len, dtype=torch.long)
    with quiet(), torch.no_grad():
        cache = model(ids, use_cache=True).cache
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def reference_cache_bytes(config: Any, seq_len: int, bytes_per_value: int = 4) -> int:
    """2 (K and V) × layers × key/value heads × head_dim × tokens × bytes per number."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * seq_len * bytes_per_value


def check_kv_cache_size(my_size: Callable[..., int], model: Any) -> bool:
    """Retired exercise (lab 08 v1): `kv_cache_bytes(config, seq_len, bytes_per_value=4) -> int`."""
    from transformers import LlamaConfig

    small = LlamaConfig(hidden_size=256, num_attention_heads=8, num_key_value_heads=2, num_hidden_layers=4)
    hint = ["K 和 V 各存一份：2 × 层数 × KV 头数 × head_dim × 词元数 × 每个数的字节数。",
            "分组查询注意力 (GQA)：KV 头的个数是 config.num_key_value_heads。"]
    cases = [(model.config, 1, 4, "SmolLM2"), (model.config, 16, 4, "SmolLM2"), (model.config, 8192, 2, "SmolLM2"),
             (small, 100, 4, "一个小的 Llama 配置（8 个查询头，2 个 KV 头，4 层）")]

    def body() -> int:
        for config, seq_len, width, label in cases:
            case = f"{label}，seq_len={seq_len}，bytes_per_value={width}"
            expect_equal(case, call(my_size, case, config, seq_len, width), reference_cache_bytes(config, seq_len, width),
                         hint)
        case = "SmolLM2 读入 16 个词元后真实缓存的字节数"
        expect_equal(case, call(my_size, case, model.config, 16, 4), measured_cache_bytes(model, 16), hint)
        return len(cases) + 1

    return retired("kv_cache_bytes", lambda: verdict("kv_cache_bytes（KV 缓存有多大）", body, hint))


def reference_attend_one(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor,
                         v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One new query attends over the cached keys/values plus its own: (output [d], new k_cache, new v_cache)."""
    keys = torch.cat([k_cache, k[None]])
    values = torch.cat([v_cache, v[None]])
    weights = torch.softmax(keys @ q / math.sqrt(q.size(-1)), dim=-1)
    return weights @ values, keys, values


def normalise_attend(answer: Any, like: torch.Tensor) -> Any:
    """(out, k_cache, v_cache) with out of shape [1, d] accepted as [d]."""
    if isinstance(answer, (tuple, list)) and len(answer) == 3 and isinstance(answer[0], torch.Tensor):
        out = answer[0]
        if out.numel() == like.numel():
            out = out.reshape(like.shape)
        return (out, *answer[1:])
    return answer


def check_attend_one(my_attend: Callable[..., tuple], model: Any) -> bool:
    """`attend_one(q, k_cache, v_cache, k, v) -> (out, k_cache, v_cache)`: one step of attention with a KV cache.

    Checked on small inputs, on an empty cache, and on every head of SmolLM2's layer 0 for its last position,
    where the heads (through o_proj) must equal the model's own attention output.
    """
    gen = torch.Generator().manual_seed(3)
    d = 4
    kc, vc = torch.randn(3, d, generator=gen), torch.randn(3, d, generator=gen)
    q, k, v = (torch.randn(d, generator=gen) for _ in range(3))
    small = [
        ((q, kc, vc, k, v), "新词元的查询要和“缓存里的键 + 它自己的键”一起打分：先把新的 k、v 接到缓存后面。"),
        ((q, kc[:0], vc[:0], k, v), "缓存是空的（第一个词元）：它只能看见自己，输出就等于 v。"),
        ((q * 10, kc, vc, k, v), "分数较大时也要除以 sqrt(d)。"),
    ]

    def mistakes_for(q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> list:
        keys, values = torch.cat([kc, k[None]]), torch.cat([vc, v[None]])
        d = q.size(-1)
        found = [
            (torch.softmax(keys @ q, -1) @ values, "打分要除以 sqrt(d)。"),
            (torch.softmax(keys @ q / d, -1) @ values, "除以的是 sqrt(d)，不是 d。"),
        ]
        if len(kc):
            found.append((torch.softmax(kc @ q / math.sqrt(d), -1) @ vc, "新词元也要看见它自己：先把新的 k、v 接到缓存后面，再做注意力。"))
        return found

    def body() -> int:
        for args, hint in small:
            case = ", ".join(show(a) for a in args)
            got = normalise_attend(call(my_attend, case, *clone(args)), args[0])
            if not (isinstance(got, (tuple, list)) and len(got) == 3):
                raise Mismatch(case, "(out, k_cache, v_cache) 三个值", show(got), "要返回三个值：输出和更新后的两个缓存。")
            out, new_k, new_v = reference_attend_one(*args)
            expect_close(case + " 的输出 out", got[0], out, hint, mistakes=mistakes_for(*args))
            expect_close(case + " 返回的 k_cache", got[1], new_k,
                         "返回的缓存是旧缓存后面接上新的 k（形状 [t + 1, d]），新的一行在最后。",
                         mistakes=[(torch.cat([args[3][None], args[1]]), "新的一行要接在缓存的最后面，不是最前面。")])
            expect_close(case + " 返回的 v_cache", got[2], new_v, "返回的 v 缓存同样是旧缓存后面接上新的 v。")
        hq, hk, hv, expected = attention_inputs(model)
        group = hq.size(0) // hk.size(0)
        last = hq.size(1) - 1
        heads = []
        for h in range(hq.size(0)):
            kv = h // group
            case = f"SmolLM2 第 0 层第 {h} 个头，缓存里已有 {last} 个词元"
            got = normalise_attend(call(my_attend, case, hq[h, last].clone(), hk[kv, :last].clone(),
                                        hv[kv, :last].clone(), hk[kv, last].clone(), hv[kv, last].clone()), hq[h, last])
            if not (isinstance(got, (tuple, list)) and len(got) == 3):
                raise Mismatch(case, "(out, k_cache, v_cache) 三个值", show(got), "要返回三个值：输出和更新后的两个缓存。")
            heads.append(as_tensor(got[0], hq[h, last]))
        attn = model.model.layers[0].self_attn
        with torch.no_grad():
            out = attn.o_proj(torch.cat([torch.as_tensor(x).reshape(-1) for x in heads]))
        expect_close(f"SmolLM2 第 0 层最后一个位置：{hq.size(0)} 个头拼起来经过 o_proj", out, expected[last],
                     "和 SmolLM2 自己的注意力输出对不上：检查缩放和新键值有没有接进缓存。", atol=1e-4)
        return len(small) + 1

    return verdict("attend_one（用 KV 缓存算一个新词元的注意力）", body,
                   ["新词元只有一个查询向量 q；它要看的是缓存里所有旧词元的键值，再加上它自己的键值。"
                    "它是最后一个词元，所以不需要掩码。",
                    "先把 k、v 各加一维接到缓存后面（torch.cat），得到 [t + 1, d]；分数 = 键 @ q / sqrt(d)，"
                    "softmax 之后对值加权求和；返回输出和两个新缓存。"])
