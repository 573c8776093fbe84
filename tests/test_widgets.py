"""The next-token explorer, driven the way a learner drives it: sliders and button clicks."""

import io
import warnings

import pytest
import torch

from helpers.generation import generate
from helpers.sampling import next_token_probs, softmax, top_p_filter
from helpers.tokens import decode, encode
from helpers.widgets import NextTokenExplorer, bars_html, format_prob

PROMPT = "[CLS]今天天气真"


@pytest.fixture
def explorer(tiny_gpt2):
    return NextTokenExplorer(PROMPT, model_name="tiny", models={"tiny": tiny_gpt2}, top=8, seed=0)


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1]


def shown(explorer):
    """(id, prob) pairs of the candidates on screen."""
    return [(c.id, c.prob) for c in explorer.candidates]


def test_starts_from_the_encoded_prompt_and_shows_the_true_probabilities(explorer, tiny_gpt2):
    model, tokenizer = tiny_gpt2
    assert explorer.ids == encode(tokenizer, PROMPT) == [101, 791, 1921, 1921, 3698, 4696]
    assert explorer.text == PROMPT
    probs = softmax(logits_of(model, explorer.ids))
    values, ids = torch.topk(probs, 8)
    assert [c.id for c in explorer.candidates] == ids.tolist()
    assert [c.prob for c in explorer.candidates] == pytest.approx(values.tolist(), abs=1e-6)
    assert sum(c.prob for c in explorer.candidates) <= 1
    assert [c.token for c in explorer.candidates] == tokenizer.convert_ids_to_tokens(ids.tolist())


def test_greedy_button_at_temperature_zero_appends_the_argmax(explorer, tiny_gpt2):
    model, tokenizer = tiny_gpt2
    expected = int(torch.argmax(logits_of(model, explorer.ids)))
    explorer.greedy_button.click()
    assert explorer.ids[-1] == expected and len(explorer.ids) == 7
    assert explorer.text == decode(tokenizer, explorer.ids)
    assert explorer.text.startswith(PROMPT)


def test_greedy_clicks_follow_the_generation_loop(explorer, tiny_gpt2):
    model, tokenizer = tiny_gpt2
    for _ in range(4):
        explorer.greedy_button.click()
    assert explorer.ids[6:] == generate(model, tokenizer, PROMPT, 4).new_ids


def test_sliders_change_the_distribution_shown(explorer, tiny_gpt2):
    model, _ = tiny_gpt2
    logits = logits_of(model, explorer.ids)
    explorer.temperature_slider.value = 1.5
    explorer.top_k_slider.value = 3
    expected = next_token_probs(logits, 1.5, 3, None)
    assert len(explorer.candidates) == 3
    assert [p for _, p in shown(explorer)] == pytest.approx(torch.topk(expected, 3).values.tolist(), abs=1e-6)
    assert sum(p for _, p in shown(explorer)) == pytest.approx(1.0, abs=1e-5)  # top-k keeps only these three
    assert "温度 1.5，top-k 3" in explorer.status.value


def test_top_p_slider_keeps_the_smallest_sufficient_set(explorer, tiny_gpt2):
    model, _ = tiny_gpt2
    logits = logits_of(model, explorer.ids)
    explorer.top_p_slider.value = 0.05
    survivors = set(torch.nonzero(top_p_filter(logits, 0.05) > float("-inf")).flatten().tolist())
    expected = torch.topk(next_token_probs(logits, 1.0, None, 0.05), 8)
    assert {i for i, _ in shown(explorer)} <= survivors
    assert shown(explorer) == [(i, pytest.approx(p, abs=1e-6)) for i, p in zip(expected.indices.tolist(),
                                                                               expected.values.tolist())]
    assert explorer.settings.top_p == 0.05


def test_temperature_flattens_the_distribution(explorer):
    explorer.temperature_slider.value = 0.5
    sharp = shown(explorer)[0][1]
    explorer.temperature_slider.value = 2.0
    flat = shown(explorer)[0][1]
    assert flat < sharp


def test_sample_button_is_seeded_and_stays_inside_top_k(tiny_gpt2):
    def run():
        explorer = NextTokenExplorer(PROMPT, model_name="tiny", models={"tiny": tiny_gpt2}, seed=7)
        explorer.temperature_slider.value = 1.0
        explorer.top_k_slider.value = 5
        picks = []
        for _ in range(5):
            allowed = {c.id for c in explorer.candidates}
            explorer.sample_button.click()
            assert explorer.ids[-1] in allowed
            picks.append(explorer.ids[-1])
        return picks

    assert run() == run()


def test_sample_matches_pick_next_token_with_the_same_generator(explorer, tiny_gpt2):
    from helpers.sampling import pick_next_token

    model, _ = tiny_gpt2
    logits = logits_of(model, explorer.ids)
    explorer.temperature_slider.value = 1.2
    expected = pick_next_token(logits, 1.2, None, None, torch.Generator().manual_seed(0))
    assert explorer.append_sample() == expected == explorer.ids[-1]


