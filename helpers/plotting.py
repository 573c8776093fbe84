"""Pictures of what a model does: next-token probabilities, generation traces, attention, the decoder's data flow.

Every function returns a matplotlib Figure (a notebook shows it by leaving it as the cell's last value); none prints.
Labels are Chinese, so each function first calls `use_fonts()`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import partial

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import FancyBboxPatch, Rectangle
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .fonts import use_chinese_font
from .generation import Candidate, Generation, top_candidates
from .sampling import softmax
from .tokens import encode, is_byte_level, looks_byte_level, readable_token

COLOURS = {
    "input": "#f5f5f5",
    "embed": "#f4b6b6",
    "norm": "#c8e6c9",
    "attention": "#ffd8a8",
    "residual": "#ffffff",
    "feed_forward": "#bbdefb",
    "linear": "#e0e0e0",
    "softmax": "#a5d6a7",
}
CHOSEN = "#e8590c"
OTHER = "#4c8bd6"


def use_fonts() -> None:
    """Chinese labels (Noto Sans SC), with DejaVu Sans as fallback for symbols such as ↵ and ⟨ ⟩."""
    family = use_chinese_font()
    matplotlib.rcParams["font.family"] = [family, "DejaVu Sans"] if family else ["DejaVu Sans"]
    show_figures_in_notebooks()


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def show_figures_in_notebooks() -> None:
    """In Jupyter, show a Figure that is a cell's last value as a picture, whatever the backend (even Agg)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


def labels_of(tokens: list[str], byte_level: bool | None = None) -> list[str]:
    """Readable labels for a list of tokens, decided together (byte-level or not)."""
    if byte_level is None:
        byte_level = looks_byte_level(tokens)
    return [readable_token(token, byte_level) for token in tokens]


# --- next-token probabilities ---------------------------------------------------------------------------------


def as_candidates(
    source: torch.Tensor | list[Candidate], tokenizer: PreTrainedTokenizerBase | None, top: int
) -> list[Candidate]:
    """The `top` most probable candidates, from a probability vector (needs the tokenizer) or a candidate list."""
    if isinstance(source, torch.Tensor):
        if tokenizer is None:
            raise ValueError("传入概率向量时也要传入分词器 (tokenizer)。 (Pass the tokenizer with a probability vector.)")
        probs = source.detach().float().flatten().cpu()
        if probs.min() < 0 or abs(float(probs.sum()) - 1) > 1e-3:
            raise ValueError(
                "这看起来不是概率（应当都 >= 0 且加起来等于 1）：如果是 logits（未归一化的分数），先用 softmax 或 "
                "next_token_probs 转成概率。 (Expected probabilities; convert logits with softmax first.)"
            )
        return top_candidates(tokenizer, probs, top)
    candidates = list(source)[:top]
    if not candidates:
        raise ValueError("没有候选词元可画。 (No candidates to plot.)")
    return candidates


