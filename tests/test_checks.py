"""Mutation tests: the specification of the lab checkers.

For every checker: at least three correct answers written differently from the reference solution must
pass, and at least five plausible wrong answers (beginners' mistakes) must fail with a hint that names the
mistake. No hint level may contain a line of the reference solution. Stubs are reported as not implemented.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from helpers import checks
from helpers.generation import generate

ROOT = Path(__file__).resolve().parent.parent
INF = float("-inf")

# ================================================================================== lab 01


def split_turns_regex(text):
    return [t.strip() for t in re.split(r"\[SEP\]", text.replace("[CLS]", "")) if t.strip()]


def split_turns_loop(text):
    turns = []
    for piece in text.removeprefix("[CLS]").replace("[CLS]", "").split("[SEP]"):
        piece = piece.strip()
        if piece != "":
            turns.append(piece)
    return tuple(turns)


def split_turns_filter(text):
    return list(filter(None, map(str.strip, text.replace("[CLS]", "").split("[SEP]"))))


def reply_ids_loop(output_ids, prompt_len, sep_id):
    reply = []
    for token in output_ids[0].tolist()[prompt_len:]:
        if token == sep_id:
            break
        reply.append(token)
    return reply


def reply_ids_tensor(output_ids, prompt_len, sep_id):
    new = output_ids[0, prompt_len:]
    where = (new == sep_id).nonzero()
    return new[: where[0, 0]] if len(where) else new


def reply_ids_takewhile(output_ids, prompt_len, sep_id):
    return tuple(itertools.takewhile(lambda i: i != sep_id, output_ids.flatten().tolist()[prompt_len:]))


def reply_from_start(output_ids, prompt_len, sep_id):
    ids = output_ids[0].tolist()
    end = ids.index(sep_id) if sep_id in ids else len(ids)
    return ids[prompt_len:end]


def reply_with_sep(output_ids, prompt_len, sep_id):
    new = output_ids[0, prompt_len:].tolist()
    return new[: new.index(sep_id) + 1] if sep_id in new else new


def reply_last_sep(output_ids, prompt_len, sep_id):
    new = output_ids[0, prompt_len:].tolist()
    return new[: len(new) - 1 - new[::-1].index(sep_id)] if sep_id in new else new


def reply_with_prompt(output_ids, prompt_len, sep_id):
    ids = output_ids[0].tolist()
    new = ids[prompt_len:]
    return ids[: prompt_len + (new.index(sep_id) if sep_id in new else len(new))]


def reply_hard_coded_sep(output_ids, prompt_len, sep_id):
    new = output_ids[0, prompt_len:].tolist()
    return new[: new.index(102)] if 102 in new else new


def reply_no_stop(output_ids, prompt_len, sep_id):
    return output_ids[0, prompt_len:].tolist()


# ================================================================================== lab 02


def unknown_via_tokenize(tokenizer, text):
    found = []
    for ch in text:
        if ch.strip() and ch not in found and tokenizer.convert_tokens_to_ids(tokenizer.tokenize(ch)) == [tokenizer.unk_token_id]:
            found.append(ch)
    return found


def unknown_via_call(tokenizer, text):
    unk = tokenizer.unk_token_id
    return tuple(dict.fromkeys(c for c in text if not c.isspace()
                               and tokenizer(c, add_special_tokens=False)["input_ids"] == [unk]))


def unknown_via_tokens(tokenizer, text):
    result = []
    for ch in text:
        if ch.isspace() or ch in result:
            continue
        if tokenizer.tokenize(ch) == [tokenizer.unk_token]:
            result.append(ch)
    return result


def unknown_in_vocab(tokenizer, text):
    vocab = tokenizer.get_vocab()
    out = []
    for ch in text:
        if not ch.isspace() and ch not in vocab and ch not in out:
            out.append(ch)
    return out


def unknown_every_time(tokenizer, text):
    return [ch for ch in text if not ch.isspace() and tokenizer.encode(ch, add_special_tokens=False) == [100]]


def unknown_with_spaces(tokenizer, text):
    return list(dict.fromkeys(c for c in text if c.isspace() or tokenizer.encode(c, add_special_tokens=False) == [100]))


def unknown_with_specials(tokenizer, text):
    return list(dict.fromkeys(c for c in text if not c.isspace() and tokenizer.encode(c) == [100]))


def unknown_tokens_not_chars(tokenizer, text):
    return [t for t in tokenizer.tokenize(text) if t == "[UNK]"]


def decode_by_tokens(tokenizer, ids):
    """Rebuild the text from the tokens: a space only between two ASCII word pieces."""
    out = ""
    for token in tokenizer.convert_ids_to_tokens(list(ids)):
        if token.startswith("##"):
            out += token[2:]
            continue
        if out and out[-1].isascii() and out[-1] not in "[]" and token[0].isascii() and token[0] not in "[]":
            out += " "
        out += token
    return out


def decode_by_split(tokenizer, ids):
    words = tokenizer.decode(ids).split(" ")
    text = words[0] if words else ""
    for word in words[1:]:
        left, right = text[-1:], word[:1]
        keep = left.isascii() and right.isascii() and left not in "[]" and right not in "[]" and left and right
        text += (" " if keep else "") + word
    return text


def decode_by_regex(tokenizer, ids):
    text = tokenizer.decode(ids)
    text = re.sub(r" (?=[^ -~]|\[)", "", text)
    return re.sub(r"(?<=[^ -~]|\]) ", "", text)


# ------------------------------------------------------------------------------ BPE


def bpe_counter(words):
    counts = Counter(pair for word in words for pair in zip(word, word[1:]))
    if not counts:
        return None, [list(w) for w in words]
    best = counts.most_common(1)[0][0]  # equal counts keep the order first encountered
    merged = []
    for word in words:
        new, i = [], 0
        while i < len(word):
            if word[i:i + 2] == list(best):
                new.append(best[0] + best[1])
                i += 2
            else:
                new.append(word[i])
                i += 1
        merged.append(new)
    return best, merged


def bpe_pairs_list(words):
    pairs = [p for w in words for p in zip(w, w[1:])]
    if not pairs:
        return None, words
    best = max(pairs, key=lambda p: (pairs.count(p), -pairs.index(p)))
    out = []
    for word in words:
        merged, skip = [], False
        for a, b in zip(word, list(word[1:]) + [None]):
            if skip:
                skip = False
            elif (a, b) == best:
                merged.append(a + b)
                skip = True
            else:
                merged.append(a)
        out.append(tuple(merged))
    return list(best), out


def bpe_two_passes(words):
    counts = {}
    for word in words:
        for i in range(len(word) - 1):
            counts[(word[i], word[i + 1])] = counts.get((word[i], word[i + 1]), 0) + 1
    best, top = None, 0
    for pair, count in counts.items():
        if count > top:
            best, top = pair, count
    if best is None:
        return None, [list(w) for w in words]
    merged = []
    for word in words:
        rest, new = list(word), []
        while rest:
            if len(rest) > 1 and (rest[0], rest[1]) == best:
                new.append(rest.pop(0) + rest.pop(0))
            else:
                new.append(rest.pop(0))
        merged.append(new)
    return best, merged


def _counts(words, unique=False, across=False):
    seqs = [[s for w in words for s in w]] if across else words
    counts = {}
    for w in seqs:
        pairs = list(zip(w, w[1:]))
        for p in (dict.fromkeys(pairs) if unique else pairs):
            counts[p] = counts.get(p, 0) + 1
    return counts


def _merge(words, best):
    return checks.reference_bpe_merge_given(words, best) if best else [list(w) for w in words]


def bpe_alphabetical(words):
    c = _counts(words)
    best = min(c, key=lambda p: (-c[p], p)) if c else None
    return best, _merge(words, best)


def bpe_last_tie(words):
    c = _counts(words)
    best = [p for p in c if c[p] == max(c.values())][-1] if c else None
    return best, _merge(words, best)


def bpe_unique_per_word(words):
    c = _counts(words, unique=True)
    best = max(c, key=c.get) if c else None
    return best, _merge(words, best)


def bpe_across_words(words):
    c = _counts(words, across=True)
    best = max(c, key=c.get) if c else None
    return best, _merge(words, best)


def bpe_not_merged(words):
    c = _counts(words)
    return (max(c, key=c.get) if c else None), [list(w) for w in words]


def bpe_overlapping_merge(words):
    c = _counts(words)
    best = max(c, key=c.get) if c else None
    out = []
    for w in words:
        new = [a + b for a, b in zip(w, w[1:]) if (a, b) == best]
        out.append(new if new else list(w))
    return best, out


# ================================================================================== lab 03


def rms_sqrt(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rms_functional(x, weight, eps):
    return F.rms_norm(x, (x.size(-1),), weight, eps)


def rms_by_norm(x, weight, eps):
    d = x.size(-1)
    return weight * x / torch.sqrt(x.norm(dim=-1, keepdim=True) ** 2 / d + eps)


def swiglu_functional(x, g, u, d):
    return F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d)


def swiglu_sigmoid(x, g, u, d):
    gate = x @ g.T
    return (gate * torch.sigmoid(gate) * (x @ u.T)) @ d.T


def swiglu_einsum(x, g, u, d):
    gate = torch.einsum("...i,oi->...o", x, g)
    up = torch.einsum("...i,oi->...o", x, u)
    return torch.einsum("...i,oi->...o", F.silu(gate) * up, d)


def attention_tril(q, k, v):
    n, d = q.shape
    scores = (q @ k.T) / d ** 0.5
    scores = scores.masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool)), INF)
    return scores.softmax(dim=-1) @ v


def attention_sdpa(q, k, v):
    return F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]


def attention_additive(q, k, v):
    n = q.size(0)
    mask = torch.full((n, n), INF).triu(1)
    return torch.softmax(q @ k.transpose(0, 1) / math.sqrt(q.size(1)) + mask, dim=1) @ v


def _att(q, k, v, scale, mask, dim=-1):
    n = q.size(0)
    s = q @ k.T / scale
    if mask is not None:
        s = s.masked_fill(mask(n), INF)
    return torch.softmax(s, dim) @ v


def rotate_half(x):
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def make_llama_forward(norm=rms_sqrt, mlp_fn=swiglu_sigmoid, attention=attention_tril, residual=True,
                       final_norm=True, rope=True, modulo=False, own_rope=False, batch=False, projections="weights"):
    def llama_forward(model, input_ids):
        with torch.no_grad():
            h = model.model.embed_tokens(input_ids)[0]
            T = h.shape[0]
            cos, sin = model.model.rotary_emb(h[None], torch.arange(T)[None])
            for layer in model.model.layers:
                a, m = layer.self_attn, layer.mlp
                x = norm(h, layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon)
                if projections == "modules":
                    q, k, v = a.q_proj(x), a.k_proj(x), a.v_proj(x)
                else:
                    q, k, v = F.linear(x, a.q_proj.weight), F.linear(x, a.k_proj.weight), F.linear(x, a.v_proj.weight)
                q, k, v = (t.reshape(T, -1, a.head_dim).permute(1, 0, 2) for t in (q, k, v))
                if rope and own_rope:
                    q, k = q * cos[0] + rotate_half(q) * sin[0], k * cos[0] + rotate_half(k) * sin[0]
                elif rope:
                    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
                    q, k = (t[0] for t in apply_rotary_pos_emb(q[None], k[None], cos, sin))
                n_kv = k.shape[0]
                group = q.shape[0] // n_kv
                heads = [attention(q[i], k[i % n_kv if modulo else i // group], v[i % n_kv if modulo else i // group])
                         for i in range(q.shape[0])]
                out = torch.cat(heads, -1) @ a.o_proj.weight.T
                h = h + out if residual else out
                x = norm(h, layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon)
                out = mlp_fn(x, m.gate_proj.weight, m.up_proj.weight, m.down_proj.weight)
                h = h + out if residual else out
            if final_norm:
                h = norm(h, model.model.norm.weight, model.model.norm.variance_epsilon)
            logits = model.lm_head(h)
            return logits[None] if batch else logits
    return llama_forward


# ================================================================================== lab 04


def softmax_builtin(x, temperature=1.0):
    return torch.softmax(x / temperature, dim=-1)


def softmax_logsumexp(x, temperature=1.0):
    z = x / temperature
    return torch.exp(z - torch.logsumexp(z, dim=-1, keepdim=True))


def softmax_log(x, temperature=1.0):
    return (x / temperature).log_softmax(-1).exp()


def top_k_sort(x, k):
    k = min(k, x.size(-1))
    kth = x.sort(dim=-1, descending=True).values[..., k - 1:k]
    return torch.where(x >= kth, x, torch.full_like(x, INF))


def top_k_min(x, k):
    smallest_kept = x.topk(min(k, x.size(-1)), dim=-1).values.min(dim=-1, keepdim=True).values
    return x.masked_fill(x < smallest_kept, INF)


def top_k_rows(x, k):
    rows = x.reshape(-1, x.size(-1)).clone()
    for row in rows:
        ranked = sorted(row.tolist(), reverse=True)
        threshold = ranked[min(k, len(ranked)) - 1]
        row[row < threshold] = INF
    return rows.reshape(x.shape)


def top_p_gather(x, p):
    probs = torch.softmax(x, -1)
    sorted_probs, order = probs.sort(-1, descending=True)
    keep_sorted = torch.cumsum(sorted_probs, -1) - sorted_probs < p
    keep = keep_sorted.gather(-1, order.argsort(-1))
    return torch.where(keep, x, torch.full_like(x, INF))


def top_p_loop(x, p):
    out = x.clone().reshape(-1, x.size(-1))
    for row in out:
        probs = torch.softmax(row, -1)
        mass = 0.0
        for index in probs.argsort(descending=True).tolist():
            if mass >= p:
                row[index] = INF
            mass += probs[index].item()
    return out.reshape(x.shape)


def top_p_shifted(x, p):
    probs = x.softmax(-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    cum = sorted_probs.cumsum(-1)
    remove_sorted = cum > p
    remove_sorted[..., 1:] = remove_sorted[..., :-1].clone()
    remove_sorted[..., 0] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return x.masked_fill(remove, INF)


def _scores(logits, temperature, top_k, top_p):
    s = logits / temperature
    if top_k is not None:
        s = top_k_min(s, top_k)
    if top_p is not None:
        s = top_p_gather(s, top_p)
    return s


def sample_multinomial(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax().item()
    return torch.multinomial(softmax_builtin(_scores(logits, temperature, top_k, top_p)), 1, generator=generator).item()


def sample_inverse_cdf(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if not temperature:
        return int(torch.argmax(logits))
    probs = torch.softmax(_scores(logits, temperature, top_k, top_p), -1)
    u = torch.rand(1, generator=generator)
    return min(int(torch.searchsorted(probs.cumsum(0), u)), len(probs) - 1)


def sample_tensor_result(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return torch.argmax(logits)
    from helpers.sampling import next_token_probs
    return torch.multinomial(next_token_probs(logits, temperature, top_k, top_p), 1, generator=generator)


def sample_top_p_first(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return int(logits.argmax())
    s = logits
    if top_k is not None:
        s = top_k_min(s, top_k)
    if top_p is not None:
        s = top_p_gather(s, top_p)
    return int(torch.multinomial(torch.softmax(s / temperature, -1), 1, generator=generator))


def sample_sorted_position(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(_scores(logits, temperature, top_k, top_p), -1)
    return int(torch.multinomial(probs.sort(descending=True).values, 1, generator=generator))


def sample_no_temperature(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return int(logits.argmax())
    return int(torch.multinomial(torch.softmax(_scores(logits, 1.0, top_k, top_p), -1), 1, generator=generator))


def sample_global_rng(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return int(logits.argmax())
    return int(torch.multinomial(torch.softmax(_scores(logits, temperature, top_k, top_p), -1), 1))


def sample_uniform_kept(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return int(logits.argmax())
    kept = torch.isfinite(_scores(logits, temperature, top_k, top_p)).float()
    return int(torch.multinomial(kept / kept.sum(), 1, generator=generator))


def sample_always_argmax(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return int(logits.argmax())


def penalty_loop(logits, generated_ids, penalty):
    out = logits.clone()
    for i in {int(i) for i in generated_ids}:
        out[i] = out[i] / penalty if out[i] > 0 else out[i] * penalty
    return out


def penalty_gather(logits, generated_ids, penalty):
    ids = torch.as_tensor([int(i) for i in generated_ids], dtype=torch.long)
    score = logits.gather(0, ids)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(0, ids, score)


def penalty_mask(logits, generated_ids, penalty):
    seen = torch.zeros_like(logits, dtype=torch.bool)
    seen[[int(i) for i in generated_ids]] = True
    return torch.where(seen & (logits > 0), logits / penalty, torch.where(seen, logits * penalty, logits))


def _penalise(logits, ids, rule, once=True):
    out = logits.clone()
    ids = [int(i) for i in ids]
    for i in (dict.fromkeys(ids) if once else ids):
        out[i] = rule(out[i])
    return out


# ================================================================================== lab 05


def probs_max(model, input_ids, steps):
    chosen = []
    with torch.no_grad():
        for _ in range(steps):
            probs = model(input_ids).logits[:, -1].softmax(-1)
            p, i = probs.max(dim=-1)
            chosen.append(p)
            input_ids = torch.cat([input_ids, i[:, None]], dim=1)
    return input_ids, chosen


def probs_log_softmax(model, input_ids, steps):
    ids, out = input_ids[0].tolist(), []
    for _ in range(steps):
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1], -1)
        best = int(logp.argmax())
        out.append(math.exp(logp[best].item()))
        ids.append(best)
    return torch.tensor([ids]), out


def probs_forward_method(model, input_ids, steps):
    probs = []
    torch.set_grad_enabled(False)
    for _ in range(steps):
        out = model.forward(input_ids=input_ids)
        dist = F.softmax(out.logits[0, -1], dim=0)
        nxt = torch.argmax(dist)
        probs.append(float(dist[nxt]))
        input_ids = torch.cat((input_ids, nxt.view(1, 1)), dim=-1)
    torch.set_grad_enabled(True)
    return (input_ids[0], probs)


def probs_logits(model, input_ids, steps):
    values = []
    for _ in range(steps):
        logits = model(input_ids).logits[0, -1]
        values.append(logits.max().item())
        input_ids = torch.cat([input_ids, logits.argmax().view(1, 1)], 1)
    return input_ids, values


def probs_log(model, input_ids, steps):
    ids, probs = probs_max(model, input_ids, steps)
    return ids, [math.log(float(p)) for p in probs]


def probs_generate(model, input_ids, steps):
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=steps,
                         min_new_tokens=steps, do_sample=False, output_scores=True, return_dict_in_generate=True,
                         pad_token_id=0, eos_token_id=None)
    probs = [float(s.softmax(-1).max()) for s in out.scores]
    return out.sequences, probs


def probs_first_position(model, input_ids, steps):
    chosen = []
    for _ in range(steps):
        probs = model(input_ids).logits[:, 0].softmax(-1)
        chosen.append(float(probs.max()))
        input_ids = torch.cat([input_ids, probs.argmax(-1, keepdim=True)], 1)
    return input_ids, chosen


def probs_with_cache(model, input_ids, steps):
    chosen, cache, fed = [], None, input_ids
    for _ in range(steps):
        out = model(fed, cache=cache, use_cache=True)
        cache = out.cache
        probs = out.logits[:, -1].softmax(-1)
        fed = probs.argmax(-1, keepdim=True)
        chosen.append(float(probs.max()))
        input_ids = torch.cat([input_ids, fed], 1)
    return input_ids, chosen


def probs_prompt_only(model, input_ids, steps):
    chosen = []
    prompt = input_ids
    for _ in range(steps):
        probs = model(prompt).logits[:, -1].softmax(-1)
        chosen.append(float(probs.max()))
        input_ids = torch.cat([input_ids, probs.argmax(-1, keepdim=True)], 1)
    return input_ids, chosen


def until_while(model, input_ids, max_steps, stop_id):
    steps = 0
    while steps < max_steps:
        nxt = model(input_ids).logits[:, -1].argmax(-1, keepdim=True)
        input_ids = torch.cat([input_ids, nxt], dim=1)
        steps += 1
        if nxt.item() == stop_id:
            break
    return input_ids


def until_list(model, input_ids, max_steps, stop_id):
    ids = input_ids[0].tolist()
    for _ in range(max_steps):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        if ids[-1] == stop_id:
            return ids
    return ids


def until_any(model, input_ids, max_steps, stop_id):
    new = []
    for _ in range(max_steps):
        if new and new[-1] == stop_id:
            break
        ids = torch.cat([input_ids, torch.tensor([new], dtype=torch.long)], 1)
        new.append(model(ids).logits[0, -1].argmax().item())
    return torch.cat([input_ids, torch.tensor([new], dtype=torch.long)], 1)


def until_in_sequence(model, input_ids, max_steps, stop_id):
    for _ in range(max_steps):
        nxt = model(input_ids).logits[:, -1].argmax(-1, keepdim=True)
        input_ids = torch.cat([input_ids, nxt], dim=1)
        if stop_id in input_ids[0]:
            break
    return input_ids


def until_drops_stop(model, input_ids, max_steps, stop_id):
    for _ in range(max_steps):
        nxt = model(input_ids).logits[:, -1].argmax(-1, keepdim=True)
        if nxt.item() == stop_id:
            break
        input_ids = torch.cat([input_ids, nxt], dim=1)
    return input_ids


def until_off_by_one(model, input_ids, max_steps, stop_id):
    for _ in range(max_steps + 1):
        nxt = model(input_ids).logits[:, -1].argmax(-1, keepdim=True)
        input_ids = torch.cat([input_ids, nxt], dim=1)
        if nxt.item() == stop_id:
            break
    return input_ids


def until_generate(model, input_ids, max_steps, stop_id):
    if max_steps == 0:
        return input_ids
    return model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_steps,
                          do_sample=False, eos_token_id=stop_id, pad_token_id=0)


def until_ignores_stop(model, input_ids, max_steps, stop_id):
    for _ in range(max_steps):
        nxt = model(input_ids).logits[:, -1].argmax(-1, keepdim=True)
        input_ids = torch.cat([input_ids, nxt], dim=1)
    return input_ids


def until_checks_last_before(model, input_ids, max_steps, stop_id):
    for _ in range(max_steps):
        if input_ids[0, -1].item() == stop_id:
            break
        nxt = model(input_ids).logits[:, -1].argmax(-1, keepdim=True)
        input_ids = torch.cat([input_ids, nxt], dim=1)
    return input_ids


# ================================================================================== lab 06

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml_fstring(history, system=None):
    text = f"<|im_start|>system\n{system or DEFAULT_SYSTEM}<|im_end|>\n"
    for i, turn in enumerate(history):
        text += f"<|im_start|>{'user' if i % 2 == 0 else 'assistant'}\n{turn}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def chatml_parts(history, system=None):
    messages = [("system", system if system is not None else DEFAULT_SYSTEM)]
    messages += [(("user", "assistant")[i % 2], turn) for i, turn in enumerate(history)]
    return "".join("<|im_start|>" + role + "\n" + content + "<|im_end|>\n" for role, content in messages) \
        + "<|im_start|>assistant\n"


def make_chatml_template(tokenizer):
    def chatml_template(history, system=None):
        roles = itertools.cycle(["user", "assistant"])
        messages = [{"role": next(roles), "content": turn} for turn in history]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return chatml_template


def chatml_no_generation_prompt(history, system=None):
    return chatml_fstring(history, system).removesuffix("<|im_start|>assistant\n")


def chatml_all_user(history, system=None):
    text = f"<|im_start|>system\n{system or DEFAULT_SYSTEM}<|im_end|>\n"
    return text + "".join(f"<|im_start|>user\n{t}<|im_end|>\n" for t in history) + "<|im_start|>assistant\n"


def chatml_no_default(history, system=None):
    text = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    for i, turn in enumerate(history):
        text += f"<|im_start|>{'user' if i % 2 == 0 else 'assistant'}\n{turn}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def chatml_no_newlines(history, system=None):
    return chatml_fstring(history, system).replace("<|im_end|>\n", "<|im_end|>")


def chatml_swapped_roles(history, system=None):
    text = f"<|im_start|>system\n{system or DEFAULT_SYSTEM}<|im_end|>\n"
    for i, turn in enumerate(history):
        text += f"<|im_start|>{'assistant' if i % 2 == 0 else 'user'}\n{turn}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def chat_reply_generate(model, tokenizer, history, max_new_tokens=30):
    if max_new_tokens == 0:
        return ""
    prompt = "[CLS]" + "".join(turn + "[SEP]" for turn in history)
    return generate(model, tokenizer, prompt, max_new_tokens, stop_tokens=("[SEP]",)).text.split("[SEP]")[0].strip()


def chat_reply_keeps_sep(model, tokenizer, history, max_new_tokens=30):
    if max_new_tokens == 0:
        return ""
    return generate(model, tokenizer, "[CLS]" + "".join(t + "[SEP]" for t in history), max_new_tokens,
                    stop_tokens=("[SEP]",)).text.strip()


def _sep_tokens(tokenizer, turns):
    from helpers.tokens import encode
    return len(encode(tokenizer, "[CLS]" + "".join(t + "[SEP]" for t in turns)))


def fit_drop_pairs(tokenizer, history, max_tokens):
    kept = list(history)
    while _sep_tokens(tokenizer, kept) > max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[2:]
    return kept


def fit_backwards(tokenizer, history, max_tokens):
    """Grow from the newest turn backwards, a reply and its user turn at a time."""
    count = lambda turns: len(tokenizer("[CLS]" + "[SEP]".join(turns) + "[SEP]", add_special_tokens=False)["input_ids"])
    if count(history[-1:]) > max_tokens:
        raise ValueError(f"最新的一句放不下 {max_tokens} 个词元")
    n = 1
    while n + 2 <= len(history) and count(history[-(n + 2):]) <= max_tokens:
        n += 2
    return tuple(history[-n:])


def fit_sum_of_turns(tokenizer, history, max_tokens):
    """[CLS] and every [SEP] are one token each, so the prompt's length is a sum."""
    sizes = [len(tokenizer.encode(t, add_special_tokens=False)) + 1 for t in history]
    for start in range(0, len(history), 2):
        if 1 + sum(sizes[start:]) <= max_tokens:
            return history[start:]
    raise ValueError("the last turn is too long")


