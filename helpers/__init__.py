"""Helpers for the course "How large language models generate text".

Each module has one job; notebooks import what they need from here:

    from helpers import load_model, generate, token_table
"""

from .chat import ChatSession, first_reply, sep_prompt, split_turns, template_prompt
from .generation import Candidate, Generation, Step, generate
from .loading import ModelSource, load_model
from .provenance import Provenance, find_in_training_data
from .registry import MODELS, ModelSpec, get_spec
from .sampling import next_token_probs, pick_next_token, softmax, top_k_filter, top_p_filter
from .tokens import decode, encode, format_token_table, token_rows, token_table, tokens_html, vocab_line

__all__ = [
    "MODELS",
    "Candidate",
    "ChatSession",
    "Generation",
    "ModelSource",
    "ModelSpec",
    "Provenance",
    "Step",
    "decode",
    "encode",
    "find_in_training_data",
    "first_reply",
    "format_token_table",
    "generate",
    "get_spec",
    "load_model",
    "next_token_probs",
    "pick_next_token",
    "sep_prompt",
    "softmax",
    "split_turns",
    "template_prompt",
    "token_rows",
    "token_table",
    "tokens_html",
    "top_k_filter",
    "top_p_filter",
    "vocab_line",
]
