"""[SEP] turns, the reply a chat product shows, prompts from history, multi-turn sessions."""

import pytest

from helpers.chat import ChatSession, first_reply, sep_prompt, split_turns, template_prompt
from helpers.tokens import decode, encode

SEED_CHAT = "[CLS]今天天气真好[SEP]是的，你最近怎么样[SEP]挺好的，你呢[SEP]我也是，还在上班[SEP]"


def test_split_turns_gives_a_b_a_b():
    assert split_turns(SEED_CHAT) == ["今天天气真好", "是的，你最近怎么样", "挺好的，你呢", "我也是，还在上班"]


def test_split_turns_ignores_empty_pieces_and_an_unfinished_tail():
    assert split_turns("[CLS]你好[SEP][SEP]在吗") == ["你好", "在吗"]
    assert split_turns("") == []


def test_first_reply_is_the_text_before_the_next_sep():
    generated_after_prompt = "是的，你最近怎么样[SEP]挺好的，你呢[SEP]"
    assert first_reply(generated_after_prompt) == "是的，你最近怎么样"
    assert first_reply("没有分隔符") == "没有分隔符"


def test_sep_prompt_rebuilds_the_dialogue():
    assert sep_prompt(["今天天气真好", "是的"]) == "[CLS]今天天气真好[SEP]是的[SEP]"
    assert sep_prompt([]) == "[CLS]"


def test_template_prompt_uses_the_chat_template(smollm2):
    _, tok = smollm2
    text = template_prompt(tok, ["Hi", "Hello!", "How are you?"])
    assert text.count("<|im_start|>user") == 2 and text.count("<|im_start|>assistant") == 2
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>system" in text  # SmolLM2's template adds its default system prompt


def test_chat_session_keeps_history_and_grows_the_prompt(gpt2_chat):
    model, tok = gpt2_chat
    session = ChatSession(model, tok, "gpt2-chinese-chat")
    reply = session.say("今天天气真好", max_new_tokens=30)
    first = session.last
    assert first.prompt_ids == encode(tok, "[CLS]今天天气真好[SEP]")
    assert first.stopped_by == "stop_token" and first.new_ids[-1] == tok.convert_tokens_to_ids("[SEP]") == 102
    assert reply and reply == decode(tok, first.new_ids[:-1], skip_special_tokens=True).strip()
    assert session.history == ["今天天气真好", reply]
    assert session.prompt() == sep_prompt(["今天天气真好", reply])

    second = session.say("你在做什么", max_new_tokens=30)
    assert session.history == ["今天天气真好", reply, "你在做什么", second]
    assert session.last.prompt_ids == encode(tok, sep_prompt(session.history[:3]))  # the whole dialogue so far
    assert session.last is not first


def test_chat_session_system_prompt_replaces_the_default(smollm2):
    model, tok = smollm2
    session = ChatSession(model, tok, "smollm2", system="You are a pirate.")
    session.say("Hi", max_new_tokens=3)
    prompt = tok.decode(session.last.prompt_ids)
    assert prompt.startswith("<|im_start|>system\nYou are a pirate.<|im_end|>")
    assert prompt.count("<|im_start|>system") == 1 and "SmolLM" not in prompt  # not the template's default
    assert session.last.prompt_ids == encode(tok, template_prompt(tok, ["Hi"], system="You are a pirate."))


def test_chat_session_with_smollm2_stops_at_im_end(smollm2):
    model, tok = smollm2
    session = ChatSession(model, tok, "smollm2")
    reply = session.say("What is the capital of France?", max_new_tokens=30)
    assert "Paris" in reply
    assert session.last.stopped_by == "stop_token"
    assert tok.convert_ids_to_tokens(session.last.new_ids[-1]) == "<|im_end|>"


def test_chat_session_rejects_an_empty_turn(tiny_gpt2):
    model, tok = tiny_gpt2
    with pytest.raises(ValueError, match="请输入"):
        ChatSession(model, tok, "gpt2-chinese-chat").say("  ")
