"""Checkers for lab 10 (running a model on a laptop): memory, KV cache, block quantisation, the speed bound.

They report through `helpers.checks` (one verdict line, graduated hints with `hint()`), like the other labs.
Every input is built here from plain numbers or a fixed random seed: no model has to be loaded.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .checks import LearnerError, Mismatch, as_levels, call, check_cases, clone, expect_close, show, verdict

GB = 1e9  # the course writes GB for 10⁹ bytes (GiB for 2³⁰), like memory-bandwidth figures do

# ---------------------------------------------------------------------------------------------------
# Comparing numbers
# ---------------------------------------------------------------------------------------------------


def as_number(value: Any) -> Any:
    """An int, a float, a one-element tensor or a numpy number -> float; anything else unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (int, float)) or (hasattr(value, "item") and type(value).__module__ == "numpy"):
        return float(value)
    return value


def expect_number(case: str, got: Any, expected: float, hint: Any,
                  mistakes: Sequence[tuple[Any, Any]] = ()) -> None:
    """`got` is a number within 1e-6 (relative) of `expected`; a known mistake's hint comes first."""
    got = as_number(got)
    if got is None:
        raise Mismatch(case, show(expected), "None", "函数没有返回任何东西：别忘了写 return。")
    if not isinstance(got, float):
        raise Mismatch(case, show(expected), f"{type(got).__name__}：{show(got)}",
                       ["请返回一个数（int 或 float）。"] + as_levels(hint))
    if math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
        return
    for wrong, wrong_hint in mistakes:
        wrong = as_number(wrong)
        if isinstance(wrong, float) and math.isclose(got, wrong, rel_tol=1e-6, abs_tol=1e-9):
            hint = as_levels(wrong_hint) + as_levels(hint)
            break
    ratio = f"（是期望值的 {got / expected:.4g} 倍）" if expected and math.isfinite(got) else ""
    raise Mismatch(case, f"{expected:,.6g}", f"{got:,.6g}{ratio}", hint)


# ---------------------------------------------------------------------------------------------------
# Exercise 1: memory of the weights
# ---------------------------------------------------------------------------------------------------


def reference_model_bytes(n_parameters: int, bits_per_parameter: float) -> float:
    """Bytes of the weights: parameters × bits per parameter / 8."""
    return n_parameters * bits_per_parameter / 8


def check_model_bytes(my_model_bytes: Callable[[int, float], float]) -> bool:
    """`model_bytes(n_parameters, bits_per_parameter) -> bytes`."""
    cases = [
        ((134_515_008, 32), "SmolLM2-135M 用 float32：每个参数 32 位。"),
        ((134_515_008, 16), "bfloat16 / float16 每个参数 16 位，内存正好是 float32 的一半。"),
        ((8_030_261_248, 16), "一个 8B 模型（Llama 3 8B 的参数个数）用 16 位。"),
        ((8_030_261_248, 4.5), "GGUF 的 Q4_0 平均每个参数 4.5 位：位数可以不是整数。"),
        ((7_000_000_000, 4), "7B 模型量化到 4 位。"),
        ((1_000, 8), "1000 个 8 位的参数。"),
    ]
    mistakes = [
        (lambda n, bits: n * bits, "得到的数是期望的 8 倍：bits_per_parameter 是位 (bit) 数，1 字节 (byte) = 8 位。"),
        (lambda n, bits: n * bits / 8 / GB, "要返回字节数，不是 GB：不要除以 10⁹。"),
        (lambda n, bits: n * bits / 8 / 2**30, "要返回字节数，不是 GiB：不要除以 2³⁰。"),
        (lambda n, bits: n * 4, "每个参数的字节数由 bits_per_parameter 决定，不总是 float32 的 4 字节。"),
        (lambda n, bits: n / (bits / 8), "参数越多、每个参数的位数越多，占的内存越多：两者相乘。"),
    ]
    return check_cases("model_bytes（权重占多少字节）", my_model_bytes, reference_model_bytes, cases,
                       ["内存 = 参数个数 × 每个参数的字节数；每个参数的字节数 = 位数 ÷ 8。",
                        "例如 float32 是 32 位 = 4 字节，4 位量化是 0.5 字节。"],
                       compare=expect_number, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------
# Exercise 2: the KV cache (lesson 08's formula)
# ---------------------------------------------------------------------------------------------------


def reference_kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: int, bytes_per_value: float) -> float:
    """2 (keys and values) × layers × key/value heads × head_dim × tokens × bytes per number."""
    return 2 * layers * kv_heads * head_dim * tokens * bytes_per_value