def fit_no_raise(tokenizer, history, max_tokens):
    kept = list(history)
    while kept and _sep_tokens(tokenizer, kept) > max_tokens:
        kept = kept[2:]
    return kept


def fit_pops_history(tokenizer, history, max_tokens):
    while _sep_tokens(tokenizer, history) > max_tokens:
        if len(history) == 1:
            raise ValueError("太长")
        history.pop(0)
        history.pop(0)
    return history


def fit_returns_prompt(tokenizer, history, max_tokens):
    return "[CLS]" + "".join(t + "[SEP]" for t in fit_drop_pairs(tokenizer, history, max_tokens))


def fit_counts_characters(tokenizer, history, max_tokens):
    kept = list(history)
    while len("[CLS]" + "".join(t + "[SEP]" for t in kept)) > max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[2:]
    return kept


def fit_counts_specials_twice(tokenizer, history, max_tokens):
    kept = list(history)
    while len(tokenizer.encode("[CLS]" + "".join(t + "[SEP]" for t in kept))) > max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[2:]
    return kept


def fit_one_at_a_time(tokenizer, history, max_tokens):
    kept = list(history)
    while _sep_tokens(tokenizer, kept) > max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[1:]
    return kept


def fit_strictly_below(tokenizer, history, max_tokens):
    kept = list(history)
    while _sep_tokens(tokenizer, kept) >= max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[2:]
    return kept


