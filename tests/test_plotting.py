"""The figures: what they draw must be the model's real numbers, and every glyph must be in the fonts."""

import io
import math
import warnings

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from helpers.generation import generate
from helpers.plotting import (
    CHOSEN,
    attention_weights,
    decoder_parts,
    decoder_summary,
    draw_decoder_diagram,
    is_byte_level,
    plot_attention,
    plot_generation_trace,
    plot_next_token_probs,
    plot_temperatures,
    plot_trace_comparison,
    record_shapes,
    show_figures_in_notebooks,
)
from helpers.sampling import softmax
from helpers.tokens import encode

PROMPT = "[CLS]今天天气真"


def render_png(fig: Figure, caplog=None) -> bytes:
    """Render to PNG (Agg); fail on any missing glyph or font fallback message."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buffer, format="png", dpi=60)
    problems = [str(w.message) for w in caught if "missing from font" in str(w.message) or "Glyph" in str(w.message)]
    assert not problems, problems
    if caplog is not None:
        assert not [r.message for r in caplog.records if "findfont" in r.getMessage()]
    data = buffer.getvalue()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
    return data


def all_texts(fig: Figure) -> list[str]:
    """Every text drawn in a figure (titles, labels, tick labels, annotations)."""
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def last_probs(model, tokenizer, text):
    ids = torch.tensor([encode(tokenizer, text)])
    with torch.no_grad():
        return softmax(model(ids).logits[0, -1])


# --- next-token probabilities ---------------------------------------------------------------------------------


def test_next_token_bars_are_the_top_probabilities(tiny_gpt2, caplog):
    model, tokenizer = tiny_gpt2
    probs = last_probs(model, tokenizer, PROMPT)
    values, ids = torch.topk(probs, 10)
    fig = plot_next_token_probs(probs, tokenizer, top=10, chosen=int(ids[2]))
    ax = fig.axes[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert np.allclose(widths, values.numpy(), atol=1e-6)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    assert labels == [f"{tok}  (id {i})" for tok, i in zip(tokens, ids.tolist())]
    assert to_hex(ax.patches[2].get_facecolor()) == CHOSEN
    assert f"{1 - float(values.sum()):.3f}" in ax.get_title()
    render_png(fig, caplog)


def test_next_token_bars_from_candidates_of_a_generation(smollm2, caplog):
    model, tokenizer = smollm2
    step = generate(model, tokenizer, "你好", 1, top_n=6).steps[0]
    fig = plot_next_token_probs(step.top, title="候选")
    assert [bar.get_width() for bar in fig.axes[0].patches] == [c.prob for c in step.top]
    render_png(fig, caplog)  # byte pieces such as ⟨e4 bd⟩ must render too


def test_next_token_bars_reject_logits_and_a_missing_tokenizer(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    logits = model(torch.tensor([encode(tokenizer, PROMPT)])).logits[0, -1].detach()
    with pytest.raises(ValueError, match="softmax"):
        plot_next_token_probs(logits, tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        plot_next_token_probs(softmax(logits))


def test_temperature_panels_show_sharper_and_flatter_distributions(smollm2, caplog):
    model, tokenizer = smollm2
    logits = model(torch.tensor([encode(tokenizer, "The capital of France is")])).logits[0, -1].detach()
    fig = plot_temperatures(logits, tokenizer, (0.5, 1.0, 2.0), top=6)
    firsts = []
    for ax, temperature in zip(fig.axes, (0.5, 1.0, 2.0)):
        heights = [bar.get_height() for bar in ax.patches]
        expected = torch.topk(softmax(logits, temperature), 6).values.tolist()
        assert heights == pytest.approx(expected, abs=1e-6)
        firsts.append(heights[0])
    assert firsts[0] > firsts[1] > firsts[2]  # lower temperature, more confident
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][0] == "␣Paris"
    render_png(fig, caplog)


# --- generation traces ----------------------------------------------------------------------------------------


def test_generation_trace_shows_each_steps_choice_and_candidates(tiny_gpt2, caplog):
    model, tokenizer = tiny_gpt2
    generation = generate(model, tokenizer, PROMPT, 6, temperature=1.5, seed=3, top_n=4)
    fig = plot_generation_trace(generation)
    bar_ax, grid_ax = fig.axes[:2]
    assert [b.get_height() for b in bar_ax.patches] == pytest.approx([s.prob for s in generation.steps])
    grid = grid_ax.images[0].get_array()
    expected = np.array([[c.prob for c in s.top] for s in generation.steps]).T
    assert np.allclose(grid, expected)
    outlined = len(grid_ax.patches)
    assert outlined == sum(any(c.id == s.id for c in s.top) for s in generation.steps)
    texts = all_texts(fig)
    for step in generation.steps:
        assert step.token in texts  # the chosen token is written above its bar
    render_png(fig, caplog)


def test_greedy_trace_always_outlines_the_first_row(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    generation = generate(model, tokenizer, PROMPT, 5)
    grid_ax = plot_generation_trace(generation).axes[1]
    assert [p.get_xy() for p in grid_ax.patches] == [(i - 0.5, -0.5) for i in range(5)]


def test_trace_comparison_has_both_traces_side_by_side(smollm2, caplog):
    model, tokenizer = smollm2
    greedy = generate(model, tokenizer, "The sky is", 5)
    sampled = generate(model, tokenizer, "The sky is", 5, temperature=1.0, seed=0)
    fig = plot_trace_comparison(greedy, sampled)
    assert len(fig.subfigs) == 2
    titles = [fig.subfigs[i].axes[0].get_title() for i in range(2)]
    assert titles == ["贪心 (greedy)", "采样 (sampling)"]
    left_bars = [b.get_height() for b in fig.subfigs[0].axes[0].patches]
    assert left_bars == pytest.approx([s.prob for s in greedy.steps])
    render_png(fig, caplog)


def test_trace_of_nothing_is_an_error(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    with pytest.raises(ValueError, match="max_new_tokens"):
        plot_generation_trace(generate(model, tokenizer, PROMPT, 0))


# --- attention ------------------------------------------------------------------------------------------------


def test_attention_weights_are_causal_softmax_rows(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    before = model.config._attn_implementation
    tokens, weights = attention_weights(model, tokenizer, PROMPT, layer=1)
    assert model.config._attn_implementation == before
    size = len(tokens)
    assert tokens == ["[CLS]", "今", "天", "天", "气", "真"]
    assert weights.shape == (2, size, size)
    assert torch.allclose(weights.sum(-1), torch.ones(2, size), atol=1e-5)
    assert torch.all(weights.triu(diagonal=1) == 0)
    assert weights[:, 0, 0].tolist() == pytest.approx([1.0, 1.0])  # the first token can only see itself


def test_attention_weights_match_a_recomputation_by_hand(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    ids = torch.tensor([encode(tokenizer, PROMPT)])
    _, weights = attention_weights(model, tokenizer, PROMPT, layer=0)
    block, heads = model.transformer.h[0], model.config.n_head
    with torch.no_grad():
        x = block.ln_1(model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.shape[1])))
        q, k, _ = block.attn.c_attn(x).split(model.config.n_embd, dim=-1)
        q = q.view(1, -1, heads, 32 // heads).transpose(1, 2)
        k = k.view(1, -1, heads, 32 // heads).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(32 // heads)
        causal = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).tril()
        by_hand = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)[0]
    assert torch.allclose(weights, by_hand, atol=1e-5)


def test_attention_switch_to_eager_is_undone(smollm2):
    model, tokenizer = smollm2
    before = model.config._attn_implementation
    tokens, weights = attention_weights(model, tokenizer, "The cat sat", layer=29)
    assert model.config._attn_implementation == before
    assert weights.shape == (9, len(tokens), len(tokens))  # 9 query heads


def test_attention_heatmap_greys_out_the_future(smollm2, caplog):
    model, tokenizer = smollm2
    fig = plot_attention(model, tokenizer, "The cat sat on the mat", layer=2, head=4)
    data = fig.axes[0].images[0].get_array()
    size = data.shape[0]
    assert np.array_equal(np.ma.getmaskarray(data), np.triu(np.ones((size, size), dtype=bool), k=1))
    _, weights = attention_weights(model, tokenizer, "The cat sat on the mat", layer=2)
    assert np.allclose(data.filled(0), weights[4].numpy(), atol=1e-6)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][:2] == ["The", "␣cat"]
    render_png(fig, caplog)


def test_attention_rejects_a_bad_layer_or_head(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    with pytest.raises(ValueError, match="layer"):
        attention_weights(model, tokenizer, PROMPT, layer=2)
    with pytest.raises(ValueError, match="head"):
        plot_attention(model, tokenizer, PROMPT, layer=0, head=2)


# --- the decoder diagram --------------------------------------------------------------------------------------


def test_decoder_summary_of_smollm2_reads_the_real_sizes_and_shapes(smollm2):
    model, tokenizer = smollm2
    text = "The weather today is"
    size = len(encode(tokenizer, text))
    boxes = decoder_summary(model, text, tokenizer)
    by_label = {box.label: box for box in boxes}
    assert [b.kind for b in boxes] == ["input", "embed", "norm", "attention", "residual", "norm", "feed_forward",
                                       "residual", "norm", "linear", "softmax"]
    assert boxes[0].shape == (1, size)
    assert by_label["词嵌入 (Embedding)"].detail.startswith("49152 个词元 × 576 维")
    assert by_label["RMSNorm（归一化）"].shape == (1, size, 576)
    assert "9 个头，3 个 KV 头" in by_label["因果自注意力 (causal self-attention)"].detail
    assert "576 → 1536 → 576，SwiGLU" in by_label["前馈网络 (feed-forward)"].detail
    assert by_label["Linear (lm_head)"].shape == (1, size, 49152)
    assert "共用同一份权重" in by_label["Linear (lm_head)"].detail  # SmolLM2 ties lm_head to the embedding
    assert by_label["softmax"].shape == (49152,)


def test_recorded_shapes_match_the_models_own_outputs(tiny_gpt2):
    model, tokenizer = tiny_gpt2
    ids = encode(tokenizer, PROMPT)
    hooks_before = [len(m._forward_hooks) for m in model.modules()]
    shapes = record_shapes(model, ids)
    assert [len(m._forward_hooks) for m in model.modules()] == hooks_before  # our hooks are removed again
    output = model(torch.tensor([ids]), output_hidden_states=True)
    assert shapes["lm_head"] == tuple(output.logits.shape) == (1, 6, 21128)
    assert shapes["embed"] == shapes["positions"] == (1, 6, 32)
    assert shapes["last_block"] == tuple(output.hidden_states[-2].shape)
    assert shapes["final_norm"] == tuple(output.hidden_states[-1].shape)


def test_decoder_diagram_of_smollm2_draws_the_model(smollm2, caplog):
    model, tokenizer = smollm2
    fig = draw_decoder_diagram(model, "The weather today is", tokenizer)
    texts = all_texts(fig)
    assert "× 30\n个解码器块\n(decoder block)" in texts
    assert "[1, 4, 576]" in texts and "[1, 4, 49152]" in texts and "[49152]" in texts
    assert any("LlamaForCausalLM：30 个解码器块 · 隐藏维度 576 · 词表 49152" in t for t in texts)
    render_png(fig, caplog)


def test_decoder_diagram_of_gpt2_has_layernorm_and_position_embeddings(tiny_gpt2, caplog):
    model, tokenizer = tiny_gpt2
    fig = draw_decoder_diagram(model, PROMPT, tokenizer)
    texts = all_texts(fig)
    assert "LayerNorm（归一化）" in texts and "最后的 LayerNorm" in texts
    assert any("+ 位置嵌入 64 × 32" in t for t in texts)
    assert "× 2\n个解码器块\n(decoder block)" in texts and "[1, 6, 21128]" in texts
    render_png(fig, caplog)


def test_decoder_diagram_without_text_has_no_shapes(tiny_gpt2):
    model, _ = tiny_gpt2
    assert all(box.shape is None for box in decoder_summary(model))
    assert not any(t.startswith("[1,") for t in all_texts(draw_decoder_diagram(model)))


def test_decoder_helpers_explain_their_errors(tiny_gpt2):
    model, _ = tiny_gpt2
    with pytest.raises(ValueError, match="tokenizer"):
        decoder_summary(model, "今天")
    with pytest.raises(ValueError, match="Unsupported model"):
        decoder_parts(torch.nn.Linear(2, 2))


def test_byte_level_detection(smollm2, bert_tokenizer):
    assert is_byte_level(smollm2[1]) and not is_byte_level(bert_tokenizer)


def test_figures_show_as_pictures_in_ipython_even_with_the_agg_backend(tiny_gpt2):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        show_figures_in_notebooks()
        model, tokenizer = tiny_gpt2
        fig = plot_next_token_probs(last_probs(model, tokenizer, PROMPT), tokenizer)
        data, _ = shell.display_formatter.format(fig)
        assert data["image/png"].startswith(b"\x89PNG")
    finally:
        InteractiveShell.clear_instance()


def test_transformer_sketch_shows_both_stacks(caplog):
    from helpers.plotting import draw_transformer_sketch

    fig = draw_transformer_sketch()
    texts = all_texts(fig)
    assert "编码器 (encoder)\nBERT 只用这一半" in texts
    assert "交叉注意力（看编码器）" in texts and "带掩码的自注意力（因果）" in texts
    faded = [p for p in fig.axes[0].patches if p.get_alpha() == 0.45]
    assert len(faded) == 2  # cross-attention and its add & norm: what decoder-only models leave out
    render_png(fig, caplog)
