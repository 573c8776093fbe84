"""Generation speed: the seed's naive loop, the KV-cached loop and `model.generate`, side by side.

    .venv/bin/python -m benchmarks.generation                       # both models, 50/200/500 new tokens
    .venv/bin/python -m benchmarks.generation --models gpt2-chinese --lengths 50 200 --repeats 5
    .venv/bin/python -m benchmarks.generation --json                # {"runs": [...]} for scripts
    .venv/bin/python -m benchmarks.generation --threads 1           # steadier when other jobs share the CPU
    .venv/bin/python -m benchmarks.generation --threads 1 --cpu-time --methods cached generate   # busy machine

Methods, all greedy, all on the same model, prompt and number of new tokens:
  naive     helpers.generation.generate(use_cache=False): the whole sequence is fed again at every step
  cached    helpers.generation.generate(use_cache=True): only the new token is fed, keys/values are kept
  generate  model.generate(do_sample=False, min_new_tokens=max_new_tokens, eos_token_id=None)
The three must produce identical token ids, otherwise the benchmark stops with an error.

Timing: one short warm-up run per method (not counted), then `repeats` rounds in which the methods take
turns (so that load from other programs hits all of them alike); the median time is reported as
new tokens per second (prompt processing included).
Memory: `peak_rss_mb` is the peak resident memory of this process while that method ran (model weights
included). On Linux the peak is reset before each run (/proc/self/clear_refs, then VmHWM is read);
elsewhere it falls back to `ru_maxrss`, the peak over the whole process lifetime.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

# Benchmarks use only the models that ship with the course (set before transformers is imported).
os.environ.setdefault("LLM_COURSE_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import PreTrainedModel, PreTrainedTokenizerBase  # noqa: E402

from helpers.generation import context_length, generate  # noqa: E402
from helpers.tokens import encode  # noqa: E402

PROMPTS = {"gpt2-chinese": "[CLS]今天天气真", "gpt2-chinese-chat": "[CLS]今天天气真", "smollm2": "Once upon a time"}
DEFAULT_MODELS = ("gpt2-chinese", "smollm2")
DEFAULT_LENGTHS = (50, 200, 500)
WARMUP_TOKENS = 5

Method = Callable[[PreTrainedModel, PreTrainedTokenizerBase, str, int], list[int]]


def run_naive(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, new_tokens: int) -> list[int]:
    """The seed's loop: feed the whole sequence at every step."""
    return generate(model, tokenizer, prompt, new_tokens, use_cache=False).new_ids


def run_cached(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, new_tokens: int) -> list[int]:
    """The course's KV-cached loop: feed only the new token at every step."""
    return generate(model, tokenizer, prompt, new_tokens, use_cache=True).new_ids


@torch.inference_mode()
def run_hf_generate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, new_tokens: int
) -> list[int]:
    """transformers' own greedy loop, forced to produce exactly `new_tokens` tokens (no stop at EOS)."""
    ids = torch.tensor([encode(tokenizer, prompt)], device=model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    output = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new_tokens,
        min_new_tokens=new_tokens, eos_token_id=None, pad_token_id=pad,
    )
    return output[0, ids.shape[1]:].tolist()


METHODS: dict[str, Method] = {"naive": run_naive, "cached": run_cached, "generate": run_hf_generate}


@dataclass(frozen=True)
class Run:
    """One line of the results: a method on a model at one length."""

    model: str
    new_tokens: int
    method: str
    tokens_per_s: float
    peak_rss_mb: float


class IdsMismatch(RuntimeError):
    """The methods did not produce the same tokens: their timings would not be comparable."""


def reset_peak_rss() -> bool:
    """Free what can be freed and reset the process's peak RSS (Linux only); True when it was reset."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: VmHWM on Linux, else ru_maxrss (lifetime peak)."""
    try:
        match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if match:
            return int(match.group(1)) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KiB on Linux


def check_same_ids(model_name: str, new_tokens: int, ids: dict[str, list[int]]) -> None:
    """Raise IdsMismatch unless every method produced the same token ids."""
    reference_name, reference = next(iter(ids.items()))
    for name, other in ids.items():
        if other != reference:
            differs = (i for i, (a, b) in enumerate(zip(reference, other)) if a != b)
            first = next(differs, min(len(reference), len(other)))
            raise IdsMismatch(
                f"{model_name}，{new_tokens} 个新词元：{name} 与 {reference_name} 生成的词元不同（第 {first} 个起）。"
                f"计时不可比较，请检查生成循环。 ({name} and {reference_name} produced different ids from position"
                f" {first}; the timings are not comparable.)"
            )


