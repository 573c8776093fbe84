"""Checkers for lab 09 (training): shifted labels, cross-entropy by hand, one optimisation step, perplexity.

They report through helpers.checks (one verdict line, the failing input, graduated hints via `hint()`),
compare with helpers.training (the code the lesson and training/train_standin.py use), and recognise
the usual mistakes (off-by-one shift, sum instead of mean, padding counted, log base, a step without
zero_grad, ...) so that hint level 1 names the mistake. No hint is the solution.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import training
from .checks import LearnerError, Mismatch, call, quiet, show, verdict

IGNORE = training.IGNORE_INDEX

# ---------------------------------------------------------------------------------------------------
# Exercise 1: inputs and targets, shifted by one.
# ---------------------------------------------------------------------------------------------------

SHIFT_MISTAKES: list[tuple[Callable[[torch.Tensor], tuple], str]] = [
    (lambda ids: (ids[:, 1:], ids[:, :-1]), "输入和目标弄反了：输入是去掉最后一个词元的序列，目标是去掉第一个词元的序列。"),
    (lambda ids: (ids, ids), "没有错开：目标要比输入往后错一位，每个位置的目标是紧跟在它后面的那个词元（ids[:, i + 1]）。"),
    (lambda ids: (ids[:-1], ids[1:]), "切错了维度：ids 的形状是 [批量大小, 序列长度]，要在序列那一维上切（ids[:, …]），"
                                      "不是在第 0 维（句子）上切。"),
    (lambda ids: (ids[:, :-1], ids[:, :-1]), "目标没有往后错一位：目标应该从第 2 个词元开始。"),
    (lambda ids: (ids[:, :-2], ids[:, 2:]), "错开了两位：只错一位，每个位置的目标是紧跟在它后面的那个词元。"),
    (lambda ids: (ids, ids[:, 1:]), "输入也要去掉最后一个词元：最后一个词元后面没有下一个词元可以预测，输入和目标一样长。"),
]
SHIFT_HINTS = [
    "每个位置预测它后面的那个词元，所以输入和目标是同一个序列错开一位：两者都比原序列短 1。",
    "用切片：输入去掉最后一列，目标去掉第一列；ids 是二维的 [批量大小, 序列长度]，切片要写在第二维上。",
]


def as_pair(answer: Any) -> Any:
    """(inputs, targets) as two nested lists, or the answer unchanged when it is not a pair."""
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return tuple(a.tolist() if isinstance(a, torch.Tensor) else a for a in answer)
    return answer


def check_shift(my_shift: Callable[[torch.Tensor], tuple]) -> bool:
    """`shift(ids) -> (inputs, targets)` for ids of shape [batch, seq]."""
    sentence = torch.tensor([[101, 791, 1921, 1921, 3698, 4696, 1962]])  # [CLS]今天天气真好
    batch = torch.tensor([[101, 2769, 1962, 511, 0], [101, 791, 1921, 1962, 8024], [101, 872, 1962, 0, 0]])
    cases = [(sentence, "一句话 [CLS]今天天气真好：7 个词元，得到 6 对（输入, 目标）。"),
             (batch, "三句话的一个批量 (batch)：每一行各自错开一位，行和行之间不能混。"),
             (torch.tensor([[101, 102], [101, 103]]), "每行只有两个词元：只有一对（输入, 目标）。")]

    def body() -> int:
        for ids, case_hint in cases:
            case = f"ids = {show(ids)}（形状 {tuple(ids.shape)}）"
            try:
                got = as_pair(call(my_shift, case, ids.clone()))
            except LearnerError as failure:
                failure.hint = case_hint
                raise
            expected = as_pair(training.shift_for_next_token(ids))
            if got is None:
                raise Mismatch(case, show(expected), "None", "函数没有返回任何东西：别忘了写 return inputs, targets。")
            if not isinstance(got, tuple):
                raise Mismatch(case, "两个值 (inputs, targets)", show(got), "请返回两个值：return inputs, targets。")
            if got != expected:
                hints = [h for wrong, h in SHIFT_MISTAKES if as_pair(wrong(ids)) == got] or [case_hint]
                raise Mismatch(case, f"inputs = {expected[0]}，targets = {expected[1]}",
                               f"inputs = {show(got[0])}，targets = {show(got[1])}", hints)
        return len(cases)

    return verdict("shift 把序列错开一位，得到输入和目标", body, SHIFT_HINTS)


# ---------------------------------------------------------------------------------------------------
# Exercise 2: cross-entropy by hand.
# ---------------------------------------------------------------------------------------------------


def _per_token(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-ln p of every shifted target (0 where ignored) and the mask of scored positions."""
    logits, targets = logits[:, :-1].float(), labels[:, 1:]
    mask = targets != IGNORE
    log_p = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -log_p * mask, mask