def plot_next_token_probs(
    source: torch.Tensor | list[Candidate],
    tokenizer: PreTrainedTokenizerBase | None = None,
    top: int = 10,
    title: str | None = None,
    chosen: int | None = None,
) -> Figure:
    """Bar chart of the most probable next tokens: `source` is a probability vector (with its tokenizer)
    or a list of Candidate(token, id, prob). The bar of token id `chosen` is drawn in orange."""
    use_fonts()
    candidates = as_candidates(source, tokenizer, top)
    byte_level = is_byte_level(tokenizer) if tokenizer is not None else None
    labels = labels_of([c.token for c in candidates], byte_level)
    probs = [c.prob for c in candidates]

    fig = Figure(figsize=(7, 0.42 * len(candidates) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(candidates))[::-1]
    colours = [CHOSEN if c.id == chosen else OTHER for c in candidates]
    ax.barh(y, probs, color=colours)
    ax.set_yticks(y, [f"{label}  (id {c.id})" for label, c in zip(labels, candidates)])
    for yi, p in zip(y, probs):
        ax.text(p, yi, f" {p:.3f}", va="center", fontsize=9)
    ax.set_xlim(0, min(1.0, max(probs) * 1.25 + 0.02))
    ax.set_xlabel("概率 (probability)")
    rest = max(0.0, 1.0 - sum(probs))
    ax.set_title(title or f"下一个词元的概率：前 {len(candidates)} 名（其余词元合计 {rest:.3f}）")
    return fig


def plot_temperatures(
    logits: torch.Tensor, tokenizer: PreTrainedTokenizerBase, temperatures: tuple[float, ...] = (0.5, 1.0, 2.0),
    top: int = 10,
) -> Figure:
    """The same scores turned into probabilities at several temperatures, for the `top` best tokens.

    Below 1 the distribution gets sharper (closer to greedy), above 1 flatter (more surprising picks).
    """
    use_fonts()
    logits = logits.detach().float().flatten().cpu()
    ids = torch.topk(logits, top).indices
    labels = labels_of(tokenizer.convert_ids_to_tokens(ids.tolist()), is_byte_level(tokenizer))
    fig = Figure(figsize=(4.3 * len(temperatures), 3.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(temperatures), sharey=True))
    for ax, temperature in zip(axes, temperatures):
        probs = softmax(logits, temperature)[ids]
        ax.bar(range(top), probs.numpy(), color=OTHER)
        ax.set_xticks(range(top), labels, rotation=90)
        ax.set_title(f"温度 T = {temperature:g}：第 1 名的概率 {float(probs[0]):.3f}")
    axes[0].set_ylabel("概率 (probability)")
    return fig


# --- generation traces ----------------------------------------------------------------------------------------


def draw_trace(fig: Figure | SubFigure, generation: Generation, title: str) -> None:
    """Draw one trace into `fig`: the chosen token's probability per step (top), the candidates per step (bottom)."""
    steps = generation.steps
    if not steps:
        raise ValueError("这次生成没有任何步骤可画（max_new_tokens=0？）。 (The generation has no steps.)")
    all_tokens = [s.token for s in steps] + [c.token for s in steps for c in s.top]
    byte_level = looks_byte_level(all_tokens)
    rank_count = max(len(s.top) for s in steps)
    bar_ax, grid_ax = fig.subplots(2, 1, height_ratios=[1, 1.6], sharex=True)

    x = np.arange(len(steps))
    picked_first = [bool(s.top) and s.top[0].id == s.id for s in steps]
    bar_ax.bar(x, [s.prob for s in steps], color=[OTHER if first else CHOSEN for first in picked_first])
    for xi, s in zip(x, steps):
        bar_ax.text(xi, s.prob, readable_token(s.token, byte_level), ha="center", va="bottom", fontsize=9)
    bar_ax.set_ylim(0, 1.18)
    bar_ax.set_ylabel("选中词元的概率")
    bar_ax.set_title(title)

    grid = np.full((rank_count, len(steps)), np.nan)
    for xi, s in enumerate(steps):
        for rank, c in enumerate(s.top):
            grid[rank, xi] = c.prob
            grid_ax.text(xi, rank, f"{readable_token(c.token, byte_level)}\n{c.prob:.2f}",
                         ha="center", va="center", fontsize=7.5, color="white" if c.prob > 0.6 else "black")
            if c.id == s.id:
                grid_ax.add_patch(Rectangle((xi - 0.5, rank - 0.5), 1, 1, fill=False, edgecolor=CHOSEN, linewidth=2))
    grid_ax.imshow(grid, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    grid_ax.set_yticks(range(rank_count), [f"第 {r + 1} 名" for r in range(rank_count)])
    grid_ax.set_xticks(x, [str(i) for i in x])
    grid_ax.set_xlabel("生成的第几步（方框 = 被选中的词元；橙色柱 = 没有选第 1 名）")


def trace_figure_width(steps: int) -> float:
    """Width in inches that keeps each step's column readable."""
    return min(22.0, max(6.0, 0.62 * steps + 1.8))


def plot_generation_trace(generation: Generation, title: str | None = None) -> Figure:
    """Per step: the chosen token and its probability, and the runner-up candidates with theirs."""
    use_fonts()
    fig = Figure(figsize=(trace_figure_width(len(generation.steps)), 5.2), layout="constrained")
    draw_trace(fig, generation, title or f"逐步生成的过程：{len(generation.steps)} 步")
    return fig


def plot_trace_comparison(
    greedy: Generation, sampled: Generation, titles: tuple[str, str] = ("贪心 (greedy)", "采样 (sampling)")
) -> Figure:
    """Two traces side by side, e.g. greedy decoding next to sampling for the same prompt."""
    use_fonts()
    steps = max(len(greedy.steps), len(sampled.steps))
    fig = Figure(figsize=(min(26.0, 2 * trace_figure_width(steps)), 5.4), layout="constrained")
    left, right = fig.subfigures(1, 2)
    draw_trace(left, greedy, titles[0])
    draw_trace(right, sampled, titles[1])
    return fig


# --- attention ------------------------------------------------------------------------------------------------


@torch.inference_mode()
def attention_weights(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, layer: int = 0
) -> tuple[list[str], torch.Tensor]:
    """Tokens of `text` and the attention weights of one layer, shape [heads, T, T] (row = the position looking).

    The fast attention kernels do not return weights, so the model runs once with the plain ("eager") one.
    """
    layers = model.config.num_hidden_layers
    if not -layers <= layer < layers:
        raise ValueError(f"layer 必须在 0 到 {layers - 1} 之间，收到 {layer}。 (layer out of range.)")
    ids = encode(tokenizer, text)
    if not ids:
        raise ValueError("文本为空：请输入至少一个字。 (The text is empty.)")
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        output = model(input_ids=torch.tensor([ids], device=model.device), output_attentions=True, use_cache=False)
    finally:
        model.set_attn_implementation(previous)
    return tokenizer.convert_ids_to_tokens(ids), output.attentions[layer][0].float().cpu()


def plot_attention(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, layer: int = 0, head: int = 0
) -> Figure:
    """Heatmap of one attention head: row i shows how much position i looks at each earlier position.

    The upper triangle (later positions) is grey: the causal mask hides the future from every token.
    """
    use_fonts()
    tokens, weights = attention_weights(model, tokenizer, text, layer)
    if not -weights.shape[0] <= head < weights.shape[0]:
        raise ValueError(f"head 必须在 0 到 {weights.shape[0] - 1} 之间，收到 {head}。 (head out of range.)")
    matrix = weights[head].numpy()
    size = len(tokens)
    future = np.triu(np.ones((size, size), dtype=bool), k=1)
    labels = labels_of(tokens, is_byte_level(tokenizer))

    side = min(11.0, max(4.5, 0.5 * size + 2.5))
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_array(matrix, future), cmap=cmap, vmin=0, vmax=1)
    if size <= 14:
        for i in range(size):
            for j in range(i + 1):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if matrix[i, j] > 0.6 else "white")
    ax.set_xticks(range(size), labels, rotation=90)
    ax.set_yticks(range(size), labels)
    ax.set_xlabel("被看的位置 (key)")
    ax.set_ylabel("正在计算的位置 (query)")
    ax.set_title(f"第 {layer} 层 · 第 {head} 个注意力头（灰色 = 因果掩码遮住的“未来”）")
    fig.colorbar(image, ax=ax, shrink=0.8, label="注意力权重（每行加起来等于 1）")
    return fig