def fit_keeps_oldest(tokenizer, history, max_tokens):
    kept = list(history)
    while _sep_tokens(tokenizer, kept) > max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[:-2]
    return kept


def fit_forgets_cls(tokenizer, history, max_tokens):
    kept = list(history)
    while len(tokenizer.encode("".join(t + "[SEP]" for t in kept), add_special_tokens=False)) > max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[2:]
    return kept


def fit_join_without_last_sep(tokenizer, history, max_tokens):
    start = 0
    while len(tokenizer.encode("[CLS]" + "[SEP]".join(history[start:]), add_special_tokens=False)) > max_tokens:
        if start + 1 >= len(history):
            raise ValueError("太长")
        start += 2
    return history[start:]


def fit_tokenizer_adds_cls(tokenizer, history, max_tokens):
    """The prompt without [CLS], the tokenizer adds [CLS] ... [SEP]: one [SEP] too many."""
    kept = list(history)
    while len(tokenizer("".join(t + "[SEP]" for t in kept))["input_ids"]) > max_tokens:
        if len(kept) == 1:
            raise ValueError("太长")
        kept = kept[2:]
    return kept


def chatml_no_final_newline(history, system=None):
    return chatml_fstring(history, system)[:-1]


def chatml_space_after_role(history, system=None):
    return chatml_fstring(history, system).replace("system\n", "system \n").replace("user\n", "user \n")


