"""Lab 10 checkers: answers written in different correct ways pass, plausible wrong ones fail, stubs are reported.

Each right answer is written the way a learner might write it, not copied from the reference.
"""

from __future__ import annotations

import ast
import io
import math
import re
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
import torch

from helpers import checks
from helpers import laptop_checks as lc

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------ exercise 1: model_bytes

MODEL_BYTES_RIGHT = [
    lambda n, bits: n * bits / 8,
    lambda n, bits: n * (bits / 8),
    lambda n, bits: torch.tensor(float(n)) * bits / 8,
    lambda n, bits: (n * bits) // 8 if (n * bits) % 8 == 0 else n * bits / 8,
]
MODEL_BYTES_WRONG = [
    lambda n, bits: n * bits,                 # bits, not bytes
    lambda n, bits: n * bits / 8 / 1e9,       # GB
    lambda n, bits: n * 4,                    # always float32
    lambda n, bits: n * bits / 8 / 2**20,     # MiB
    lambda n, bits: n * math.ceil(bits) / 8,  # rounds 4.5 bits up to 5
    lambda n, bits: n * bits / 16,            # 2 bytes per bit group
]

# ------------------------------------------------------------------------------ exercise 2: kv_cache_bytes

KV_RIGHT = [
    lambda layers, heads, dim, tokens, size: 2 * layers * heads * dim * tokens * size,
    lambda layers, heads, dim, tokens, size: layers * (heads * dim * size) * tokens * 2,
    lambda layers, heads, dim, tokens, size: sum(2 * heads * dim * size * tokens for _ in range(layers)),
]
KV_WRONG = [
    lambda l, h, d, t, b: l * h * d * t * b,          # K only
    lambda l, h, d, t, b: 2 * h * d * t * b,          # one layer
    lambda l, h, d, t, b: 2 * l * h * d * t * b * 8,  # bits
    lambda l, h, d, t, b: 2 * l * h * d * b,          # one token
    lambda l, h, d, t, b: 2 * l * d * t * b,          # one head
    lambda l, h, d, t, b: 2 * l * h * d * (t + 1) * b,  # off by one token
]

# ------------------------------------------------------------------------------ exercises 3 and 4: blocks


def quantize_reshape(x, block_size, bits):
    top = 2 ** (bits - 1) - 1
    blocks = x.reshape(-1, block_size)
    scales = blocks.abs().max(dim=1).values / top
    q = torch.round(blocks / scales.clamp(min=1e-12)[:, None])
    return q.to(torch.int8), scales


def quantize_loop(x, block_size, bits):
    top = 2 ** (bits - 1) - 1
    qs, scales = [], []
    for start in range(0, len(x), block_size):
        block = x[start:start + block_size].tolist()
        scale = max(abs(v) for v in block) / top
        scales.append(scale)
        qs += [round(v / scale) if scale else 0 for v in block]
    return torch.tensor(qs), torch.tensor(scales)