def check_kv_cache_bytes(my_kv_cache_bytes: Callable[..., float]) -> bool:
    """`kv_cache_bytes(layers, kv_heads, head_dim, tokens, bytes_per_value) -> bytes`."""
    cases = [
        ((30, 3, 64, 1000, 4), "SmolLM2：30 层、3 个键值头、每个头 64 维，float32。"),
        ((32, 8, 128, 8192, 2), "Llama 3 8B：32 层、8 个键值头、每个头 128 维，float16，8192 个词元。"),
        ((4, 6, 32, 100, 4), "GPT2 替身：4 层、6 个头、每个头 32 维。"),
        ((28, 4, 128, 32768, 2), "一个 28 层、4 个键值头的模型，32768 个词元。"),
        ((30, 3, 64, 0, 4), "还没有词元时缓存是空的：0 字节。"),
    ]
    mistakes = [
        (lambda l, h, d, t, b: l * h * d * t * b, "少了一半：键 (K) 和值 (V) 各存一份，要乘 2。"),
        (lambda l, h, d, t, b: 2 * h * d * t * b, "每一层都有自己的键和值：别忘了乘层数。"),
        (lambda l, h, d, t, b: 2 * l * h * d * t * b * 8, "bytes_per_value 已经是字节数，不要再乘 8。"),
        (lambda l, h, d, t, b: 2 * l * h * d * b, "缓存随词元数增长：每个词元都要存一份。"),
        (lambda l, h, d, t, b: 2 * l * d * t * b, "每个键值头都有自己的键和值：别忘了乘键值头数。"),
    ]
    return check_cases("kv_cache_bytes（KV 缓存占多少字节）", my_kv_cache_bytes, reference_kv_cache_bytes, cases,
                       ["第 08 课的公式：每个词元、每一层，存一个键向量和一个值向量，各有 键值头数 × 每个头的维度 个数。",
                        "把 2、层数、键值头数、每个头的维度、词元数、每个数的字节数全部乘起来。"],
                       compare=expect_number, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------
# Exercises 3 and 4: block quantisation (one scale per block) and back
# ---------------------------------------------------------------------------------------------------


def qmax(bits: int) -> int:
    """The largest integer of a symmetric signed range: 127 for 8 bits, 7 for 4 bits."""
    return 2 ** (bits - 1) - 1


def reference_quantize_blocks(x: torch.Tensor, block_size: int, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric block quantisation: per block, scale = max|x| / qmax and q = round(x / scale)."""
    blocks = x.float().reshape(-1, block_size)
    scales = blocks.abs().amax(dim=1) / qmax(bits)
    safe = torch.where(scales == 0, torch.ones_like(scales), scales)  # an all-zero block stays zero
    q = torch.round(blocks / safe[:, None]).clamp(-qmax(bits), qmax(bits))
    return q.to(torch.int8 if bits <= 8 else torch.int32), scales


def reference_dequantize_blocks(q: torch.Tensor, scales: torch.Tensor, block_size: int) -> torch.Tensor:
    """x ≈ q × the scale of its block, as a flat float tensor."""
    return (q.float().reshape(-1, block_size) * scales.float().reshape(-1, 1)).flatten()


def quantization_inputs() -> list[tuple[torch.Tensor, int, int, str]]:
    """(x, block_size, bits, hint) for both quantisation checkers; fixed numbers, no randomness left."""
    generator = torch.Generator().manual_seed(10)
    mixed = torch.randn(4, 16, generator=generator) * torch.tensor([[0.01], [1.0], [0.1], [5.0]])
    zero = torch.cat([torch.zeros(8), torch.randn(8, generator=generator)])
    return [
        (torch.tensor([0.5, -1.0, 0.25, 0.1, 2.0, -0.3, 0.0, 1.2]), 4, 8,
         "两个块各有自己的缩放系数：第一块 max|x| = 1.0，第二块 max|x| = 2.0。"),
        (mixed.flatten(), 16, 4,
         "四个块的数值大小相差很多（0.01 到 5）：每块单独算缩放系数，小数值的块才不会全变成 0。"),
        (zero, 8, 8, "全是 0 的块：max|x| = 0，不能除以 0；这一块的整数都是 0。"),
        (torch.randn(256, generator=generator), 32, 4, "4 位：整数范围是 −7 … 7。"),
        (torch.tensor([0.9, -0.2, 0.4, -1.0, 0.05, 0.6]), 3, 2, "2 位：整数只有 −1、0、1。"),
    ]


def expect_quantized(case: str, got: Any, x: torch.Tensor, block_size: int, bits: int, hint: str) -> None:
    """(q, scales): integers in [−qmax, qmax], one scale per block, and q × scale equal to the reference."""
    if got is None:
        raise Mismatch(case, "(q, scales)", "None", "函数没有返回任何东西：别忘了写 return q, scales。")
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise Mismatch(case, "(q, scales) 两个值", show(got), "返回两个值：整数 q 和每块的缩放系数 scales。")
    q, scales = (torch.as_tensor(v).detach().cpu() for v in got)
    n_blocks = x.numel() // block_size
    if q.numel() != x.numel():
        raise Mismatch(case, f"q 有 {x.numel()} 个数", f"q 有 {q.numel()} 个数", "每个 x 对应一个整数 q。")
    if scales.numel() != n_blocks:
        wrong = ["每块一个缩放系数：一共 len(x) // block_size 个。"]
        if scales.numel() == 1:
            wrong = ["整个向量只用了一个缩放系数：要每块 (block) 一个。"]
        raise Mismatch(case, f"scales 有 {n_blocks} 个数（每块一个）", f"scales 有 {scales.numel()} 个数", wrong + [hint])
    q = q.float().flatten()
    limit = qmax(bits)
    if torch.isnan(q).any() or torch.isinf(q).any():
        raise Mismatch(case, "q 全是整数", show(q), ["q 里出现了 nan 或 inf：全是 0 的块 max|x| = 0，除以 0 了。", hint])
    if not torch.equal(q, q.round()):
        raise Mismatch(case, "q 全是整数", show(q), ["q 要四舍五入成整数（torch.round）。", hint])
    if q.abs().max() > limit:
        raise Mismatch(case, f"q 在 −{limit} … {limit} 之间", f"q 的最大绝对值是 {int(q.abs().max())}",
                       [f"{bits} 位有符号整数的对称范围是 −(2^({bits}−1)−1) … 2^({bits}−1)−1，即 −{limit} … {limit}："
                        "缩放系数要用这个最大值来算。", hint])
    expected_q, expected_scales = reference_quantize_blocks(x, block_size, bits)
    back = reference_dequantize_blocks(q, scales.float(), block_size)
    expected = reference_dequantize_blocks(expected_q, expected_scales, block_size)
    per_tensor = x.abs().max() / limit
    mistakes = [(torch.round(x / per_tensor).clamp(-limit, limit) * per_tensor, "整个向量只用了一个缩放系数：要每块一个。")]
    expect_close(case + "，用你的 q × scales 还原", back, expected,
                 [hint, "每块：scale = 这一块的 max|x| ÷ " + str(limit) + "，q = x ÷ scale 再四舍五入。"],
                 atol=1e-6, mistakes=mistakes)


def check_quantize_blocks(my_quantize_blocks: Callable[[torch.Tensor, int, int], Any]) -> bool:
    """`quantize_blocks(x, block_size, bits) -> (q, scales)`: symmetric, one scale per block."""

    def body() -> int:
        inputs = quantization_inputs()
        for x, block_size, bits, hint in inputs:
            case = f"x = {show(x)}，block_size={block_size}，bits={bits}"
            try:
                got = call(my_quantize_blocks, case, *clone((x, block_size, bits)))
            except LearnerError as failure:
                failure.hint = hint
                raise
            expect_quantized(case, got, x, block_size, bits, hint)
        return len(inputs)

    return verdict("quantize_blocks（分块量化）", body,
                   ["每块单独算自己的缩放系数：这一块的最大绝对值 ÷ 整数范围的最大值。"
                    "把 x 排成每块一行的二维张量，就能一次算出所有块的缩放系数。",
                    "bits 位的对称整数范围是 −(2^(bits−1)−1) … 2^(bits−1)−1；x ÷ 缩放系数后四舍五入。",
                    "全是 0 的块缩放系数为 0，不能直接拿来除：除之前把这些 0 换成任意一个不为 0 的数"
                    "（这一块的 x 全是 0，商仍然是 0），这一块的 q 全是 0。"])


def check_dequantize_blocks(my_dequantize_blocks: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> bool:
    """`dequantize_blocks(q, scales, block_size) -> Tensor`: q × its block's scale, flat, float."""

    def body() -> int:
        inputs = quantization_inputs()
        for x, block_size, bits, hint in inputs:
            q, scales = reference_quantize_blocks(x, block_size, bits)
            case = f"q = {show(q.flatten())}，scales = {show(scales)}，block_size={block_size}"
            got = call(my_dequantize_blocks, case, q.clone(), scales.clone(), block_size)
            if isinstance(got, torch.Tensor) and got.numel() == x.numel():
                got = got.reshape(-1)
            tiled = (q.float().flatten() * scales.repeat(block_size)) if scales.numel() > 1 else None
            mistakes = [(q.float().flatten() / scales.repeat_interleave(block_size).clamp_min(1e-30),
                         "应该乘缩放系数，不是除。")]
            if tiled is not None:
                mistakes.append((tiled, "缩放系数被整个重复排列成了 [s0, s1, s0, s1, …]（repeat 的做法）；"
                                        "每个缩放系数要连续用 block_size 次：repeat_interleave，或者先把 q 排成每块一行再乘。"))
            expect_close(case, got, reference_dequantize_blocks(q, scales, block_size),
                         "第 i 块的每个整数都乘第 i 块的缩放系数。", atol=1e-6, mistakes=mistakes)
        return len(inputs)

    return verdict("dequantize_blocks（从整数还原）", body,
                   ["还原：x ≈ q × 它所在块的缩放系数，返回和 x 一样长的一维浮点张量。",
                    "把 q 排成每块一行的二维张量、把 scales 排成一列，相乘时每一行就会乘上自己那一块的缩放系数"
                    "（广播）；最后展平成一维。"])


# ---------------------------------------------------------------------------------------------------
# Exercise 5: the memory-bandwidth bound on decoding speed
# ---------------------------------------------------------------------------------------------------


def reference_tokens_per_s_bound(bandwidth_gb_s: float, n_parameters: int, bits_per_parameter: float,
                                 kv_cache_bytes: float = 0) -> float:
    """Each new token reads every weight (and the KV cache) once: bandwidth ÷ bytes read per token."""
    return bandwidth_gb_s * GB / (n_parameters * bits_per_parameter / 8 + kv_cache_bytes)


def check_tokens_per_s_bound(my_bound: Callable[..., float]) -> bool:
    """`tokens_per_s_bound(bandwidth_gb_s, n_parameters, bits_per_parameter, kv_cache_bytes=0) -> tokens/s`."""
    cases = [
        ((50, 134_515_008, 32, 0), "SmolLM2 float32，内存带宽 50 GB/s。"),
        ((50, 134_515_008, 16, 0), "同一个模型用 16 位：每个词元读的字节少一半，上限高一倍。"),
        ((100, 8_030_261_248, 4.5, 0), "8B 模型，Q4_0（4.5 位），带宽 100 GB/s。"),
        ((20, 7_000_000_000, 16, 1_000_000_000), "还要读 1 GB 的 KV 缓存：它也算在每个词元要读的字节里。"),
        ((60, 1_000_000_000, 8, 250_000_000), "1B 模型 8 位，外加 0.25 GB 的 KV 缓存。"),
    ]
    mistakes = [
        (lambda bw, n, bits, kv=0: bw * GB / (n * bits + kv), "每个参数的字节数 = 位数 ÷ 8。"),
        (lambda bw, n, bits, kv=0: bw * 2**30 / (n * bits / 8 + kv), "GB/s 里的 G 是 10⁹（内存带宽都这样标），不是 2³⁰。"),
        (lambda bw, n, bits, kv=0: bw * GB / (n * bits / 8), "每个新词元还要把整个 KV 缓存读一遍：把 kv_cache_bytes 加到字节数里。"),
        (lambda bw, n, bits, kv=0: (n * bits / 8 + kv) / (bw * GB), "算反了：这是生成一个词元要几秒；要的是每秒几个词元。"),
        (lambda bw, n, bits, kv=0: bw / (n * bits / 8 + kv), "带宽的单位是 GB/s：先乘 10⁹ 变成字节/秒。"),
    ]
    return check_cases("tokens_per_s_bound（内存带宽给出的速度上限）", my_bound, reference_tokens_per_s_bound, cases,
                       ["生成每个新词元，所有权重都要从内存读一遍：速度上限 = 每秒能读的字节数 ÷ 每个词元要读的字节数。",
                        "带宽的单位是 GB/s，先换算成每秒多少字节（1 GB = 10⁹ 字节）；每个词元要读的字节数就是练习 1 的"
                        "权重字节数，再加上 KV 缓存的字节数。"],
                       compare=expect_number, mistakes=mistakes)