def _row_means(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    loss, mask = _per_token(logits, labels)
    return (loss.sum(1) / mask.sum(1)).mean()


def _padding_counted(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].clamp(min=0).flatten())


CE_MISTAKES: list[tuple[Callable[[torch.Tensor, torch.Tensor], Any], str]] = [
    (lambda lg, lb: F.cross_entropy(lg.flatten(0, 1).float(), lb.flatten(), ignore_index=IGNORE),
     "没有错开一位：位置 i 的 logits 预测的是紧跟在它后面的那个词元（labels[:, i + 1]），要用 logits 的前 n-1 个位置对标签的后 n-1 个。"),
    (lambda lg, lb: F.cross_entropy(lg[:, 1:].flatten(0, 1).float(), lb[:, :-1].flatten(), ignore_index=IGNORE),
     "错位的方向反了：丢掉的是 logits 的最后一个位置和标签的第一个词元。"),
    (lambda lg, lb: _per_token(lg, lb)[0].sum(), "求的是总和，要的是平均值：除以被计分的词元个数。"),
    (lambda lg, lb: _per_token(lg, lb)[0].sum() / _per_token(lg, lb)[1].sum() / math.log(10),
     "用了以 10 为底的对数：交叉熵用自然对数 ln（torch.log / log_softmax）。"),
    (lambda lg, lb: _per_token(lg, lb)[0].sum() / _per_token(lg, lb)[1].sum() / math.log(2),
     "用了以 2 为底的对数：交叉熵用自然对数 ln（torch.log / log_softmax）。"),
    (_row_means, "先对每句求平均、再对句子求平均，短句就占了太大的分量：应该把所有被计分的词元放在一起求一次平均。"),
    (_padding_counted, "把填充位置也算进去了：标签是 -100 的位置不计分，也不计入平均的分母。"),
    (lambda lg, lb: -(torch.softmax(lg[:, :-1].float(), -1).gather(-1, lb[:, 1:].clamp(min=0).unsqueeze(-1))
                      .squeeze(-1)[lb[:, 1:] != IGNORE]).mean(),
     "取的是 −p，少了对数：每个位置的损失是 −ln p。"),
    (lambda lg, lb: -(lg[:, :-1].float().gather(-1, lb[:, 1:].clamp(min=0).unsqueeze(-1))
                      .squeeze(-1)[lb[:, 1:] != IGNORE]).mean(),
     "直接用了 logits：要先 softmax（或 log_softmax）变成概率，再取 −ln p。"),
]
CE_HINTS = [
    "交叉熵 = 每个被计分的位置上 −ln p(正确的下一个词元) 的平均值；p 来自 softmax(logits)。",
    "先错开一位（和练习 1 一样：位置 i 的分数要和它后面那个词元的标签对齐），再在每个位置取出正确答案那个编号的 ln p；"
    "目标是 -100 的位置跳过。",
    "平均时，分母是被计分的位置一共有几个（整批放在一起数），不是所有位置的个数，也不是先每句平均再平均。",
]


