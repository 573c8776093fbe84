"""[SEP] turns, the reply a chat product shows, prompts from history, multi-turn sessions."""

import pytest

from helpers.chat import ChatSession, first_reply, sep_prompt, split_turns, template_prompt

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
    assert session.history == ["今天天气真好", reply]
    assert "[SEP]" not in reply
    assert session.prompt() == sep_prompt(["今天天气真好", reply])
    session.say("你在做什么", max_new_tokens=30)
    assert len(session.history) == 4
    assert session.last.prompt_ids[0] == 101  # [CLS]


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