# --- the decoder's data flow ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecoderParts:
    """The modules of a decoder-only model, named the way the Llama and GPT-2 code names them."""

    embed: nn.Module
    positions: nn.Module | None  # GPT-2 learns position vectors; Llama rotates q and k instead (RoPE)
    blocks: nn.ModuleList
    norm_1: str  # attribute names inside one block
    attention: str
    norm_2: str
    feed_forward: str
    final_norm: nn.Module
    lm_head: nn.Module


def decoder_parts(model: PreTrainedModel) -> DecoderParts:
    """Find the parts of a Llama-style (SmolLM2) or GPT-2-style model."""
    body = getattr(model, "model", None)
    if body is not None and hasattr(body, "layers"):
        return DecoderParts(body.embed_tokens, None, body.layers, "input_layernorm", "self_attn",
                            "post_attention_layernorm", "mlp", body.norm, model.lm_head)
    body = getattr(model, "transformer", None)
    if body is not None and hasattr(body, "h"):
        return DecoderParts(body.wte, body.wpe, body.h, "ln_1", "attn", "ln_2", "mlp", body.ln_f, model.lm_head)
    raise ValueError(
        f"不认识的模型结构 {type(model).__name__}：只支持 Llama（SmolLM2）和 GPT2。"
        f" (Unsupported model {type(model).__name__}: expected a Llama or GPT-2 causal LM.)"
    )


def _save_shape(shapes: dict[str, tuple[int, ...]], name: str, module: nn.Module, inputs, output) -> None:
    """Forward hook: remember the shape of a module's (first) output."""
    tensor = output[0] if isinstance(output, tuple) else output
    shapes[name] = tuple(tensor.shape)