def fit_raises_type_error(tokenizer, history, max_tokens):
    if _sep_tokens(tokenizer, history[-1:]) > max_tokens:
        raise TypeError("太长")
    return fit_drop_pairs(tokenizer, history, max_tokens)


# ================================================================================== lab 07


def glm_marked(tokens, spans):
    start_of = {s: e for s, e in spans}
    part_a, i = [], 0
    while i < len(tokens):
        if i in start_of:
            part_a.append("[M]")
            i = start_of[i]
        else:
            part_a.append(tokens[i])
            i += 1
    inputs, targets = list(part_a), ["-"] * len(part_a)
    for s, e in spans:
        inputs += ["[S]"] + tokens[s:e]
        targets += tokens[s:e] + ["[E]"]
    return inputs, targets


def glm_sorted_a(tokens, spans):
    a, last = [], 0
    for s, e in sorted(spans):
        a.extend(tokens[last:s])
        a.append("[M]")
        last = e
    a.extend(tokens[last:])
    b_in = [x for s, e in spans for x in ["[S]", *tokens[s:e]]]
    b_out = [x for s, e in spans for x in [*tokens[s:e], "[E]"]]
    return tuple(a + b_in), tuple(["-"] * len(a) + b_out)


def glm_by_position(tokens, spans):
    hidden = {i: (s, e) for s, e in spans for i in range(s, e)}
    a = [("[M]" if i == hidden[i][0] else None) if i in hidden else t for i, t in enumerate(tokens)]
    a = [t for t in a if t is not None]
    inputs, targets = a[:], ["-"] * len(a)
    for s, e in spans:
        span = tokens[s:e]
        inputs += ["[S]"] + span
        targets += span + ["[E]"]
    return inputs, targets


def glm_old_style(tokens, spans):
    inputs, targets = glm_marked(tokens, spans)
    n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
    b_in, b_t = [], []
    for s, e in spans:
        b_in += ["[S]"] + tokens[s:e] + ["[E]"]
        b_t += tokens[s:e] + ["[E]", "-"]
    return inputs[:n_a] + b_in, targets[:n_a] + b_t


def glm_b_sorted(tokens, spans):
    return glm_marked(tokens, sorted(spans))


def glm_a_in_given_order(tokens, spans):
    a, last = [], 0
    for s, e in spans:
        a += tokens[last:s] + ["[M]"]
        last = e
    a += tokens[last:]
    inputs, targets = glm_marked(tokens, spans)
    n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
    return a + inputs[n_a:], ["-"] * len(a) + targets[n_a:]


def glm_mask_per_token(tokens, spans):
    hidden = {i for s, e in spans for i in range(s, e)}
    a = ["[M]" if i in hidden else t for i, t in enumerate(tokens)]
    inputs, targets = glm_marked(tokens, spans)
    n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
    return a + inputs[n_a:], ["-"] * len(a) + targets[n_a:]


def glm_targets_are_inputs(tokens, spans):
    inputs, targets = glm_marked(tokens, spans)
    n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
    return inputs, targets[:n_a] + inputs[n_a:]


def glm_targets_for_a(tokens, spans):
    inputs, targets = glm_marked(tokens, spans)
    n_a = len(inputs) - sum(e - s + 1 for s, e in spans)
    return inputs, inputs[1:n_a + 1] + targets[n_a:]


def visibility_plus_one(forward, input_ids):
    base = forward(input_ids)
    n = input_ids.size(1)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for j in range(n):
        changed = input_ids.clone()
        changed[0, j] += 1
        mask[:, j] = (forward(changed) - base).abs().amax(-1)[0] > 1e-5
    return mask


def visibility_isclose(forward, input_ids):
    base = forward(input_ids)[0]
    rows = []
    for j in range(input_ids.size(1)):
        ids = input_ids.clone()
        ids[0, j] = ids[0, j] + 7
        out = forward(ids)[0]
        rows.append([not torch.allclose(out[i], base[i], atol=1e-4) for i in range(len(base))])
    return torch.tensor(rows).T.int()


def visibility_lists(forward, input_ids):
    n = input_ids.shape[1]
    base = forward(input_ids)
    result = [[0] * n for _ in range(n)]
    for j in range(n):
        ids = input_ids.clone()
        ids[0, j] = 0 if ids[0, j] != 0 else 1
        diff = (forward(ids) - base).abs()
        for i in range(n):
            result[i][j] = int(diff[0, i].max() > 1e-4)
    return result


def visibility_transposed(forward, input_ids):
    return visibility_plus_one(forward, input_ids).T