def as_float(value: Any) -> Any:
    """A Python float from a float, a 0-d/1-element tensor or a numpy scalar; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().cpu().float())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if type(value).__name__.startswith("float") and hasattr(value, "item"):
        return float(value)
    return value


def expect_number(case: str, got: Any, expected: float, hint: Any, mistakes: list[tuple[Any, str]],
                  rel: float = 1e-4) -> None:
    """got (float or one-element tensor) ≈ expected; a known mistake's hint first."""
    value = as_float(got)
    if got is None:
        raise Mismatch(case, f"{expected:.4f}", "None", "函数没有返回任何东西：别忘了写 return。")
    if not isinstance(value, float):
        raise Mismatch(case, f"一个数 {expected:.4f}", show(got), "请返回一个数（Python 浮点数或只有一个元素的张量）。")
    if math.isclose(value, expected, rel_tol=rel, abs_tol=1e-5):
        return
    hints = []
    for wrong, wrong_hint in mistakes:
        wrong = as_float(wrong)
        if isinstance(wrong, float) and math.isclose(value, wrong, rel_tol=rel, abs_tol=1e-5):
            hints.append(wrong_hint)
            break
    raise Mismatch(case, f"{expected:.4f}", f"{value:.4f}", hints + ([hint] if hint else []))


def ce_cases(model: Any) -> list[tuple[str, torch.Tensor, torch.Tensor, str]]:
    """(description, logits, labels, hint) for the cross-entropy checker."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    sentence = torch.tensor([[101, 791, 1921, 1921, 3698, 4696, 1962]])
    if model is not None:
        with quiet(), torch.no_grad():
            logits = model(sentence).logits
        cases.append(("模型对 [CLS]今天天气真好 的 logits，labels = ids", logits, sentence.clone(),
                      "labels 就是 ids 本身：错开一位是在你的函数里做的。"))
        batch = training.collate([sentence[0].tolist(), [101, 2769, 1962, 511]])
        with quiet(), torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        cases.append(("两句话的批，第二句后面有 3 个填充位置（标签 -100）", logits, batch["labels"],
                      "标签是 -100 的位置是填充，不计分。"))
    labels = torch.tensor([[1, 4, 2, 7, 3, 0], [5, 5, 6, IGNORE, IGNORE, IGNORE]])
    logits = torch.randn(2, 6, 10, generator=generator) * 3
    cases.append(("随机 logits（10 个候选），第二句只有 3 个词元、后面是填充", logits, labels,
                  "长短不同的句子：所有被计分的词元放在一起平均。"))
    labels = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    logits = torch.randn(1, 8, 12, generator=generator)
    cases.append(("随机 logits（12 个候选），一句 8 个词元", logits, labels, "先 softmax 再取自然对数。"))
    return cases


def check_cross_entropy(my_cross_entropy: Callable[[torch.Tensor, torch.Tensor], Any], model: Any = None) -> bool:
    """`cross_entropy(logits, labels) -> float`: next-token cross-entropy, the same number as the model's loss."""
    cases = ce_cases(model)

    def body() -> int:
        for description, logits, labels, case_hint in cases:
            case = f"{description}；logits 形状 {tuple(logits.shape)}，labels = {show(labels)}"
            try:
                got = call(my_cross_entropy, case, logits.clone(), labels.clone())
            except LearnerError as failure:
                failure.hint = case_hint if IGNORE not in labels else \
                    "labels 里有 -100（填充位置）：它不是词元编号，取概率前要先把这些位置去掉。"
                raise
            expected = training.next_token_loss(logits, labels).item()
            known = []
            for wrong, wrong_hint in CE_MISTAKES:
                try:
                    known.append((wrong(logits.clone(), labels.clone()), wrong_hint))
                except Exception:  # a mistake that cannot be made on this input
                    pass
            expect_number(case, got, expected, case_hint, known)
        return len(cases)

    return verdict("cross_entropy 亲手算下一个词元的交叉熵", body, CE_HINTS)


# ---------------------------------------------------------------------------------------------------
# Exercise 3: one optimisation step.
# ---------------------------------------------------------------------------------------------------

