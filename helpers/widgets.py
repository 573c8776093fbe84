"""The next-token explorer: type a prompt, see the candidates for the next token, pick one, repeat.

The explorer has no logic of its own: the scores come from one forward pass of the model, the probabilities from
`helpers.sampling.next_token_probs`, the picks from `pick_next_token`, the text from `helpers.tokens.decode`.
Each view has a static twin (`static_figure()`), so a saved notebook shows the same chart without a live kernel.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .generation import Candidate, top_candidates
from .loading import load_model
from .plotting import plot_next_token_probs
from .registry import MODELS
from .sampling import next_token_probs, pick_next_token
from .tokens import decode, encode, is_byte_level, readable_token, token_rows, tokens_html

Loader = Callable[[str], tuple[PreTrainedModel, PreTrainedTokenizerBase]]


def quiet_loader(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`load_model` without its printed line (the explorer shows where the model came from itself)."""
    return load_model(name, quiet=True)


@dataclass(frozen=True)
class Settings:
    """How the next token is chosen: temperature 0 = greedy; top_k / top_p None = no limit."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None


def format_prob(prob: float) -> str:
    """A probability for the screen: three decimals, or scientific notation when it is tiny."""
    return f"{prob:.3f}" if prob >= 0.0005 or prob == 0 else f"{prob:.1e}"


def bars_html(candidates: list[Candidate], byte_level: bool) -> str:
    """The candidates as horizontal bars in HTML (drawn by the browser, no JavaScript)."""
    if not candidates:
        return "<i>（没有候选：请先输入提示词）</i>"
    scale = max(c.prob for c in candidates) or 1.0
    rows = []
    for c in candidates:
        width = 100 * c.prob / scale
        rows.append(
            '<div style="display:flex;align-items:center;margin:1px 0">'
            f'<div style="width:9em;text-align:right;padding-right:6px;font-family:monospace">'
            f"{html.escape(readable_token(c.token, byte_level))}</div>"
            f'<div style="width:16em"><div style="width:{width:.1f}%;background:#4c8bd6;height:1.1em"></div></div>'
            f'<div style="padding-left:6px">{format_prob(c.prob)} '
            f'<small style="color:#888">id {c.id}</small></div></div>'
        )
    return "".join(rows)


class NextTokenExplorer:
    """An interactive view of one generation step (ipywidgets 8).

    State you can read (and tests do): `text`, `ids`, `history` (earlier id lists, for undo), `candidates`
    (the top candidates shown, as Candidate(token, id, prob)), `probs` (the full distribution shown).
    """

    def __init__(
        self,
        prompt: str = "[CLS]今天天气真",
        model_name: str = "gpt2-chinese",
        models: dict[str, tuple[PreTrainedModel, PreTrainedTokenizerBase]] | None = None,
        loader: Loader = quiet_loader,
        top: int = 8,
        seed: int = 0,
    ) -> None:
        self.loader = loader
        self.cache: dict[str, tuple[PreTrainedModel, PreTrainedTokenizerBase]] = dict(models or {})
        self.top = top
        self.generator = torch.Generator().manual_seed(seed)
        self.history: list[list[int]] = []
        self.ids: list[int] = []
        self.candidates: list[Candidate] = []
        self.probs: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self._syncing = False

        names = list(dict.fromkeys([*self.cache, *MODELS]))
        if model_name not in names:
            raise ValueError(f"未知的模型 {model_name!r}，可选：{', '.join(names)}。 (Unknown model.)")
        layout = widgets.Layout(width="34em")
        self.prompt_box = widgets.Textarea(value=prompt, description="文本", continuous_update=False,
                                           layout=widgets.Layout(width="46em"))
        self.model_choice = widgets.Dropdown(options=names, value=model_name, description="模型", layout=layout)
        self.temperature_slider = widgets.FloatSlider(value=0.0, min=0.0, max=2.0, step=0.1, description="温度",
                                                      readout_format=".1f", continuous_update=False, layout=layout)
        self.top_k_slider = widgets.IntSlider(value=0, min=0, max=50, description="top-k", continuous_update=False,
                                              layout=layout)
        self.top_p_slider = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p",
                                                readout_format=".2f", continuous_update=False, layout=layout)
        self.greedy_button = widgets.Button(description="贪心：接上第 1 名", button_style="primary")
        self.sample_button = widgets.Button(description="采样：按概率抽一个", button_style="info")
        self.undo_button = widgets.Button(description="撤销", icon="undo")
        self.candidate_buttons = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.bars = widgets.HTML()
        self.chips = widgets.HTML()
        self.status = widgets.HTML()

        self.prompt_box.observe(self._on_text, names="value")
        self.model_choice.observe(self._on_model, names="value")
        for slider in (self.temperature_slider, self.top_k_slider, self.top_p_slider):
            slider.observe(self._on_settings, names="value")
        self.greedy_button.on_click(lambda _: self.append_greedy())
        self.sample_button.on_click(lambda _: self.append_sample())
        self.undo_button.on_click(lambda _: self.undo())

        self.widget = widgets.VBox([
            self.model_choice, self.prompt_box,
            self.temperature_slider, self.top_k_slider, self.top_p_slider,
            widgets.HTML("<b>下一个词元的候选（按当前温度 / top-k / top-p 算出的概率）</b>"), self.bars,
            widgets.HBox([self.greedy_button, self.sample_button, self.undo_button]),
            widgets.HTML("点一个候选，把它接到文本后面："), self.candidate_buttons,
            widgets.HTML("<b>现在的词元序列</b>"), self.chips, self.status,
        ])
        self._load(model_name)
        self._set_ids(encode(self.tokenizer, prompt), text=prompt)

    # --- what the notebook displays ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"NextTokenExplorer(model={self.model_choice.value!r}, text={self.text!r})"

    def _repr_mimebundle_(self, **kwargs):
        """Display the explorer as its widget (with a one-line text form for places without widgets)."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def static_figure(self) -> Figure:
        """The current candidate chart drawn once with matplotlib (readable without a running kernel)."""
        shown = decode(self.tokenizer, self.ids[-12:]).replace("\n", "↵")
        return plot_next_token_probs(self.candidates, top=self.top,
                                     title=f"“…{shown}” 的下一个词元（{self.model_choice.value}，{self.describe()}）")

    # --- state ------------------------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The current text: the prompt plus every appended token."""
        return self.prompt_box.value

    @property
    def settings(self) -> Settings:
        """The sampling settings the sliders show (0 on the top-k slider and 1 on top-p mean "no limit")."""
        top_k = self.top_k_slider.value or None
        top_p = self.top_p_slider.value if self.top_p_slider.value < 1 else None
        return Settings(self.temperature_slider.value, top_k, top_p)

    def describe(self) -> str:
        """The settings in words."""
        s = self.settings
        parts = ["贪心（温度 0）" if s.temperature == 0 else f"温度 {s.temperature:.1f}"]
        parts += [f"top-k {s.top_k}"] if s.top_k else []
        parts += [f"top-p {s.top_p:.2f}"] if s.top_p else []
        return "，".join(parts)

    def _load(self, name: str) -> None:
        """Use model `name`, loading it once (later choices of the same name come from the cache)."""
        if name not in self.cache:
            self.status.value = f"正在加载 {html.escape(name)} …"
            self.cache[name] = self.loader(name)
        self.model, self.tokenizer = self.cache[name]
        self.byte_level = is_byte_level(self.tokenizer)

    @torch.inference_mode()
    def _refresh(self) -> None:
        """Recompute the next-token distribution for the current ids and redraw every view."""
        self.candidates, self.probs, self.logits = [], None, None
        if self.ids:
            context = self.ids[-int(self.model.config.max_position_embeddings):]
            output = self.model(input_ids=torch.tensor([context], device=self.model.device), use_cache=False)
            self.logits = output.logits[0, -1].float().cpu()
            s = self.settings
            self.probs = next_token_probs(self.logits, s.temperature or 1.0, s.top_k, s.top_p)
            self.candidates = [c for c in top_candidates(self.tokenizer, self.probs, self.top) if c.prob > 0]
        self.bars.value = bars_html(self.candidates, self.byte_level)
        self.chips.value = tokens_html(token_rows(self.tokenizer, self.ids), self.byte_level)
        buttons = []
        for c in self.candidates:
            button = widgets.Button(description=f"{readable_token(c.token, self.byte_level)}  {format_prob(c.prob)}",
                                    layout=widgets.Layout(width="auto"))
            button.on_click(lambda _, token_id=c.id: self.append(token_id))
            buttons.append(button)
        self.candidate_buttons.children = buttons
        for button in (self.greedy_button, self.sample_button):
            button.disabled = not self.ids
        self.undo_button.disabled = not self.history
        source = getattr(self.model, "course_source", None)
        where = f"；模型来源：{html.escape(source.location)}" if source else ""
        self.status.value = f"<small>{len(self.ids)} 个词元；{self.describe()}{where}</small>"

    def _set_ids(self, ids: list[int], text: str | None = None) -> None:
        """Make `ids` the current sequence; the text box shows `text` (default: the decoded ids)."""
        self.ids = list(ids)
        self._syncing = True
        try:
            self.prompt_box.value = decode(self.tokenizer, self.ids) if text is None else text
        finally:
            self._syncing = False
        self._refresh()

    # --- actions (the buttons call these; tests call them too) -------------------------------------------------

    def append(self, token_id: int) -> None:
        """Append one token id to the text (remembering the previous state for undo)."""
        self.history.append(self.ids)
        self._set_ids([*self.ids, int(token_id)])

    def _require_logits(self) -> torch.Tensor:
        """The scores of the next token; an empty text has none."""
        if self.logits is None:
            raise ValueError("文本为空：请先输入提示词。 (Type a prompt first.)")
        return self.logits

    def append_greedy(self) -> int:
        """Append the most probable token; return its id."""
        self._require_logits()
        token_id = pick_next_token(self.logits, temperature=0.0)
        self.append(token_id)
        return token_id

    def append_sample(self) -> int:
        """Append a token drawn from the distribution shown (temperature 0 draws from the plain softmax)."""
        self._require_logits()
        s = self.settings
        token_id = pick_next_token(self.logits, s.temperature or 1.0, s.top_k, s.top_p, self.generator)
        self.append(token_id)
        return token_id

    def undo(self) -> None:
        """Go back to the sequence before the last appended token."""
        if self.history:
            self._set_ids(self.history.pop())

    # --- reactions to the widgets -----------------------------------------------------------------------------

    def _on_text(self, change: dict) -> None:
        """The learner edited the text: tokenize it again (the undo history starts afresh)."""
        if not self._syncing:
            self.history = []
            self._set_ids(encode(self.tokenizer, change["new"]), text=change["new"])

    def _on_model(self, change: dict) -> None:
        """Another model was chosen: load it (once) and tokenize the text with its tokenizer."""
        self._load(change["new"])
        self.history = []
        self._set_ids(encode(self.tokenizer, self.text), text=self.text)

    def _on_settings(self, change: dict) -> None:
        """A slider moved: recompute the distribution."""
        self._refresh()