def test_clicking_a_candidate_appends_it(explorer, tiny_gpt2):
    _, tokenizer = tiny_gpt2
    third = explorer.candidates[2]
    assert explorer.candidate_buttons.children[2].description == f"{third.token}  {format_prob(third.prob)}"
    explorer.candidate_buttons.children[2].click()
    assert explorer.ids[-1] == third.id
    assert explorer.text == decode(tokenizer, [*encode(tokenizer, PROMPT), third.id])


def test_undo_restores_text_ids_and_candidates(explorer):
    before = (explorer.text, list(explorer.ids), shown(explorer))
    assert explorer.undo_button.disabled
    explorer.greedy_button.click()
    explorer.candidate_buttons.children[0].click()
    assert not explorer.undo_button.disabled
    explorer.undo_button.click()
    explorer.undo_button.click()
    assert (explorer.text, explorer.ids, shown(explorer)) == before
    explorer.undo_button.click()  # nothing left to undo: no change, no error
    assert explorer.ids == before[1] and explorer.history == []


def test_editing_the_text_tokenizes_it_again(explorer, tiny_gpt2):
    _, tokenizer = tiny_gpt2
    explorer.greedy_button.click()
    explorer.prompt_box.value = "[CLS]我爱"
    assert explorer.ids == encode(tokenizer, "[CLS]我爱") and explorer.history == []
    assert explorer.text == "[CLS]我爱"


def test_empty_text_has_no_candidates_and_says_what_to_do(explorer):
    explorer.prompt_box.value = ""
    assert explorer.candidates == [] and explorer.greedy_button.disabled and explorer.sample_button.disabled
    assert "请先输入提示词" in explorer.bars.value
    with pytest.raises(ValueError, match="请先输入提示词"):
        explorer.append_greedy()


def test_model_choice_loads_each_model_once(tiny_gpt2):
    calls = []

    def loader(name):
        calls.append(name)
        return tiny_gpt2

    explorer = NextTokenExplorer(PROMPT, model_name="tiny", models={"tiny": tiny_gpt2}, loader=loader)
    assert list(explorer.model_choice.options) == ["tiny", "gpt2-chinese", "gpt2-chinese-chat", "smollm2", "gemma3-270m"]
    explorer.model_choice.value = "gpt2-chinese"
    explorer.model_choice.value = "tiny"
    explorer.model_choice.value = "gpt2-chinese"
    assert calls == ["gpt2-chinese"]
    assert explorer.ids == encode(tiny_gpt2[1], PROMPT)


def test_unknown_model_name_is_explained(tiny_gpt2):
    with pytest.raises(ValueError, match="Unknown model"):
        NextTokenExplorer(PROMPT, model_name="gpt5", models={"tiny": tiny_gpt2})


def test_views_show_the_candidates_and_the_tokens(explorer):
    for c in explorer.candidates:
        assert format_prob(c.prob) in explorer.bars.value
    assert "[CLS]" in explorer.chips.value and "行 102" in explorer.chips.value
    assert len(explorer.candidate_buttons.children) == len(explorer.candidates)
    assert explorer.candidate_buttons.children[0].description.endswith(format_prob(explorer.candidates[0].prob))
    assert bars_html([], False).startswith("<i>")
    assert format_prob(0.6789) == "0.679" and format_prob(0.00004733) == "4.7e-05"


def test_static_twin_draws_the_same_bars_without_missing_glyphs(explorer):
    explorer.temperature_slider.value = 0.7
    fig = explorer.static_figure()
    assert [b.get_width() for b in fig.axes[0].patches] == [c.prob for c in explorer.candidates]
    assert "温度 0.7" in fig.axes[0].get_title()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png", dpi=60)
    assert not [w for w in caught if "missing from font" in str(w.message) or "Glyph" in str(w.message)]


def test_explorer_displays_as_its_widget(explorer):
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == "NextTokenExplorer(model='tiny', text='[CLS]今天天气真')"


def test_smollm2_explorer_greedy_and_byte_pieces(smollm2):
    model, tokenizer = smollm2
    explorer = NextTokenExplorer("The weather today is", model_name="smollm2", models={"smollm2": smollm2})
    greedy = generate(model, tokenizer, "The weather today is", 2)
    explorer.greedy_button.click()
    explorer.greedy_button.click()
    assert explorer.ids[-2:] == greedy.new_ids
    assert explorer.text == "The weather today is" + greedy.text
    explorer.top_p_slider.value = 0.5
    survivors = torch.nonzero(top_p_filter(explorer.logits, 0.5) > float("-inf")).flatten().tolist()
    assert len(survivors) < 8 and sorted(i for i, _ in shown(explorer)) == sorted(survivors)
    assert sum(p for _, p in shown(explorer)) == pytest.approx(1.0, abs=1e-5)
    explorer.prompt_box.value = "你好"
    assert "拼成「你」" in explorer.chips.value and "⟨e4 bd⟩" in explorer.chips.value
