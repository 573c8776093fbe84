"""helpers.training: shifted labels, the next-token loss, one optimisation step, evaluation, the lesson corpus."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import training

CLS, SEP, PAD = 101, 102, 0
SENTENCE = [CLS, 791, 1921, 1921, 3698, 4696, 1962]  # [CLS]今天天气真好


@pytest.fixture(scope="module")
def tiny():
    return training.tiny_gpt2(n_embd=32, n_layer=1, n_head=2, n_positions=32, seed=0)


def test_shift_pairs_every_token_with_the_next() -> None:
    ids = torch.tensor([SENTENCE])
    inputs, targets = training.shift_for_next_token(ids)
    assert inputs.tolist() == [SENTENCE[:-1]] and targets.tolist() == [SENTENCE[1:]]
    one_dim_inputs, one_dim_targets = training.shift_for_next_token(torch.tensor(SENTENCE))
    assert one_dim_inputs.tolist() == SENTENCE[:-1] and one_dim_targets.tolist() == SENTENCE[1:]
    for position in range(len(SENTENCE) - 1):  # the target at position i is the input at i + 1
        assert targets[0, position] == ids[0, position + 1]


def test_collate_pads_right_and_hides_padding_from_the_loss() -> None:
    batch = training.collate([SENTENCE, [CLS, 791, 1921]])
    assert batch["input_ids"][1].tolist() == [CLS, 791, 1921, PAD, PAD, PAD, PAD]
    assert batch["labels"][1].tolist() == [CLS, 791, 1921, -100, -100, -100, -100]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0, 0]
    assert batch["labels"][0].tolist() == SENTENCE
    assert training.count_targets(batch) == 6 + 2
    noisy = training.collate([SENTENCE], inputs=[[CLS, 100, 1921, 1921, 3698, 4696, 1962]])
    assert noisy["input_ids"][0, 1] == 100 and noisy["labels"][0, 1] == 791
    with pytest.raises(ValueError):
        training.collate([])


def test_next_token_loss_equals_the_models_own_loss(tiny) -> None:
    tiny.eval()
    ids = torch.tensor([SENTENCE])
    with torch.no_grad():
        output = tiny(ids, labels=ids)
        ours = training.next_token_loss(output.logits, ids)
    assert torch.allclose(ours, output.loss, atol=1e-6)
    batch = training.collate([SENTENCE, [CLS, 791, 1921], [CLS, 2769, 1962, 511]])
    with torch.no_grad():
        library = tiny(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       labels=batch["labels"]).loss
        assert torch.allclose(training.lm_loss(tiny, batch), library, atol=1e-6)


def test_hand_cross_entropy_is_the_mean_of_minus_log_p(tiny) -> None:
    tiny.eval()
    ids = torch.tensor([SENTENCE])
    with torch.no_grad():
        logits = tiny(ids).logits[0]
        loss = tiny(ids, labels=ids).loss.item()
    probs = torch.softmax(logits, dim=-1)
    minus_log_p = [-math.log(probs[i, SENTENCE[i + 1]].item()) for i in range(len(SENTENCE) - 1)]
    assert sum(minus_log_p) / len(minus_log_p) == pytest.approx(loss, abs=1e-5)
    assert training.perplexity(loss) == pytest.approx(math.exp(loss))
    assert loss == pytest.approx(math.log(21128), abs=0.3)  # an untrained model is about uniform


def test_train_step_lowers_the_loss_on_its_batch() -> None:
    model = training.tiny_gpt2(n_embd=32, n_layer=1, n_head=2, n_positions=32, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = training.collate([SENTENCE, [CLS, 2769, 1962, 511]])
    before = training.evaluate(model, [batch])
    losses = [training.train_step(model, optimizer, batch) for _ in range(5)]
    after = training.evaluate(model, [batch])
    assert losses[0] == pytest.approx(before, abs=1e-5)  # the step reports the loss before its update
    assert after < before - 1.0, (before, after)
    assert all(p.grad is None for p in model.parameters())  # gradients were reset after the update


def test_evaluate_weights_every_predicted_token_equally(tiny) -> None:
    long, short = training.collate([SENTENCE]), training.collate([[CLS, 791]])
    with torch.no_grad():
        sums = [training.lm_loss(tiny, b, reduction="sum").item() for b in (long, short)]
    assert training.evaluate(tiny, [long, short]) == pytest.approx(sum(sums) / 7, rel=1e-6)
    with pytest.raises(ValueError):
        training.evaluate(tiny, [])


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    assert training.lr_at(0, 1.0, 10, 100) == pytest.approx(0.1)
    assert training.lr_at(9, 1.0, 10, 100) == pytest.approx(1.0)
    assert training.lr_at(10, 1.0, 10, 100) == pytest.approx(1.0)
    assert training.lr_at(100, 1.0, 10, 100) == pytest.approx(0.1)
    assert training.lr_at(55, 1.0, 10, 100) == pytest.approx(0.55)


def test_batches_are_bounded_and_repeatable() -> None:
    import random

    samples = [[CLS] + [791] * n for n in range(1, 60)]
    first = training.make_batches(samples, 8, 100, random.Random(3))
    assert first == training.make_batches(samples, 8, 100, random.Random(3))
    assert sorted(map(tuple, (s for b in first for s in b))) == sorted(map(tuple, samples))
    assert all(len(b) <= 8 and max(map(len, b)) * len(b) <= 100 or len(b) == 1 for b in first)
    stream = training.endless_batches(samples, 8, 100, seed=3)
    assert [next(stream)["input_ids"].shape[0] for _ in range(len(first))] == [len(b) for b in first]


def test_train_standin_uses_the_shared_step(monkeypatch) -> None:
    from training import train_standin

    assert train_standin.make_batches is training.make_batches
    calls = []
    real_step = training.train_step

    def counting_step(*args, **kwargs):
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", counting_step)
    model = training.tiny_gpt2(n_embd=32, n_layer=1, n_head=2, n_positions=32, seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    config = train_standin.TrainConfig(amp=False)
    vocab = train_standin.ActiveVocab(SENTENCE + [2769, 511])
    batch = train_standin.collate([SENTENCE, [CLS, 2769, 1962, 511]])
    loss = train_standin.train_step(model, optimizer, batch, vocab, 1e-2, config, torch.device("cpu"))
    assert calls == [1] and loss > 0
    assert optimizer.param_groups[0]["lr"] == 1e-2


def test_lesson_corpus_uses_the_course_texts() -> None:
    corpus = training.lesson_corpus()
    assert len(corpus["base_train"]) > 3000 and len(corpus["base_val"]) > 100
    assert all(line.startswith("[CLS]") and "[SEP]" not in line for line in corpus["base_train"])
    assert not set(corpus["base_train"]) & set(corpus["base_val"][:100])  # validation sentences are unseen
    assert all(line.startswith("[CLS]") and line.endswith("[SEP]") for line in corpus["chat_train"])
    openings = {line.split("[SEP]")[0] for line in corpus["chat_train"]}
    assert not openings & {line.split("[SEP]")[0] for line in corpus["chat_heldout"]}
    assert corpus == training.lesson_corpus()  # the same texts in the same order every time