@torch.inference_mode()
def record_shapes(model: PreTrainedModel, input_ids: list[int]) -> dict[str, tuple[int, ...]]:
    """Run the model once and record, with forward hooks, the output shape of every stage of the data flow."""
    parts = decoder_parts(model)
    first, last = parts.blocks[0], parts.blocks[-1]
    watched = {
        "embed": parts.embed,
        "positions": parts.positions,
        "norm_1": getattr(first, parts.norm_1),
        "attention": getattr(first, parts.attention),
        "norm_2": getattr(first, parts.norm_2),
        "feed_forward": getattr(first, parts.feed_forward),
        "block": first,
        "last_block": last,
        "final_norm": parts.final_norm,
        "lm_head": parts.lm_head,
    }
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(partial(_save_shape, shapes, n)) for n, m in watched.items() if m is not None]
    try:
        logits = model(input_ids=torch.tensor([input_ids], device=model.device), use_cache=False).logits
    finally:
        for hook in hooks:
            hook.remove()
    shapes["softmax"] = tuple(logits[0, -1].shape)
    return shapes


def linear_sizes(module: nn.Module) -> tuple[int, int]:
    """(inputs, outputs) of a Linear layer or of GPT-2's Conv1D (which stores its weight transposed)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    rows, cols = module.weight.shape
    return rows, cols


def count(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class DiagramBox:
    """One stage of the data flow: what it is, its sizes, the shape of its output."""

    kind: str  # a key of COLOURS
    label: str
    detail: str
    shape: tuple[int, ...] | None
    in_block: bool = False


def decoder_summary(
    model: PreTrainedModel, text: str | None = None, tokenizer: PreTrainedTokenizerBase | None = None
) -> list[DiagramBox]:
    """The stages of the decoder's data flow, from input ids to probabilities, read from the model object.

    With `text` (and its tokenizer) every stage also carries the real output shape, recorded with forward hooks.
    """
    if text is not None and tokenizer is None:
        raise ValueError("给了 text 就要同时给 tokenizer。 (Pass the tokenizer together with the text.)")
    parts = decoder_parts(model)
    config = model.config
    block = parts.blocks[0]
    vocab, hidden = parts.embed.num_embeddings, parts.embed.embedding_dim
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    norm = type(getattr(block, parts.norm_1)).__name__.removeprefix("Llama")
    ffn = getattr(block, parts.feed_forward)
    linears = [m for m in ffn.children() if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"]
    inner = linear_sizes(linears[0])[1]
    gated = hasattr(ffn, "gate_proj")
    activation = type(getattr(ffn, "act_fn", None) or getattr(ffn, "act")).__name__.replace("Activation", "")
    head_in, head_out = linear_sizes(parts.lm_head)
    tied = parts.lm_head.weight.data_ptr() == parts.embed.weight.data_ptr()

    shapes: dict[str, tuple[int, ...]] = {}
    if text is not None:
        ids = encode(tokenizer, text)
        if not ids:
            raise ValueError("文本为空：请输入至少一个字。 (The text is empty.)")
        shapes = record_shapes(model, ids)
        shapes["input"] = (1, len(ids))

    embed_detail = f"{vocab} 个词元 × {hidden} 维（{count(parts.embed) / 1e6:.1f}M 参数）"
    if parts.positions is not None:
        embed_detail += f"\n+ 位置嵌入 {parts.positions.num_embeddings} × {hidden}"
    position_note = "位置信息：RoPE 旋转 q、k" if parts.positions is None else "位置信息：已加在词嵌入上"
    gqa = f"，{kv_heads} 个 KV 头（分组查询注意力 GQA）" if kv_heads != heads else ""
    ffn_detail = f"{hidden} → {inner} → {hidden}，" + (f"SwiGLU：{activation}(gate)·up" if gated else activation)
    block_params = count(block) / 1e6
    return [
        DiagramBox("input", "输入：词元编号 (token ids)", "文本先被分词器切成词元", shapes.get("input")),
        DiagramBox("embed", "词嵌入 (Embedding)", embed_detail, shapes.get("embed")),
        DiagramBox("norm", f"{norm}（归一化）", f"{hidden} 维", shapes.get("norm_1"), True),
        DiagramBox("attention", "因果自注意力 (causal self-attention)",
                   f"{heads} 个头{gqa}，每头 {head_dim} 维\n{position_note}", shapes.get("attention"), True),
        DiagramBox("residual", "⊕ 残差相加 (residual)", "", None, True),
        DiagramBox("norm", f"{norm}（归一化）", f"{hidden} 维", shapes.get("norm_2"), True),
        DiagramBox("feed_forward", "前馈网络 (feed-forward)", ffn_detail, shapes.get("feed_forward"), True),
        DiagramBox("residual", "⊕ 残差相加 (residual)", f"每块 {block_params:.2f}M 参数", shapes.get("block"), True),
        DiagramBox("norm", f"最后的 {norm}", f"{hidden} 维", shapes.get("final_norm")),
        DiagramBox("linear", "Linear (lm_head)", f"{head_in} → {head_out}：给词表里每个词元打分"
                   + ("\n（与词嵌入共用同一份权重）" if tied else ""), shapes.get("lm_head")),
        DiagramBox("softmax", "softmax", "最后一个位置的分数 → 下一个词元的概率", shapes.get("softmax")),
    ]


def draw_decoder_diagram(
    model: PreTrainedModel, text: str | None = None, tokenizer: PreTrainedTokenizerBase | None = None
) -> Figure:
    """The decoder-only data flow of `model`, bottom to top, with sizes from the model and (given text) real shapes."""
    use_fonts()
    boxes = decoder_summary(model, text, tokenizer)
    parts = decoder_parts(model)
    step, height = 1.0, 0.72
    fig = Figure(figsize=(9.5, 0.82 * len(boxes) + 2.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.7, len(boxes) * step + 0.2)
    ax.axis("off")

    centres = [i * step for i in range(len(boxes))]
    for box, y in zip(boxes, centres):
        width = 1.6 if box.kind == "residual" else 4.6
        left = 3.2 - width / 2
        ax.add_patch(FancyBboxPatch((left, y - height / 2), width, height, boxstyle="round,pad=0.02,rounding_size=0.12",
                                    facecolor=COLOURS[box.kind], edgecolor="#555555", linewidth=1))
        if box.kind == "residual":
            ax.text(3.2, y, "⊕", ha="center", va="center", fontsize=16)
            ax.text(4.1, y, box.label.removeprefix("⊕ ") + ("\n" + box.detail if box.detail else ""),
                    ha="left", va="center", fontsize=8.5, color="#444444")
        else:
            ax.text(3.2, y + 0.13, box.label, ha="center", va="center", fontsize=10.5)
            ax.text(3.2, y - 0.17, box.detail, ha="center", va="center", fontsize=8, linespacing=1.1)
        if box.shape is not None:
            ax.text(9.9, y, str(list(box.shape)), ha="right", va="center", fontsize=9, family="monospace",
                    color="#1f3b73")
    for y0, y1 in zip(centres, centres[1:]):
        ax.annotate("", xy=(3.2, y1 - height / 2), xytext=(3.2, y0 + height / 2),
                    arrowprops=dict(arrowstyle="->", color="#333333"))

    # The residual connections: each sub-layer's input is added back to its output.
    inside = [i for i, box in enumerate(boxes) if box.in_block]
    for start, end in ((inside[0] - 1, inside[2]), (inside[2], inside[5])):
        y_start = centres[start] + height / 2 + 0.14
        ax.plot([3.2, 0.5, 0.5], [y_start, y_start, centres[end]], color="#888888", linewidth=1)
        ax.annotate("", xy=(3.2 - 0.8, centres[end]), xytext=(0.5, centres[end]),
                    arrowprops=dict(arrowstyle="->", color="#888888"))
    bottom, top = centres[inside[0]] - height / 2 - 0.12, centres[inside[-1]] + height / 2 + 0.12
    ax.add_patch(FancyBboxPatch((0.25, bottom), 6.0, top - bottom, boxstyle="round,pad=0.02", fill=False,
                                linestyle="--", edgecolor="#888888"))
    ax.text(6.4, (bottom + top) / 2, f"× {len(parts.blocks)}\n个解码器块\n(decoder block)", ha="left",
            va="center", fontsize=11, color="#555555")

    title = (f"{type(model).__name__}：{len(parts.blocks)} 个解码器块 · 隐藏维度 {parts.embed.embedding_dim} · "
             f"词表 {parts.embed.num_embeddings} · 共 {count(model) / 1e6:.1f}M 参数")
    ax.set_title(title, fontsize=11.5)
    if text is not None:
        ax.text(9.9, -0.62, f"右侧是输入 {text!r}（T = {boxes[0].shape[1]} 个词元）时各步输出的形状",
                ha="right", va="bottom", fontsize=8.5, color="#1f3b73")
    return fig


# --- the original Transformer, for comparison -----------------------------------------------------------------


def _sketch_box(ax, x: float, y: float, text: str, kind: str, faded: bool = False) -> None:
    """One labelled box of the Transformer sketch, centred at (x, y)."""
    ax.add_patch(FancyBboxPatch((x - 1.45, y - 0.3), 2.9, 0.6, boxstyle="round,pad=0.02,rounding_size=0.1",
                                facecolor=COLOURS[kind], edgecolor="#555555", linestyle="--" if faded else "-",
                                alpha=0.45 if faded else 1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=9, color="#777777" if faded else "black")


def draw_transformer_sketch() -> Figure:
    """The original Transformer (2017) as two stacks: the encoder (left) and the decoder (right).

    The decoder's cross-attention is drawn faded: decoder-only models (GPT, Llama, SmolLM2) drop it together with
    the whole encoder.
    """
    use_fonts()
    fig = Figure(figsize=(10, 6.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.9, 8.2)
    ax.axis("off")
    enc, dec = 2.3, 7.2
    encoder = [(0.4, "输入：原文的词元", "input"), (1.2, "词嵌入 + 位置编码", "embed"),
               (2.1, "自注意力（双向：看全句）", "attention"), (2.9, "相加 & 归一化", "norm"),
               (3.7, "前馈网络", "feed_forward"), (4.5, "相加 & 归一化", "norm")]
    decoder = [(0.4, "输入：已经写出的词元", "input"), (1.2, "词嵌入 + 位置编码", "embed"),
               (2.1, "带掩码的自注意力（因果）", "attention"), (2.9, "相加 & 归一化", "norm"),
               (3.7, "交叉注意力（看编码器）", "attention"), (4.5, "相加 & 归一化", "norm"),
               (5.3, "前馈网络", "feed_forward"), (6.1, "相加 & 归一化", "norm"),
               (6.9, "Linear → softmax", "linear")]
    for x, boxes in ((enc, encoder), (dec, decoder)):
        for (y0, _, _), (y1, _, _) in zip(boxes, boxes[1:]):
            ax.annotate("", xy=(x, y1 - 0.3), xytext=(x, y0 + 0.3), arrowprops=dict(arrowstyle="->", color="#333333"))
        for y, text, kind in boxes:
            _sketch_box(ax, x, y, text, kind, faded=x == dec and y in (3.7, 4.5))  # cross-attention and its norm
    ax.add_patch(FancyBboxPatch((enc - 1.7, 1.7), 3.4, 3.2, boxstyle="round,pad=0.02", fill=False,
                                linestyle="--", edgecolor="#888888"))
    ax.add_patch(FancyBboxPatch((dec - 1.7, 1.7), 3.4, 4.8, boxstyle="round,pad=0.02", fill=False,
                                linestyle="--", edgecolor="#888888"))
    ax.text(enc + 1.8, 3.3, "× N", fontsize=11, color="#555555", va="center")
    ax.text(dec + 1.8, 4.1, "× N", fontsize=11, color="#555555", va="center")
    ax.annotate("", xy=(dec - 1.45, 3.7), xytext=(enc + 1.45, 4.5),
                arrowprops=dict(arrowstyle="->", color="#888888", linestyle="--", connectionstyle="arc3,rad=-0.2"))
    ax.text(4.75, 4.55, "原文的表示", ha="center", fontsize=8.5, color="#777777")
    ax.text(enc, 5.35, "编码器 (encoder)\nBERT 只用这一半", ha="center", va="bottom", fontsize=11)
    ax.text(dec, 8.1, "解码器 (decoder)\nGPT、Llama、SmolLM2 只用这一半（去掉虚线部分）", ha="center", va="top",
            fontsize=10.5)
    ax.text(5, -0.75, "原始 Transformer（2017，用于机器翻译）：左边读懂原文，右边一个词元一个词元地写出译文",
            ha="center", fontsize=9.5, color="#444444")
    return fig