def visibility_assumes_causal(forward, input_ids):
    n = input_ids.size(1)
    return torch.ones(n, n, dtype=torch.bool).tril()


def visibility_changes_suffix(forward, input_ids):
    base = forward(input_ids)
    n = input_ids.size(1)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for j in range(n):
        changed = input_ids.clone()
        changed[0, j:] += 1
        mask[:, j] = (forward(changed) - base).abs().amax(-1)[0] > 1e-5
    return mask


def visibility_whole_output(forward, input_ids):
    base = forward(input_ids)
    n = input_ids.size(1)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for j in range(n):
        changed = input_ids.clone()
        changed[0, j] += 1
        mask[:, j] = not torch.allclose(forward(changed), base)
    return mask


def visibility_no_diagonal(forward, input_ids):
    mask = visibility_plus_one(forward, input_ids)
    return mask & ~torch.eye(len(mask), dtype=torch.bool)


# ================================================================================== lab 08


def kv_cache_keyword(model, input_ids, steps):
    cache, fed = None, input_ids
    with torch.no_grad():
        for _ in range(steps):
            out = model(input_ids=fed, cache=cache, use_cache=True)
            cache = out.cache
            fed = out.logits[:, -1:].argmax(-1)
            input_ids = torch.cat([input_ids, fed], dim=1)
    return input_ids


def kv_past_key_values(model, input_ids, steps):
    past, ids = None, input_ids[0].tolist()
    n = len(ids)
    for step in range(steps):
        fed = torch.tensor([ids if step == 0 else ids[-1:]])
        out = model(fed, past_key_values=past, use_cache=True)
        past = out.past_key_values
        ids.append(int(out.logits[0, -1].argmax()))
    assert len(ids) == n + steps
    return ids


def kv_stack_and_head(model, input_ids, steps):
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config)
    fed, result = input_ids, input_ids
    with torch.no_grad():
        for _ in range(steps):
            hidden = model.model(input_ids=fed, cache=cache, use_cache=True).last_hidden_state
            fed = model.lm_head(hidden[:, -1]).argmax(-1, keepdim=True)
            result = torch.cat([result, fed], 1)
    return result


def kv_no_cache(model, input_ids, steps):
    for _ in range(steps):
        input_ids = torch.cat([input_ids, model(input_ids).logits[:, -1:].argmax(-1)], 1)
    return input_ids


def kv_generate(model, input_ids, steps):
    if steps == 0:
        return input_ids
    return model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=steps,
                          min_new_tokens=steps, do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0)


def kv_whole_sequence_with_cache(model, input_ids, steps):
    cache = None
    for _ in range(steps):
        out = model(input_ids, cache=cache, use_cache=True)
        cache = out.cache
        input_ids = torch.cat([input_ids, out.logits[:, -1:].argmax(-1)], 1)
    return input_ids


def kv_forgets_cache(model, input_ids, steps):
    fed = input_ids
    for _ in range(steps):
        out = model(fed, use_cache=True)
        fed = out.logits[:, -1:].argmax(-1)
        input_ids = torch.cat([input_ids, fed], 1)
    return input_ids


def kv_extra_forward(model, input_ids, steps):
    out = model(input_ids, use_cache=True)
    cache = out.cache
    for _ in range(steps):
        fed = out.logits[:, -1:].argmax(-1)
        input_ids = torch.cat([input_ids, fed], 1)
        out = model(fed, cache=cache, use_cache=True)
        cache = out.cache
    return input_ids


def kv_first_call_even_for_zero_steps(model, input_ids, steps):
    first = model(input_ids, use_cache=True)
    fed = first.logits[:, -1:].argmax(-1)
    result = torch.cat([input_ids, fed], 1) if steps else input_ids
    for _ in range(steps - 1):
        out = model(fed, cache=first.cache, use_cache=True)
        fed = out.logits[:, -1:].argmax(-1)
        result = torch.cat([result, fed], 1)
    return result


def attend_cat(q, k_cache, v_cache, k, v):
    keys = torch.cat([k_cache, k.unsqueeze(0)], dim=0)
    values = torch.cat([v_cache, v.unsqueeze(0)], dim=0)
    weights = torch.softmax(keys @ q / math.sqrt(q.numel()), dim=0)
    return weights @ values, keys, values


def attend_sdpa(q, k_cache, v_cache, k, v):
    keys, values = torch.vstack([k_cache, k]), torch.vstack([v_cache, v])
    out = F.scaled_dot_product_attention(q[None, None], keys[None], values[None])
    return out[0], keys, values


def attend_manual_exp(q, k_cache, v_cache, k, v):
    keys = torch.cat((k_cache, k[None, :]))
    values = torch.cat((v_cache, v[None, :]))
    scores = (keys * q).sum(-1) / q.shape[-1] ** 0.5
    w = torch.exp(scores - scores.max())
    return (w / w.sum()) @ values, keys, values


def _attend(q, keys, values, scale):
    return torch.softmax(keys @ q / scale, -1) @ values


def attend_no_scale(q, kc, vc, k, v):
    keys, values = torch.cat([kc, k[None]]), torch.cat([vc, v[None]])
    return _attend(q, keys, values, 1.0), keys, values


def attend_scale_d(q, kc, vc, k, v):
    keys, values = torch.cat([kc, k[None]]), torch.cat([vc, v[None]])
    return _attend(q, keys, values, q.numel()), keys, values


def attend_past_only(q, kc, vc, k, v):
    return _attend(q, kc, vc, math.sqrt(q.numel())), torch.cat([kc, k[None]]), torch.cat([vc, v[None]])


def attend_prepends(q, kc, vc, k, v):
    keys, values = torch.cat([k[None], kc]), torch.cat([v[None], vc])
    return _attend(q, keys, values, math.sqrt(q.numel())), keys, values


def attend_cache_unchanged(q, kc, vc, k, v):
    keys, values = torch.cat([kc, k[None]]), torch.cat([vc, v[None]])
    return _attend(q, keys, values, math.sqrt(q.numel())), kc, vc


def attend_only_self(q, kc, vc, k, v):
    return v.clone(), torch.cat([kc, k[None]]), torch.cat([vc, v[None]])


# ================================================================================== the table
# name: (checker, fixture the checker needs, right answers, [(wrong answer, text its first hint must contain)])


def stub(*args, **kwargs):
    raise NotImplementedError("练习 1：请在这里写你的代码")


