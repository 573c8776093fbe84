"""Lab 09 checkers: several correct answers written differently pass, plausible wrong ones fail with the right hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import checks, training_checks as tc
from helpers.training import tiny_gpt2


def stub(*args, **kwargs):
    raise NotImplementedError("练习 1：请在这里写你的代码")


def verdict_of(checker, fn, capsys, *args) -> tuple[bool, str]:
    result = checker(fn, *args)
    return result, capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------
# Exercise 1: shift
# ---------------------------------------------------------------------------------------------------

def shift_slices(ids):
    return ids[:, :-1], ids[:, 1:]


def shift_narrow(ids):
    n = ids.size(1)
    return ids.narrow(1, 0, n - 1), ids.narrow(1, 1, n - 1)


def shift_lists(ids):
    rows = ids.tolist()
    return [r[:-1] for r in rows], [r[1:] for r in rows]


def shift_roll(ids):
    return ids[..., :-1].clone(), torch.roll(ids, -1, dims=1)[:, :-1]


@pytest.mark.parametrize("fn", [shift_slices, shift_narrow, shift_lists, shift_roll])
def test_shift_accepts_correct_answers(fn, capsys) -> None:
    ok, out = verdict_of(tc.check_shift, fn, capsys)
    assert ok, out
    assert out.startswith("✅")


@pytest.mark.parametrize("fn, words", [
    (lambda ids: (ids[:, 1:], ids[:, :-1]), "弄反"),
    (lambda ids: (ids, ids), "没有错开"),
    (lambda ids: (ids[:-1], ids[1:]), "切错了维度"),
    (lambda ids: (ids[:, :-1], ids[:, :-1]), "目标没有往后错一位"),
    (lambda ids: (ids[:, :-2], ids[:, 2:]), "错开了两位"),
    (lambda ids: (ids, ids[:, 1:]), "输入也要去掉最后一个词元"),
    (lambda ids: ids[:, 1:], "两个值"),
    (lambda ids: None, "return"),
])
def test_shift_rejects_wrong_answers(fn, words, capsys) -> None:
    ok, out = verdict_of(tc.check_shift, fn, capsys)
    assert not ok
    assert "❌ 没通过" in out and words in out, out


def test_stub_fails_kindly(capsys) -> None:
    for checker in (tc.check_shift, tc.check_cross_entropy, tc.check_train_step, tc.check_perplexity):
        ok, out = verdict_of(checker, stub, capsys)
        assert not ok and "还没有实现" in out and "Traceback" not in out, out


# ---------------------------------------------------------------------------------------------------
# Exercise 2: cross-entropy
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    return tiny_gpt2(n_embd=32, n_layer=1, n_head=2, n_positions=32, seed=3).eval()


def ce_functional(logits, labels):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)


def ce_log_softmax(logits, labels):
    targets = labels[:, 1:]
    mask = targets != -100
    log_p = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = log_p[mask].gather(-1, targets[mask].unsqueeze(-1))
    return -picked.mean().item()


def ce_loop(logits, labels):
    total, count = 0.0, 0
    for b in range(labels.size(0)):
        for i in range(labels.size(1) - 1):
            target = int(labels[b, i + 1])
            if target == -100:
                continue
            probs = torch.softmax(logits[b, i], dim=-1)
            total += -math.log(probs[target].item())
            count += 1
    return total / count


def ce_logsumexp(logits, labels):
    lg, tg = logits[:, :-1], labels[:, 1:]
    keep = tg != -100
    scores = lg[keep]
    right = scores.gather(1, tg[keep].unsqueeze(1)).squeeze(1)
    return float((torch.logsumexp(scores, dim=-1) - right).sum() / keep.sum())


@pytest.mark.parametrize("fn", [ce_functional, ce_log_softmax, ce_loop, ce_logsumexp])
def test_cross_entropy_accepts_correct_answers(fn, model, capsys) -> None:
    ok, out = verdict_of(tc.check_cross_entropy, fn, capsys, model)
    assert ok, out


def test_cross_entropy_matches_the_models_loss(model) -> None:
    ids = torch.tensor([[101, 791, 1921, 1921, 3698, 4696, 1962]])
    with torch.no_grad():
        output = model(ids, labels=ids)
    assert ce_loop(output.logits, ids) == pytest.approx(output.loss.item(), abs=1e-5)


def _per_token(logits, labels):
    return tc._per_token(logits, labels)


@pytest.mark.parametrize("fn, words", [
    (lambda lg, lb: F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100), "没有错开一位"),
    (lambda lg, lb: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)), lb[:, 1:].reshape(-1), ignore_index=-100,
                                    reduction="sum"), "总和"),
    (lambda lg, lb: ce_log_softmax(lg, lb) / math.log(10), "以 10 为底"),
    (lambda lg, lb: ce_log_softmax(lg, lb) / math.log(2), "以 2 为底"),
    (lambda lg, lb: F.cross_entropy(lg[:, :-1].reshape(-1, lg.size(-1)), lb[:, 1:].clamp(min=0).reshape(-1)),
     "填充位置"),
    (lambda lg, lb: torch.stack([F.cross_entropy(lg[b, :-1], lb[b, 1:], ignore_index=-100)
                                 for b in range(lb.size(0))]).mean(), "先对每句求平均"),
    (lambda lg, lb: F.cross_entropy(lg[:, 1:].reshape(-1, lg.size(-1)), lb[:, :-1].reshape(-1), ignore_index=-100),
     "方向反了"),
    (lambda lg, lb: -(lg[:, :-1].gather(-1, lb[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)[lb[:, 1:] != -100]).mean(),
     "直接用了 logits"),
])
def test_cross_entropy_rejects_wrong_answers(fn, words, model, capsys) -> None:
    ok, out = verdict_of(tc.check_cross_entropy, fn, capsys, model)
    assert not ok
    assert words in out, out


def test_cross_entropy_that_crashes_on_padding_gets_a_padding_hint(model, capsys) -> None:
    def no_mask(logits, labels):
        log_p = torch.log_softmax(logits[:, :-1], dim=-1)
        return -log_p.gather(-1, labels[:, 1:].unsqueeze(-1)).mean()

    ok, out = verdict_of(tc.check_cross_entropy, no_mask, capsys, model)
    assert not ok and "你的代码报错了" in out and "-100" in out, out


def test_cross_entropy_checker_works_without_a_model(capsys) -> None:
    ok, out = verdict_of(tc.check_cross_entropy, ce_functional, capsys)
    assert ok and "2 个测试输入" in out, out


# ---------------------------------------------------------------------------------------------------
# Exercise 3: one optimisation step
# ---------------------------------------------------------------------------------------------------

def step_model_loss(model, optimizer, batch):
    optimizer.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def step_zero_after(model, optimizer, batch):
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    return out.loss


def step_own_loss(model, optimizer, batch):
    model.zero_grad()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = ce_functional(logits, batch["labels"])
    loss.backward()
    optimizer.step()
    return float(loss)


def step_helpers(model, optimizer, batch):
    from helpers.training import train_step

    return train_step(model, optimizer, batch, max_grad_norm=None)


@pytest.mark.parametrize("fn", [step_model_loss, step_zero_after, step_own_loss, step_helpers])
def test_train_step_accepts_correct_answers(fn, capsys) -> None:
    ok, out = verdict_of(tc.check_train_step, fn, capsys)
    assert ok, out


def step_no_zero(model, optimizer, batch):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def step_no_step(model, optimizer, batch):
    optimizer.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.item()


def step_zero_in_between(model, optimizer, batch):
    loss = model(**batch).loss
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_loss_after(model, optimizer, batch):
    step_model_loss(model, optimizer, batch)
    return model(**batch).loss.item()


def step_no_grad(model, optimizer, batch):
    with torch.no_grad():
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def step_twice(model, optimizer, batch):
    optimizer.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.step()
    return loss.item()


def step_no_return(model, optimizer, batch):
    step_model_loss(model, optimizer, batch)


@pytest.mark.parametrize("fn, words", [
    (step_no_zero, "没有清掉梯度"),
    (step_no_step, "optimizer.step()"),
    (step_zero_in_between, "在 step 之前"),
    (step_loss_after, "更新参数之前"),
    (step_no_grad, "torch.no_grad"),
    (step_twice, "参数和标准的更新不一样"),
    (step_no_return, "return"),
])
def test_train_step_rejects_wrong_answers(fn, words, capsys) -> None:
    ok, out = verdict_of(tc.check_train_step, fn, capsys)
    assert not ok
    assert words in out, out


# ---------------------------------------------------------------------------------------------------
# Exercise 4: perplexity
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda t: math.exp(t.mean().item()),
    lambda t: torch.exp(t.mean()),
    lambda t: float(np.exp(np.mean(t.numpy()))),
    lambda t: math.exp(sum(t.tolist()) / len(t)),
    lambda t: math.e ** float(t.sum() / t.numel()),
])
def test_perplexity_accepts_correct_answers(fn, capsys) -> None:
    ok, out = verdict_of(tc.check_perplexity, fn, capsys)
    assert ok, out


@pytest.mark.parametrize("fn, words", [
    (lambda t: math.exp(t.sum().item()), "总和"),
    (lambda t: t.exp().mean().item(), "先取指数再平均"),
    (lambda t: 2 ** t.mean().item(), "2 的幂"),
    (lambda t: 10 ** t.mean().item(), "10 的幂"),
    (lambda t: t.mean().item(), "少了指数"),
    (lambda t: math.exp(-t.mean().item()), "符号反了"),
    (lambda t: "21128", "一个数"),
])
def test_perplexity_rejects_wrong_answers(fn, words, capsys) -> None:
    ok, out = verdict_of(tc.check_perplexity, fn, capsys)
    assert not ok
    assert words in out, out


def test_failures_offer_graduated_hints_without_the_solution(capsys) -> None:
    tc.check_perplexity(lambda t: math.exp(t.sum().item()))
    first = capsys.readouterr().out
    assert "提示 (hint) 1/" in first and "hint()" in first
    checks.hint()
    second = capsys.readouterr().out
    assert "提示 (hint) 2/" in second
    for text in (first, second):
        assert "def " not in text and "return math.exp" not in text