STEP_HINTS = [
    "一步 = 算损失 → loss.backward() 求梯度 → optimizer.step() 更新参数 → 清掉梯度，准备下一步。",
    "PyTorch 会把每次 backward 的梯度累加到 .grad 上：每一步都要 optimizer.zero_grad()（放在 backward 之前或 step 之后都行）。",
    "损失可以用 model(**batch).loss（batch 里有 labels），也可以用练习 2 的函数；返回更新之前算出的那个损失，用 loss.item() 变成数。",
]


def _tiny_setup(optimizer_name: str, seed: int) -> tuple[Any, torch.optim.Optimizer]:
    model = training.tiny_gpt2(n_embd=16, n_layer=1, n_head=2, n_positions=16, vocab_size=40, seed=seed)
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    return model, optimizer


def _run(step: Callable[..., Any], optimizer_name: str, batch: dict, calls: int, seed: int,
         case: str | None = None) -> tuple[list[Any], list[torch.Tensor]]:
    """Losses returned by `calls` steps and the parameters after the last one."""
    model, optimizer = _tiny_setup(optimizer_name, seed)
    losses = []
    for _ in range(calls):
        batch_copy = {k: v.clone() for k, v in batch.items()}
        losses.append(call(step, case, model, optimizer, batch_copy) if case else step(model, optimizer, batch_copy))
    return losses, [p.detach().clone() for p in model.parameters()]


def _no_zero_grad(model, optimizer, batch):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def _no_step(model, optimizer, batch):
    optimizer.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.item()


def _loss_after(model, optimizer, batch):
    training.train_step(model, optimizer, batch, max_grad_norm=None)
    with torch.no_grad():
        return model(**batch).loss.item()


def _clipped(model, optimizer, batch):
    return training.train_step(model, optimizer, batch, max_grad_norm=0.1)


STEP_MISTAKES = [
    (_no_zero_grad, "没有清掉梯度：第二步的梯度加在了第一步的梯度上。每一步都要 optimizer.zero_grad()。"),
    (_no_step, "参数没有变：算完梯度后要调用 optimizer.step() 才会更新参数；如果调用了，看看是不是在 step 之前"
               "就清掉了梯度（那样 step 看到的梯度是空的）：清梯度要放在 backward 之前或 step 之后。"),
    (_clipped, "这个练习不裁剪梯度（clip_grad_norm_）：按说明只做最基本的一步，检查才能逐位比较。"),
]


def check_train_step(my_step: Callable[..., Any]) -> bool:
    """`train_one_step(model, optimizer, batch) -> float`: the loss before the update; parameters updated once."""
    batch = training.collate([[1, 5, 9, 12, 7, 3], [1, 8, 8, 2]])
    settings = [("sgd", 1, "SGD（学习率 0.5），只走 1 步", "走一步以后，参数应该和标准的一步完全一样。"),
                ("sgd", 3, "SGD（学习率 0.5），连续走 3 步", "连续走几步时，每一步只能用这一步自己的梯度。"),
                ("adamw", 3, "AdamW（学习率 0.01），连续走 3 步", "换一个优化器，代码不用改。")]

    def body() -> int:
        for optimizer_name, calls, description, case_hint in settings:
            case = f"一个随机初始化的小 GPT2（词表 40），{description}；batch 有两句话，第二句有填充"
            with quiet():
                try:
                    got_losses, got_params = _run(my_step, optimizer_name, batch, calls, seed=7, case=case)
                except LearnerError as failure:
                    failure.hint = "检查一下：是不是在 torch.no_grad() 里算了损失？那样就没法 backward。"
                    raise
                ref_losses, ref_params = _run(lambda m, o, b: training.train_step(m, o, b, max_grad_norm=None),
                                              optimizer_name, batch, calls, seed=7)
                wrong_runs = [(_run(fn, optimizer_name, batch, calls, seed=7), h) for fn, h in STEP_MISTAKES]
            if any(value is None for value in got_losses):
                raise Mismatch(case, "每一步返回一个损失（数）", "None", "函数没有返回损失：别忘了 return loss.item()。")
            values = [as_float(v) for v in got_losses]
            if not all(isinstance(v, float) for v in values):
                raise Mismatch(case, "一个数", show(got_losses[0]), "请返回一个数：loss.item()。")
            same_params = all(torch.allclose(g, r, atol=1e-5) for g, r in zip(got_params, ref_params))
            if not same_params:
                hints = [h for (_, params), h in wrong_runs
                         if all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got_params, params))] or [case_hint]
                changed = any(not torch.equal(g, s) for g, s in zip(got_params, _tiny_setup(optimizer_name, 7)[0]
                                                                    .parameters()))
                raise Mismatch(case, f"走 {calls} 步以后的参数和标准答案一样",
                               "参数一点没变" if not changed else "参数和标准的更新不一样", hints[:1])
            for index, (value, expected) in enumerate(zip(values, ref_losses)):
                if not math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-5):
                    raise Mismatch(f"{case}（第 {index + 1} 步）", f"{expected:.4f}", f"{value:.4f}",
                                   "返回的应该是这一步更新参数之前算出的损失（就是 backward 的那个 loss）。")
        return len(settings)

    return verdict("train_one_step 走一步优化", body, STEP_HINTS)