SPEC = {
    "split_turns": (checks.check_split_turns, None, [split_turns_regex, split_turns_loop, split_turns_filter], [
        (lambda t: t.split("[SEP]"), "split 的结果"),
        (lambda t: [p.strip() for p in t.replace("[CLS]", "").split("[SEP]")], "空片段"),
        (lambda t: [p for p in t.replace("[CLS]", "").split("[SEP]") if p], "两头的空格"),
        (lambda t: [p.strip() for p in t.split("[SEP]") if p.strip()], "[CLS] 不属于任何一轮"),
        (lambda t: [p.strip() for p in t.replace("[CLS]", "").split("[SEP]")[:-1] if p.strip()], "最后一段没有 [SEP]"),
    ]),
    "reply_ids": (checks.check_reply_ids, None, [reply_ids_loop, reply_ids_tensor, reply_ids_takewhile], [
        (reply_from_start, "提示词里的 [SEP] 也当成了停止符"),
        (reply_with_sep, "[SEP] 本身不属于回复"),
        (reply_last_sep, "第一个 [SEP]，不是最后一个"),
        (reply_with_prompt, "不包括提示词"),
        (reply_hard_coded_sep, "不一定是 102"),
        (reply_no_stop, "第一个 [SEP]"),
    ]),
    "unknown_chars": (checks.check_unknown_chars, "tokenizer", [unknown_via_tokenize, unknown_via_call, unknown_via_tokens], [
        (unknown_in_vocab, "先转小写、去掉重音"),
        (unknown_every_time, "只列一次"),
        (unknown_with_spaces, "空白字符"),
        (unknown_with_specials, "弯引号"),
        (unknown_tokens_not_chars, "弯引号"),
    ]),
    "decode": (checks.check_decode, "tokenizer", [decode_by_tokens, decode_by_split, decode_by_regex], [
        (lambda tok, ids: tok.decode(ids).replace(" ", ""), "英文单词之间的空格要保留"),
        (lambda tok, ids: tok.decode(ids), "一个都没有去掉"),
        (lambda tok, ids: re.sub(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "", tok.decode(ids)), "特殊词元后面的空格"),
        (lambda tok, ids: tok.decode(ids, skip_special_tokens=True).replace(" ", ""), "特殊词元"),
        (lambda tok, ids: re.sub(r" (?=[^ -~])|(?<=[^ -~]) ", "", tok.decode(ids)), "方括号旁边"),
    ]),
    "bpe_merge": (checks.check_bpe_merge, None, [bpe_counter, bpe_pairs_list, bpe_two_passes], [
        (bpe_alphabetical, "字母顺序"),
        (bpe_last_tie, "最后出现"),
        (bpe_unique_per_word, "每次都要算"),
        (bpe_across_words, "词和词之间"),
        (bpe_not_merged, "还没有在词里把它合并"),
        (bpe_overlapping_merge, "从左往右"),
    ]),
    "rmsnorm": (checks.check_rmsnorm, "smollm2_model", [rms_sqrt, rms_functional, rms_by_norm], [
        (lambda x, w, eps: F.layer_norm(x, (x.size(-1),), w, None, eps), "LayerNorm"),
        (lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps), "忘了乘以 weight"),
        (lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w, "eps 要加在开根号之前"),
        (lambda x, w, eps: x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w, "不是求和"),
        (lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w, "最后一维"),
    ]),
    "swiglu": (checks.check_swiglu, "smollm2_model", [swiglu_functional, swiglu_sigmoid, swiglu_einsum], [
        (lambda x, g, u, d: F.linear(F.relu(F.linear(x, g)) * F.linear(x, u), d), "不是 ReLU"),
        (lambda x, g, u, d: F.linear(F.silu(F.linear(x, u)) * F.linear(x, g), d), "不是 up 分支"),
        (lambda x, g, u, d: F.linear(F.silu(F.linear(x, g) * F.linear(x, u)), d), "在相乘之前"),
        (lambda x, g, u, d: (F.silu(x @ g) * (x @ u)) @ d, "转置"),
        (lambda x, g, u, d: F.linear(F.gelu(F.linear(x, g)) * F.linear(x, u), d), "SiLU"),
    ]),
    "causal_attention": (checks.check_causal_attention, "smollm2_model", [attention_tril, attention_sdpa, attention_additive], [
        (lambda q, k, v: _att(q, k, v, math.sqrt(q.size(1)), None), "没有挡住未来"),
        (lambda q, k, v: _att(q, k, v, 1.0, lambda n: torch.ones(n, n, dtype=torch.bool).triu(1)), "sqrt(d)"),
        (lambda q, k, v: _att(q, k, v, q.size(1), lambda n: torch.ones(n, n, dtype=torch.bool).triu(1)), "不是 d"),
        (lambda q, k, v: _att(q, k, v, math.sqrt(q.size(1)), lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1)),
         "掩码方向反了"),
        (lambda q, k, v: _att(q, k, v, math.sqrt(q.size(1)), lambda n: torch.ones(n, n, dtype=torch.bool).triu(1), 0),
         "最后一维"),
    ]),
    "llama_forward": (checks.check_llama_forward, "smollm2", [
        make_llama_forward(), make_llama_forward(rms_functional, swiglu_functional, attention_sdpa, own_rope=True),
        make_llama_forward(rms_by_norm, swiglu_einsum, attention_additive, batch=True, projections="modules")], [
        (make_llama_forward(residual=False), "残差连接"),
        (make_llama_forward(final_norm=False), "lm_head 之前还有一个 RMSNorm"),
        (make_llama_forward(rope=False), "RoPE"),
        (make_llama_forward(modulo=True), "h // 3"),
        (lambda model, ids: model(ids).logits[0], "不要调用 model(...)"),
        (make_llama_forward(attention=lambda q, k, v: _att(q, k, v, math.sqrt(q.size(1)), None)), "对不上"),
    ]),
    "softmax": (checks.check_softmax, None, [softmax_builtin, softmax_logsumexp, softmax_log], [
        (lambda x: x.exp() / x.exp().sum(), "没有先减去最大值"),
        (lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(), "沿最后一维"),
        (lambda x: x / x.sum(-1, keepdim=True), "先取 exp"),
        (lambda x: (x - x.max(-1, keepdim=True).values).exp(), "softmax = exp(x) / sum(exp(x))"),
        (lambda x: torch.softmax(x, 0), "每一行分别归一化"),
    ]),
    "temperature": (checks.check_temperature, None, [softmax_builtin, softmax_logsumexp, softmax_log], [
        (lambda x, t=1.0: softmax_builtin(x * t), "不是“乘”"),
        (lambda x, t=1.0: softmax_builtin(x) / t, "不是概率上"),
        (lambda x, t=1.0: softmax_builtin(x), "忘了用温度"),
        (lambda x, t=1.0: softmax_builtin(x / t ** 2), "温度是“除”"),
        (lambda x, t=1.0: (x / t).exp() / (x / t).exp().sum(), "先除以温度，再减去最大值"),
    ]),
    "top_k": (checks.check_top_k, None, [top_k_sort, top_k_min, top_k_rows], [
        (lambda x, k: x.masked_fill(x < x.topk(min(k, x.size(-1))).values[..., -1:], 0.0), "不是 0"),
        (lambda x, k: x.sort(descending=True).values.masked_fill(torch.arange(x.size(-1)) >= k, INF), "不能排序"),
        (lambda x, k: x.masked_fill(x <= x.topk(min(k, x.size(-1))).values[..., -1:], INF), "第 k 名自己"),
        (lambda x, k: torch.full_like(x, INF).scatter(-1, x.topk(min(k, x.size(-1))).indices,
                                                      x.topk(min(k, x.size(-1))).values), "并列"),
        (lambda x, k: x.masked_fill(x < x.topk(k).values[..., -1:], INF), "k 比词表还大"),
        (lambda x, k: x.masked_fill(x < x.flatten().topk(min(k, x.numel())).values[-1], INF), "每一行"),
    ]),
    "top_p": (checks.check_top_p, None, [top_p_gather, top_p_loop, top_p_shifted], [
        (lambda x, p: _keep(x, p, lambda c, s: c <= p), "累计概率 ≤ p"),
        (lambda x, p: x.masked_fill(~(x.softmax(-1).cumsum(-1) - x.softmax(-1) < p), INF), "先按概率从大到小排序"),
        (lambda x, p: torch.sort(top_p_gather(x, p), descending=True).values, "不能保持排序后的顺序"),
        (lambda x, p: _keep(x, p, lambda c, s: c < p), "累计概率"),
        (lambda x, p: _keep(x, p, lambda c, s: c - s < p, probs=False), "不是 logits"),
    ]),
    "sampler": (checks.check_sampler, None, [sample_multinomial, sample_inverse_cdf, sample_tensor_result], [
        (sample_top_p_first, "除以温度之前做了 top-p"),
        (sample_sorted_position, "排序以后的位置"),
        (sample_no_temperature, "温度没有起作用"),
        (sample_global_rng, "generator"),
        (sample_uniform_kept, "按概率采样"),
        (sample_always_argmax, "按概率采样"),
    ]),
    "repetition_penalty": (checks.check_repetition_penalty, "smollm2", [penalty_loop, penalty_gather, penalty_mask], [
        (lambda x, ids, p: _penalise(x, ids, lambda v: v / p), "负的分数不能除以"),
        (lambda x, ids, p: _penalise(x, ids, lambda v: v * p), "不是乘以"),
        (lambda x, ids, p: _penalise(x, ids, lambda v: v / p if v > 0 else v * p, once=False), "惩罚了好几次"),
        (lambda x, ids, p: _penalise(x, ids, lambda v: v - p), "不是减去"),
        (lambda x, ids, p: _penalise(x, ids, lambda v: torch.tensor(INF)), "正的分数除以 penalty"),
        (lambda x, ids, p: _penalise(x, list(ids)[-1:], lambda v: v / p if v > 0 else v * p), "正的分数除以 penalty"),
    ]),
    "greedy_probs": (checks.check_greedy_probs, "gpt2", [probs_max, probs_log_softmax, probs_forward_method], [
        (probs_logits, "记录的是 logits"),
        (probs_log, "对数概率"),
        (probs_generate, "不要调用 model.generate"),
        (probs_first_position, "最后一个位置"),
        (probs_with_cache, "整个序列"),
        (probs_prompt_only, "最后一个位置的 logits"),
    ]),
    "stop_loop": (checks.check_stop_loop, "gpt2", [until_while, until_list, until_any], [
        (until_in_sequence, "提示词里的停止符也当成了停止"),
        (until_drops_stop, "停止符本身要保留"),
        (until_off_by_one, "最多生成 max_steps"),
        (until_generate, "不要调用 model.generate"),
        (until_ignores_stop, "立刻停下"),
        (until_checks_last_before, "提示词"),
    ]),
    "chatml_prompt": (checks.check_chatml_prompt, "smollm2_tokenizer", [chatml_fstring, chatml_parts, "template"], [
        (chatml_no_generation_prompt, "轮到模型说了"),
        (chatml_all_user, "交替"),
        (chatml_no_default, "默认的设定"),
        (chatml_no_final_newline, "后面还有一个换行"),
        (chatml_space_after_role, "中间没有空格"),
        (chatml_no_newlines, "换行"),
        (chatml_swapped_roles, "第 0、2、4"),
    ]),
    "fit_history": (checks.check_fit_history, "tokenizer", [fit_drop_pairs, fit_backwards, fit_sum_of_turns], [
        (fit_counts_characters, "数的是字符"),
        (fit_counts_specials_twice, "add_special_tokens=False"),
        (fit_one_at_a_time, "一次只删了一句"),
        (fit_strictly_below, "<=（不超过）"),
        (fit_keeps_oldest, "留下最新的几句"),
        (fit_no_raise, "ValueError"),
        (fit_pops_history, "不要改动传进来的 history"),
        (fit_returns_prompt, "不是拼好的提示词"),
        (fit_raises_type_error, "要抛出的是 ValueError"),
        (fit_forgets_cls, "少数了 1 个词元"),
        (fit_join_without_last_sep, "少数了 1 个词元"),
        (fit_tokenizer_adds_cls, "多数了 1 个词元"),
    ]),
    "glm_example": (checks.check_glm_example, None, [glm_marked, glm_sorted_a, glm_by_position], [
        (glm_old_style, "[E] 不是输入"),
        (glm_b_sorted, "不要排序"),
        (glm_a_in_given_order, "原文里的位置"),
        (glm_mask_per_token, "只留一个 [M]"),
        (glm_targets_are_inputs, "下一个词元"),
        (glm_targets_for_a, "'-'"),
    ]),
    "visibility": (checks.check_visibility, "gpt2", [visibility_plus_one, visibility_isclose, visibility_lists], [
        (visibility_transposed, "行和列反了"),
        (visibility_assumes_causal, "双向"),
        (visibility_changes_suffix, "前一个"),
        (visibility_whole_output, "因果"),
        (visibility_no_diagonal, "因果"),
    ]),
    "kv_cache_loop": (checks.check_kv_cache_loop, "smollm2", [kv_cache_keyword, kv_past_key_values, kv_stack_and_head], [
        (kv_no_cache, "把上一步返回的缓存传回去"),
        (kv_generate, "不要调用 model.generate"),
        (kv_whole_sequence_with_cache, "不要再送入整个序列"),
        (kv_forgets_cache, "缓存传回去"),
        (kv_extra_forward, "正好调用一次模型"),
        (kv_first_call_even_for_zero_steps, "正好调用一次模型"),
    ]),
    "attend_one": (checks.check_attend_one, "smollm2_model", [attend_cat, attend_sdpa, attend_manual_exp], [
        (attend_no_scale, "sqrt(d)"),
        (attend_scale_d, "不是 d"),
        (attend_past_only, "新词元也要看见它自己"),
        (attend_prepends, "最后面"),
        (attend_cache_unchanged, "接上新的 k"),
        (attend_only_self, "缓存里的键"),
    ]),
}