def quantize_where(x, block_size, bits):
    top = (1 << (bits - 1)) - 1
    blocks = x.view(len(x) // block_size, block_size)
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(amax > 0, amax / top, torch.ones_like(amax))
    q = torch.clamp(torch.round(blocks / scale), -top, top)
    return q.flatten(), torch.where(amax > 0, scale, torch.zeros_like(scale)).flatten()


QUANTIZE_RIGHT = [quantize_reshape, quantize_loop, quantize_where]


def quantize_per_tensor(x, block_size, bits):
    top = 2 ** (bits - 1) - 1
    scale = x.abs().max() / top
    return torch.round(x / scale), scale.repeat(len(x) // block_size)


def quantize_unsigned_range(x, block_size, bits):
    top = 2 ** bits - 1                       # 255 / 15: the unsigned range
    blocks = x.reshape(-1, block_size)
    scales = blocks.abs().amax(dim=1) / top
    return torch.round(blocks / scales.clamp(min=1e-12)[:, None]), scales


def quantize_off_by_one(x, block_size, bits):
    top = 2 ** (bits - 1)                     # 128 / 8: one too many
    blocks = x.reshape(-1, block_size)
    scales = blocks.abs().amax(dim=1) / top
    return torch.round(blocks / scales.clamp(min=1e-12)[:, None]), scales


def quantize_floor(x, block_size, bits):
    top = 2 ** (bits - 1) - 1
    blocks = x.reshape(-1, block_size)
    scales = blocks.abs().amax(dim=1) / top
    return torch.floor(blocks / scales.clamp(min=1e-12)[:, None]), scales


def quantize_no_zero_guard(x, block_size, bits):
    top = 2 ** (bits - 1) - 1
    blocks = x.reshape(-1, block_size)
    scales = blocks.abs().amax(dim=1) / top
    return torch.round(blocks / scales[:, None]), scales


def quantize_max_not_abs(x, block_size, bits):
    top = 2 ** (bits - 1) - 1
    blocks = x.reshape(-1, block_size)
    scales = blocks.amax(dim=1).clamp(min=1e-12) / top   # forgets the negative values
    return torch.round(blocks / scales[:, None]).clamp(-top, top), scales


def quantize_one_scale(x, block_size, bits):
    top = 2 ** (bits - 1) - 1
    scale = x.abs().max() / top
    return torch.round(x / scale), scale


QUANTIZE_WRONG = [quantize_per_tensor, quantize_unsigned_range, quantize_off_by_one, quantize_floor,
                  quantize_no_zero_guard, quantize_max_not_abs, quantize_one_scale]

DEQUANTIZE_RIGHT = [
    lambda q, scales, block_size: (q.float().reshape(-1, block_size) * scales.reshape(-1, 1)).flatten(),
    lambda q, scales, block_size: q.float().flatten() * scales.repeat_interleave(block_size),
    lambda q, scales, block_size: torch.cat([q.flatten()[i * block_size:(i + 1) * block_size].float() * s
                                             for i, s in enumerate(scales)]),
    lambda q, scales, block_size: q.reshape(-1, block_size).float() * scales[:, None],  # 2-D is fine
]
DEQUANTIZE_WRONG = [
    lambda q, scales, block_size: q.float().flatten() * scales.repeat(block_size),   # tiles instead of interleaves
    lambda q, scales, block_size: q.float().flatten() / scales.repeat_interleave(block_size),
    lambda q, scales, block_size: q.float().flatten() * scales[0],                  # one scale for all
    lambda q, scales, block_size: q.float().flatten(),                              # forgets the scale
    lambda q, scales, block_size: q.float().flatten() * scales.mean(),              # averaged scale
    lambda q, scales, block_size: (q.float() + 0.5).flatten() * scales.repeat_interleave(block_size),
]

# ------------------------------------------------------------------------------ exercise 5: bound

BOUND_RIGHT = [
    lambda bw, n, bits, kv=0: bw * 1e9 / (n * bits / 8 + kv),
    lambda bw, n, bits, kv=0: 1 / ((n * bits / 8 + kv) / (bw * 10**9)),
    lambda bw, n, bits, kv_cache_bytes=0: (bw * 1_000_000_000) / (n * (bits / 8) + kv_cache_bytes),
]
BOUND_WRONG = [
    lambda bw, n, bits, kv=0: bw * 1e9 / (n * bits + kv),          # bits
    lambda bw, n, bits, kv=0: bw * 2**30 / (n * bits / 8 + kv),    # GiB
    lambda bw, n, bits, kv=0: bw * 1e9 / (n * bits / 8),           # forgets the cache
    lambda bw, n, bits, kv=0: (n * bits / 8 + kv) / (bw * 1e9),    # seconds per token
    lambda bw, n, bits, kv=0: bw / (n * bits / 8 + kv),            # GB/s as bytes/s
    lambda bw, n, bits, kv=0: bw * 1e9 / (n * bits / 8 + 2 * kv),  # counts the cache twice
]

CHECKERS = [
    (lc.check_model_bytes, MODEL_BYTES_RIGHT, MODEL_BYTES_WRONG),
    (lc.check_kv_cache_bytes, KV_RIGHT, KV_WRONG),
    (lc.check_quantize_blocks, QUANTIZE_RIGHT, QUANTIZE_WRONG),
    (lc.check_dequantize_blocks, DEQUANTIZE_RIGHT, DEQUANTIZE_WRONG),
    (lc.check_tokens_per_s_bound, BOUND_RIGHT, BOUND_WRONG),
]
RIGHT = [(checker, fn) for checker, rights, _ in CHECKERS for fn in rights]
WRONG = [(checker, fn) for checker, _, wrongs in CHECKERS for fn in wrongs]


def name(value):
    return getattr(value, "__name__", "fn")


@pytest.mark.parametrize("checker, answer", RIGHT, ids=[f"{name(c)}-{i}" for i, (c, _) in enumerate(RIGHT)])
def test_right_answers_pass(checker, answer, capsys):
    assert checker(answer) is True
    assert capsys.readouterr().out.startswith("✅ 通过")


@pytest.mark.parametrize("checker, answer", WRONG, ids=[f"{name(c)}-{i}" for i, (c, _) in enumerate(WRONG)])
def test_wrong_answers_fail(checker, answer, capsys):
    assert checker(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ 没通过") and "期望 (expected)" in out and "提示 (hint) 1/" in out


@pytest.mark.parametrize("checker", [c for c, _, _ in CHECKERS], ids=name)
def test_stub_is_reported_as_not_implemented(checker, capsys):
    def stub(*args):
        raise NotImplementedError("练习 1：请在这里写你的代码")

    assert checker(stub) is False
    assert "还没有实现" in capsys.readouterr().out


@pytest.mark.parametrize("checker", [c for c, _, _ in CHECKERS], ids=name)
def test_a_crash_is_reported_with_its_line(checker, capsys):
    def crash(*args):
        return [][1]

    assert checker(crash) is False
    out = capsys.readouterr().out
    assert "IndexError" in out and "出错的位置" in out


def test_hints_name_the_mistake():
    """A known mistake gets its own hint first (bits vs bytes, K and V, per-tensor scale, repeat vs interleave)."""
    def first_hint(checker, answer):
        with redirect_stdout(io.StringIO()) as out:
            checker(answer)
        return next(line for line in out.getvalue().splitlines() if "提示 (hint) 1/" in line)

    assert "8 位" in first_hint(lc.check_model_bytes, MODEL_BYTES_WRONG[0])
    assert "乘 2" in first_hint(lc.check_kv_cache_bytes, KV_WRONG[0])
    assert "层数" in first_hint(lc.check_kv_cache_bytes, KV_WRONG[1])
    assert "每块" in first_hint(lc.check_quantize_blocks, quantize_per_tensor)
    assert "−127 … 127" in first_hint(lc.check_quantize_blocks, quantize_off_by_one)
    assert "nan" in first_hint(lc.check_quantize_blocks, quantize_no_zero_guard)
    assert "repeat_interleave" in first_hint(lc.check_dequantize_blocks, DEQUANTIZE_WRONG[0])
    assert "KV 缓存" in first_hint(lc.check_tokens_per_s_bound, BOUND_WRONG[2])
    assert "10⁹" in first_hint(lc.check_tokens_per_s_bound, BOUND_WRONG[1])


def test_no_checker_prints_the_reference_solution(capsys):
    """Failures show inputs, values and hints, never the reference code."""
    for checker, _, wrongs in CHECKERS:
        checker(wrongs[0])
    out = capsys.readouterr().out
    assert "def reference" not in out and "return " not in out


def test_reference_values():
    """The references themselves, against numbers worked out by hand."""
    assert lc.reference_model_bytes(134_515_008, 32) == 538_060_032
    assert lc.reference_kv_cache_bytes(30, 3, 64, 1, 4) == 46_080  # lesson 08: 45 KiB per token
    assert lc.reference_kv_cache_bytes(32, 8, 128, 1, 2) == 131_072  # Llama 3 8B: 128 KiB per token
    q, scales = lc.reference_quantize_blocks(torch.tensor([0.5, -1.0, 0.25, 0.1, 2.0, -0.3, 0.0, 1.2]), 4, 8)
    assert q.flatten().tolist() == [64, -127, 32, 13, 127, -19, 0, 76]
    assert torch.allclose(scales, torch.tensor([1 / 127, 2 / 127]))
    assert math.isclose(lc.reference_tokens_per_s_bound(50, 134_515_008, 32), 50e9 / 538_060_032)


CODE_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\(")  # reshape(, x.amax(, torch.where( ...: code, not an idea


def hint_levels(checker, answer) -> list[str]:
    """Every hint level a learner can ask for (with hint()) after `answer` failed `checker`."""
    with redirect_stdout(io.StringIO()):
        assert checker(answer) is False
    return list(checks.LAST.levels)


@pytest.mark.parametrize("checker, answer", WRONG, ids=[f"{name(c)}-{i}" for i, (c, _) in enumerate(WRONG)])
def test_hints_give_ideas_not_code(checker, answer):
    """No hint level spells out the answer as code (function calls such as reshape(...) or amax(...))."""
    for level in hint_levels(checker, answer):
        assert CODE_CALL.search(level) is None, level


def test_lab_hints_and_stub_docstrings_give_no_code_or_formula():
    """The lab's 💡 cells give ideas, not code; each stub's docstring says what it returns, not the formula."""
    lab = nbformat.read(ROOT / "labs" / "10_laptop.ipynb", as_version=4)
    hints = [cell.source for cell in lab.cells if cell.cell_type == "markdown" and "<summary>💡" in cell.source]
    assert len(hints) == 5
    for text in hints:
        assert CODE_CALL.search(re.sub(r"<[^>]+>", "", text)) is None, text
    stubs = [cell.source for cell in lab.cells if cell.cell_type == "code" and "NotImplementedError" in cell.source]
    assert len(stubs) == 5
    for source in stubs:
        function = next(node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef))
        docstring = ast.get_docstring(function)
        assert docstring and "返回" in docstring, function.name
        assert not set("×÷") & set(docstring), f"{function.name}: {docstring}"