# ---------------------------------------------------------------------------------------------------
# Exercise 4: perplexity from the per-token losses.
# ---------------------------------------------------------------------------------------------------

PPL_MISTAKES: list[tuple[Callable[[torch.Tensor], float], str]] = [
    (lambda t: math.exp(float(t.sum())), "用的是总和的指数：困惑度 = exp(平均损失)，不是 exp(总损失)。"),
    (lambda t: float(t.exp().mean()), "先取指数再平均了：要先对损失求平均，再取指数。"),
    (lambda t: 2 ** float(t.mean()), "用了 2 的幂：损失是用自然对数 ln 算的，所以要用 e 的幂，exp。"),
    (lambda t: 10 ** float(t.mean()), "用了 10 的幂：损失是用自然对数 ln 算的，所以要用 e 的幂，exp。"),
    (lambda t: float(t.mean()), "少了指数：平均损失本身不是困惑度，要再取 exp。"),
    (lambda t: math.exp(-float(t.mean())), "符号反了：损失已经是 −ln p，直接 exp(平均损失)。"),
]
PPL_HINTS = [
    "困惑度 = exp(每个词元损失的平均值)：损失是 −ln p，平均以后取 e 的指数，变回“像在几个字里随便猜”。",
    "t.mean() 得到平均值；math.exp(…) 或 torch.exp(…) 取指数；返回一个 Python 浮点数（.item() 或 float(…)）。",
]


def check_perplexity(my_perplexity: Callable[[torch.Tensor], Any]) -> bool:
    """`perplexity(token_losses) -> float`: exp of the mean of the per-token losses (in nats)."""
    uniform = math.log(21128)
    cases = [
        (torch.tensor([2.0]), "只有一个词元：exp(2)。"),
        (torch.tensor([1.0, 3.0]), "两个词元：先平均（2.0），再取指数。"),
        (torch.tensor([0.0, 0.0, 0.0]), "每个词元都百分之百猜对（损失 0）：困惑度是 1。"),
        (torch.full((5,), uniform), "每个词元的损失都是 ln 21128：像在 21128 个字里随便猜。"),
        (torch.tensor([0.5, 1.5, 2.5, 3.5, 0.25, 4.0]), "长短不同的损失：先平均，再取指数。"),
    ]

    def body() -> int:
        for losses, case_hint in cases:
            case = f"token_losses = {show(losses)}"
            try:
                got = call(my_perplexity, case, losses.clone())
            except LearnerError as failure:
                failure.hint = case_hint
                raise
            known = []
            for wrong, wrong_hint in PPL_MISTAKES:
                try:
                    known.append((wrong(losses.clone()), wrong_hint))
                except (OverflowError, ValueError):
                    pass
            expect_number(case, got, math.exp(float(losses.mean())), case_hint, known)
        return len(cases)

    return verdict("perplexity 由每个词元的损失算困惑度", body, PPL_HINTS)