def _keep(x, p, rule, probs=True):
    values = x.softmax(-1) if probs else x
    sorted_values, order = values.sort(-1, descending=True)
    keep = torch.zeros_like(sorted_values, dtype=torch.bool).scatter(-1, order, rule(sorted_values.cumsum(-1), sorted_values))
    return x.masked_fill(~keep, INF)


NEEDS = {None: lambda get: (), "tokenizer": lambda get: (get("gpt2_base")[1],), "gpt2": lambda get: get("gpt2_base"),
         "gpt2_chat": lambda get: get("gpt2_chat"), "smollm2": lambda get: get("smollm2"),
         "smollm2_model": lambda get: (get("smollm2")[0],), "smollm2_tokenizer": lambda get: (get("smollm2")[1],)}

RIGHT = [(name, i) for name, spec in SPEC.items() for i in range(len(spec[2]))]
WRONG = [(name, i) for name, spec in SPEC.items() for i in range(len(spec[3]))]


@pytest.fixture
def extra_args(request):
    """The model / tokenizer arguments a checker needs besides the learner's function (loaded only if needed)."""
    return lambda need: NEEDS[need](request.getfixturevalue)


def resolve(answer, extra):
    """'template' stands for the chat template answer, which needs the tokenizer."""
    return make_chatml_template(extra[0]) if answer == "template" else answer


def test_every_checker_has_three_right_and_five_wrong_answers():
    counts = {name: (len(spec[2]), len(spec[3])) for name, spec in SPEC.items()}
    assert all(right >= 3 and wrong >= 5 for right, wrong in counts.values()), counts
    assert len(RIGHT) == 69 and len(WRONG) == 135


@pytest.mark.parametrize("name,index", RIGHT, ids=[f"{n}-{i}" for n, i in RIGHT])
def test_right_answer_passes(name, index, extra_args, capsys):
    checker, need, right, _ = SPEC[name]
    extra = extra_args(need)
    assert checker(resolve(right[index], extra), *extra) is True, capsys.readouterr().out
    out = capsys.readouterr().out
    assert out.startswith("✅ 通过：") and "❌" not in out and out.count("\n") == 1


@pytest.mark.parametrize("name,index", WRONG, ids=[f"{n}-{i}" for n, i in WRONG])
def test_wrong_answer_fails_and_names_the_mistake(name, index, extra_args, capsys):
    checker, need, _, wrong = SPEC[name]
    answer, words = wrong[index]
    assert checker(answer, *extra_args(need)) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ 没通过：") and "Traceback" not in out
    first_hint = next(line for line in out.splitlines() if line.strip().startswith("提示 (hint) 1/"))
    assert words in first_hint, out
    assert len(checks.LAST.levels) >= 2, "a second hint level exists"
    assert "hint()" in out