def time_methods(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    model_name: str,
    prompt: str,
    new_tokens: int,
    repeats: int = 3,
    methods: dict[str, Method] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Run]:
    """Time each method `repeats` times (after a warm-up), check they agree, return one Run per method.

    `clock` is wall-clock time by default; `time.process_time` counts only this process's CPU time, which other
    programs on a busy machine disturb much less (with one PyTorch thread it equals the wall time of an idle machine).
    """
    if repeats < 1:
        raise ValueError(f"repeats 必须 >= 1，收到 {repeats}。 (repeats must be >= 1.)")
    methods = methods or METHODS
    for method in methods.values():
        method(model, tokenizer, prompt, min(new_tokens, WARMUP_TOKENS))
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    peaks: dict[str, float] = {name: 0.0 for name in methods}
    ids: dict[str, list[int]] = {}
    for _ in range(repeats):
        for name, method in methods.items():
            reset_peak_rss()
            start = clock()
            new_ids = method(model, tokenizer, prompt, new_tokens)
            seconds[name].append(clock() - start)
            peaks[name] = max(peaks[name], peak_rss_mb())
            if len(new_ids) != new_tokens:
                raise IdsMismatch(
                    f"{name} 只生成了 {len(new_ids)} 个词元。 ({name} produced {len(new_ids)} ids, not {new_tokens}.)"
                )
            ids.setdefault(name, new_ids)
            check_same_ids(model_name, new_tokens, {name: ids[name], f"{name} (repeat)": new_ids})
        check_same_ids(model_name, new_tokens, ids)  # after the first round already: fail early
    return [
        Run(model_name, new_tokens, name, tokens_per_s=round(new_tokens / statistics.median(seconds[name]), 2),
            peak_rss_mb=round(peaks[name], 1))
        for name in methods
    ]


def fits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, new_tokens: int) -> bool:
    """True when prompt + new tokens fit in the model's context (no truncation, no position overflow)."""
    return len(encode(tokenizer, prompt)) + new_tokens <= context_length(model)


def benchmark(model_names: list[str], lengths: list[int], repeats: int, log=print,
              methods: dict[str, Method] | None = None, clock: Callable[[], float] = time.perf_counter) -> list[Run]:
    """Load each model and time the three methods at each length that fits its context."""
    from helpers.loading import load_model

    runs: list[Run] = []
    for name in model_names:
        model, tokenizer = load_model(name, quiet=True)
        log(f"{name}: {model.course_source.location}")
        prompt = PROMPTS.get(name, "[CLS]今天天气真")
        for new_tokens in lengths:
            if not fits(model, tokenizer, prompt, new_tokens):
                log(f"{name}: 跳过 {new_tokens}（超出上下文 {context_length(model)}）。 (skipped: beyond the context)")
                continue
            start = time.perf_counter()
            runs += time_methods(model, tokenizer, name, prompt, new_tokens, repeats, methods, clock)
            log(f"{name}: {new_tokens} 个新词元测完，用时 {time.perf_counter() - start:.0f} s")
        del model
    return runs


def machine() -> dict[str, object]:
    """What the numbers were taken on."""
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def ratio(runs: list[Run], model: str, new_tokens: int, top: str, bottom: str) -> float | None:
    """tokens/s of method `top` divided by that of `bottom` (None when one is missing)."""
    speed = {r.method: r.tokens_per_s for r in runs if r.model == model and r.new_tokens == new_tokens}
    return speed[top] / speed[bottom] if top in speed and bottom in speed else None


def format_table(runs: list[Run]) -> str:
    """Human-readable table, then the ratios cached/generate and cached/naive per model and length."""
    lines = [f"{'model':<14}{'new':>5}  {'method':<9}{'tokens/s':>10}{'ms/token':>10}{'peak RSS MiB':>14}"]
    for r in runs:
        lines.append(f"{r.model:<14}{r.new_tokens:>5}  {r.method:<9}{r.tokens_per_s:>10.1f}"
                     f"{1000 / r.tokens_per_s:>10.2f}{r.peak_rss_mb:>14.1f}")
    lines += ["", f"{'model':<14}{'new':>5}{'cached/generate':>17}{'cached/naive':>14}"]
    for model, new_tokens in dict.fromkeys((r.model, r.new_tokens) for r in runs):
        vs_generate = ratio(runs, model, new_tokens, "cached", "generate")
        vs_naive = ratio(runs, model, new_tokens, "cached", "naive")
        show = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
        lines.append(f"{model:<14}{new_tokens:>5}{show(vs_generate):>17}{show(vs_naive):>14}")
    return "\n".join(lines)


def to_json(runs: list[Run], repeats: int) -> str:
    """The results as JSON: {"runs": [{"model", "new_tokens", "method", "tokens_per_s", "peak_rss_mb"}, ...]}."""
    return json.dumps({"runs": [asdict(r) for r in runs], "repeats": repeats, "machine": machine()},
                      ensure_ascii=False, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--lengths", nargs="+", type=int, default=list(DEFAULT_LENGTHS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch CPU threads (default: PyTorch's choice; 1 is steadier on a busy machine)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="which methods to time (default: all three)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with this process's CPU time (time.process_time) instead of the wall clock:"
                             " steadier on a shared machine; use it with --threads 1")
    parser.add_argument("--json", action="store_true", help='print {"runs": [...]} instead of a table')
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    log = (lambda message: print(message, file=sys.stderr, flush=True)) if args.json else print
    clock = time.process_time if args.cpu_time else time.perf_counter
    runs = benchmark(args.models, args.lengths, args.repeats, log=log,
                     methods={name: METHODS[name] for name in args.methods}, clock=clock)
    if args.json:
        print(to_json(runs, args.repeats))
    else:
        print(format_table(runs))
        print(f"\nmedian of {args.repeats} repeats, {'CPU' if args.cpu_time else 'wall-clock'} time;"
              f" machine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