def solution_lines() -> set[str]:
    """Every substantial line of the answers in solutions/ (what a hint must never print)."""
    lines = set()
    for path in sorted((ROOT / "solutions").glob("0[1-8]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if "### BEGIN SOLUTION" not in cell.source:
                continue
            inside = False
            for line in cell.source.splitlines():
                inside = (inside or "BEGIN SOLUTION" in line) and "END SOLUTION" not in line
                text = line.strip()
                if inside and len(text) >= 20 and "SOLUTION" not in text:
                    lines.add(text)
    return lines


@pytest.mark.parametrize("name", SPEC)
def test_no_hint_level_prints_the_solution(name, extra_args, capsys):
    checker, need, _, wrong = SPEC[name]
    answers = solution_lines()
    assert len(answers) > 40
    for answer, _ in wrong:
        checker(answer, *extra_args(need))
        for level in range(1, len(checks.LAST.levels) + 1):
            checks.hint(level)
        printed = capsys.readouterr().out
        leaked = [line for line in answers if line in printed]
        assert not leaked, f"{name}: a hint prints solution code {leaked}"


@pytest.mark.parametrize("name", SPEC)
def test_stub_is_reported_as_not_implemented(name, extra_args, capsys):
    checker, need, _, _ = SPEC[name]
    assert checker(stub, *extra_args(need)) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ ") and "还没有实现：练习 1：请在这里写你的代码" in out
    assert "Traceback" not in out


# ------------------------------------------------------------------------------ hints


def test_hint_levels_come_one_after_another(capsys):
    checks.check_split_turns(lambda t: t.split("[SEP]"))
    first = capsys.readouterr().out
    levels = checks.LAST.levels
    assert "提示 (hint) 1/" in first and "运行 hint()" in first and levels[1] not in first
    checks.hint()
    second = capsys.readouterr().out
    assert second.startswith(f"💡 提示 (hint) 2/{len(levels)}") and levels[1] in second
    checks.hint()
    assert f"3/{len(levels)}" in capsys.readouterr().out
    checks.hint(1)
    assert levels[0] in capsys.readouterr().out
    checks.hint(len(levels) + 1)
    assert "一共只有" in capsys.readouterr().out


def test_hint_before_any_failure_and_after_a_pass(capsys):
    checks.check_split_turns(lambda t: t.split("[SEP]"))
    checks.check_split_turns(split_turns_regex)
    capsys.readouterr()
    checks.hint()
    assert "还没有没通过的检查" in capsys.readouterr().out
    checks.hint(0)
    assert "还没有没通过的检查" in capsys.readouterr().out


def test_the_first_hint_belongs_to_the_mistake_not_only_to_the_input(capsys):
    assert checks.check_reply_ids(reply_from_start) is False
    out = capsys.readouterr().out
    assert "你的结果把提示词里的 [SEP] 也当成了停止符" in out


# ------------------------------------------------------------------------------ messages


def test_a_tuple_where_a_list_is_required_says_type_differs():
    with pytest.raises(checks.Mismatch) as caught:
        checks.expect_equal("x", ("a", "b"), ["a", "b"], "提示")
    assert "类型不同 (type differs)" in checks.as_levels(caught.value.hint)[0]
    assert caught.value.expected.startswith("list") and caught.value.got.startswith("tuple")


def test_tensor_messages_show_the_first_differing_position():
    expected = torch.arange(20.0)
    got = expected.clone()
    got[13] = 99.0
    with pytest.raises(checks.Mismatch) as caught:
        checks.expect_close("x", got, expected, "提示")
    assert "第一个不同的位置 [13]：期望 13.0，得到 99.0" in caught.value.got


def test_list_messages_show_the_first_differing_index():
    with pytest.raises(checks.Mismatch) as caught:
        checks.expect_equal("x", [1, 2, 3, 4], [1, 2, 5, 4], "提示")
    assert "下标 [2]，期望 5，得到 3" in caught.value.got


def test_a_crash_in_the_learners_code_is_reported_with_its_line(capsys):
    def broken_softmax(logits):
        total = logits.exp().sum()
        return logits.exp() / total.nonexistent

    assert checks.check_softmax(broken_softmax) is False
    out = capsys.readouterr().out
    assert "你的代码报错了：AttributeError" in out
    assert "total.nonexistent" in out and "Traceback" not in out


def test_a_missing_return_is_named(capsys):
    assert checks.check_split_turns(lambda text: None) is False
    assert "别忘了写 return" in capsys.readouterr().out


def test_a_learner_who_changes_the_input_in_place_still_gets_a_fair_check():
    def in_place_top_k(logits, k):
        kth = torch.topk(logits, min(k, logits.size(-1))).values[..., -1:]
        logits[logits < kth] = INF
        return logits

    assert checks.check_top_k(in_place_top_k) is True


def test_odd_return_values_give_a_verdict_not_a_crash(gpt2_base, capsys):
    model, tok = gpt2_base
    assert checks.check_greedy_probs(lambda m, ids, steps: (ids, "abc"), model, tok) is False
    assert checks.check_unknown_chars(lambda t, text: 42, tok) is False
    assert checks.check_bpe_merge(lambda words: {"pair": None}) is False
    out = capsys.readouterr().out
    assert out.count("❌ 没通过") == 3 and "Traceback" not in out


# ------------------------------------------------------------------------------ watching model calls


def test_model_calls_sees_the_model_the_stack_and_generate_and_cleans_up(smollm2):
    model, _ = smollm2
    ids = torch.tensor([[504, 3575, 282]])
    with checks.quiet(), torch.no_grad(), checks.ModelCalls(model) as calls:
        out = model(ids, use_cache=True)
        model.forward(input_ids=ids[:, -1:], cache=out.cache)
        model.model(ids[:, :1], past_key_values=None)
        model.generate(ids, max_new_tokens=2, do_sample=False, attention_mask=torch.ones_like(ids), pad_token_id=0)
    assert [(c.where, c.fed, c.cached) for c in calls.calls] == [
        ("model", 3, 0), ("model", 1, 3), ("decoder stack", 1, 0), ("generate", 3, 0)]
    assert "forward" not in model.__dict__ and "generate" not in model.__dict__
    assert "forward" not in model.model.__dict__


def test_kv_cache_loop_accepts_an_empty_cache_object_at_the_first_step(smollm2):
    model, tok = smollm2

    def with_empty_cache(model, input_ids, steps):
        from transformers import DynamicCache
        cache, fed = DynamicCache(config=model.config), input_ids
        for _ in range(steps):
            out = model(input_ids=fed, cache=cache, use_cache=True)
            fed = out.logits[:, -1:].argmax(-1)
            input_ids = torch.cat([input_ids, fed], 1)
        return input_ids

    assert checks.check_kv_cache_loop(with_empty_cache, model, tok) is True


# ------------------------------------------------------------------------------ references and retired exercises


def test_kv_cache_reference_equals_the_real_cache(smollm2):
    model, _ = smollm2
    assert checks.measured_cache_bytes(model, 5) == checks.reference_cache_bytes(model.config, 5) == 2 * 30 * 3 * 64 * 5 * 4


def test_attention_reference_reproduces_smollm2_layer_0(smollm2):
    model, _ = smollm2
    q, k, v, expected = checks.attention_inputs(model)
    assert q.shape == (9, 7, 64) and k.shape == (3, 7, 64)
    heads = torch.cat([checks.reference_attention(q[h], k[h // 3], v[h // 3]) for h in range(9)], dim=-1)
    with torch.no_grad():
        got = model.model.layers[0].self_attn.o_proj(heads)
    assert torch.allclose(got, expected, atol=1e-4)


def test_greedy_reference_is_model_generate_on_the_prompt(gpt2_base):
    model, tok = gpt2_base
    ids = torch.tensor([[101, 791, 1921, 1921, 3698, 4696]])
    assert checks.reference_greedy(model, ids, 6) == generate(model, tok, "[CLS]今天天气真", 6).ids


def test_glm_reference_matches_the_lessons_example():
    inputs, targets = checks.reference_glm_example(list("123456"), [(2, 3), (4, 6)])
    assert inputs == ["1", "2", "[M]", "4", "[M]", "[S]", "3", "[S]", "5", "6"]
    assert targets == ["-"] * 5 + ["3", "[E]", "5", "6", "[E]"]


def test_bpe_reference_merges_left_to_right_and_breaks_ties_by_first_seen():
    assert checks.reference_bpe_merge([list("aaa"), list("ba")]) == (("a", "a"), [["aa", "a"], ["b", "a"]])
    assert checks.reference_bpe_merge([list("bc"), list("ab")])[0] == ("b", "c")


RETIRED = {
    "first_reply": (checks.check_first_reply, None, lambda t: t.split("[SEP]", 1)[0].strip(), lambda t: t.split("[SEP]")[-1]),
    "build_prompt": (checks.check_build_prompt, None, lambda h: "[CLS]" + "".join(x + "[SEP]" for x in h),
                     lambda h: "[CLS]" + "[SEP]".join(h)),
    "vocab_lines": (checks.check_vocab_lines, "tokenizer", lambda tok, text: [i + 1 for i in tok.encode(text, add_special_tokens=False)],
                    lambda tok, text: tok.encode(text, add_special_tokens=False)),
    "greedy_loop": (checks.check_greedy_loop, "gpt2", lambda m, ids, steps: until_ignores_stop(m, ids, steps, -1),
                    lambda m, ids, steps: kv_generate(m, ids, steps)),
    "causal_mask": (checks.check_causal_mask, None, lambda n: torch.ones(n, n).tril(), lambda n: torch.ones(n, n).triu()),
    "prefix_mask": (checks.check_prefix_mask, None, lambda n, p: checks.reference_prefix_mask(n, p),
                    lambda n, p: torch.ones(n, n).tril() + (torch.arange(n)[:, None] < p)),
    "blank_infilling": (checks.check_blank_infilling, None, checks.reference_blank_infilling,
                        lambda t, s: (checks.reference_blank_infilling(t, s)[0], len(t))),
    "chat_reply": (checks.check_chat_reply, "gpt2_chat", chat_reply_generate, chat_reply_keeps_sep),
    "kv_cache_size": (checks.check_kv_cache_size, "smollm2_model",
                      lambda c, n, b=4: 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * n * b,
                      lambda c, n, b=4: 2 * c.num_hidden_layers * c.hidden_size * n * b),
}


@pytest.mark.parametrize("name", RETIRED)
def test_a_retired_checker_says_so_and_still_checks(name, extra_args, capsys):
    checker, need, right, wrong = RETIRED[name]
    extra = extra_args(need)
    assert checker(right, *extra) is True
    out = capsys.readouterr().out
    assert out.startswith("ℹ️") and "retired" in out and "\n✅ 通过：" in out
    assert checker(wrong, *extra) is False
    assert "\n❌ 没通过：" in capsys.readouterr().out
