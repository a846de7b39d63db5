#!/usr/bin/python3
"""Independent PyTorch reference for mart's transformer (Qwen2 / Llama), used by
tests/test_parity.c.

Written from the Hugging Face definitions (modeling_qwen2.py / modeling_llama.py) without
importing transformers, and with its own safetensors writer (JSON header + raw bytes), so
that neither mart's reader nor its writer is checked against itself.

For each case it writes OUT/<case>/:
  config.json, model.safetensors (or shards + model.safetensors.index.json)  random weights
  batch.json       {"tokens", "offsets", "weights", "ent_weights"}: a packed batch and
                   per-token weights of the two objectives
  ref.safetensors  "logprobs" (n_tokens; log p(tokens[t+1] | prefix), 0 at a sequence's
                   last token) and "grad.<tensor>" for every parameter: the gradient of
                   sum_t weights[t] * logprobs[t];
                   "entropy" (n_tokens; entropy of the next-token distribution) and
                   "grad_entropy.<tensor>": the gradient of sum_t ent_weights[t] * entropy[t]
The reference runs in float64 on the exact weights stored in the file (BF16 files: the
rounded values), so its own rounding error is negligible next to mart's float32.

usage: torch_ref.py OUT_DIR [--quick]   (--quick: only the tiny cases)
"""
import json
import math
import os
import struct
import sys

import torch

# name -> (vocab, hidden, layers, heads, kv_heads, ffn, sequence lengths of the batch)
SIZES = {
    "tiny": (64, 32, 2, 4, 2, 48, [5, 1, 9, 3]),
    "small": (512, 256, 4, 4, 2, 704, [37, 64, 1, 20]),
}


def case_config(arch, size, dtype):
    vocab, d, layers, heads, kv, ffn, _ = SIZES[size]
    qwen = arch == "qwen2"
    cfg = {
        "architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
        "model_type": arch,
        "vocab_size": vocab,
        "hidden_size": d,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6 if qwen else 1e-5,
        "rope_theta": 1000000.0 if qwen else 10000.0,
        # The pairing: Qwen2 with biases and tied embeddings, Llama without both.
        "tie_word_embeddings": qwen,
        "hidden_act": "silu",
        "torch_dtype": "bfloat16" if dtype == "bf16" else "float32",
    }
    if not qwen:
        cfg["attention_bias"] = False
    return cfg


def param_shapes(cfg):
    """Tensor names and shapes exactly as in Hugging Face checkpoints."""
    d, ffn, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // h
    bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
    shapes = {"model.embed_tokens.weight": (v, d)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (d,)
        shapes[p + "self_attn.q_proj.weight"] = (h * hd, d)
        shapes[p + "self_attn.k_proj.weight"] = (kv * hd, d)
        shapes[p + "self_attn.v_proj.weight"] = (kv * hd, d)
        if bias:
            shapes[p + "self_attn.q_proj.bias"] = (h * hd,)
            shapes[p + "self_attn.k_proj.bias"] = (kv * hd,)
            shapes[p + "self_attn.v_proj.bias"] = (kv * hd,)
        shapes[p + "self_attn.o_proj.weight"] = (d, h * hd)
        shapes[p + "post_attention_layernorm.weight"] = (d,)
        shapes[p + "mlp.gate_proj.weight"] = (ffn, d)
        shapes[p + "mlp.up_proj.weight"] = (ffn, d)
        shapes[p + "mlp.down_proj.weight"] = (d, ffn)
    shapes["model.norm.weight"] = (d,)
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (v, d)
    return shapes


def random_params(cfg, gen):
    """Weights large enough that attention and softmax are far from uniform (a test of
    mart's numerics, not a good initialisation)."""
    out = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            t = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            t = 0.3 * torch.randn(shape, generator=gen)
        elif name in ("model.embed_tokens.weight", "lm_head.weight"):
            t = 2.0 / math.sqrt(shape[1]) * torch.randn(shape, generator=gen)
        else:
            t = 1.0 / math.sqrt(shape[1]) * torch.randn(shape, generator=gen)
        out[name] = t.float()
    return out


# ---- safetensors, written by hand -----------------------------------------------------

def tensor_bytes(t, dtype):
    if dtype == "BF16":
        raw = t.to(torch.bfloat16).contiguous().view(torch.int16).numpy()
    else:
        raw = t.to(torch.float32).contiguous().numpy()
    return raw.astype(raw.dtype.newbyteorder("<")).tobytes()


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_sharded(dir_, tensors, dtype, n_shards):
    names = list(tensors)
    per = math.ceil(len(names) / n_shards)
    weight_map = {}
    for s in range(n_shards):
        fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        write_safetensors(os.path.join(dir_, fname), part, dtype)
        weight_map.update({n: fname for n in part})
    total = sum(t.numel() * (2 if dtype == "BF16" else 4) for t in tensors.values())
    with open(os.path.join(dir_, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ---- the model (float64) ---------------------------------------------------------------

def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, theta):
    """x: (T, heads, hd); positions 0..T-1 (each packed sequence starts at 0)."""
    t, _, hd = x.shape
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    return x * cos + rotate_half(x) * sin


def linear(x, p, name, bias):
    y = x @ p[name + ".weight"].T
    return y + p[name + ".bias"] if bias else y


def forward_sequence(cfg, p, tokens):
    """Logits (T, vocab) of one sequence."""
    d, h, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, theta = d // h, cfg["rms_norm_eps"], cfg["rope_theta"]
    bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
    t = len(tokens)
    x = p["model.embed_tokens.weight"][torch.tensor(tokens)]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        a = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = linear(a, p, pre + "self_attn.q_proj", bias).view(t, h, hd)
        k = linear(a, p, pre + "self_attn.k_proj", bias).view(t, kv, hd)
        v = linear(a, p, pre + "self_attn.v_proj", bias).view(t, kv, hd)
        q, k = rope(q, theta), rope(k, theta)
        # grouped-query attention: query head j reads key/value head j // (h / kv)
        k = k.repeat_interleave(h // kv, dim=1)
        v = v.repeat_interleave(h // kv, dim=1)
        s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd)
        s = s.masked_fill(~causal, float("-inf")).softmax(-1)
        o = torch.einsum("hqk,khd->qhd", s, v).reshape(t, h * hd)
        x = x + linear(o, p, pre + "self_attn.o_proj", False)
        m = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        g = linear(m, p, pre + "mlp.gate_proj", False)
        u = linear(m, p, pre + "mlp.up_proj", False)
        x = x + linear(torch.nn.functional.silu(g) * u, p, pre + "mlp.down_proj", False)
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def make_case(out, arch, size, dtype, seed, n_shards):
    name = f"{arch}_{size}_{dtype}"
    dir_ = os.path.join(out, name)
    os.makedirs(dir_, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    cfg = case_config(arch, size, dtype)
    params = random_params(cfg, gen)
    st_dtype = "BF16" if dtype == "bf16" else "F32"
    if n_shards > 1:
        write_sharded(dir_, params, st_dtype, n_shards)
    else:
        write_safetensors(os.path.join(dir_, "model.safetensors"), params, st_dtype)
    with open(os.path.join(dir_, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    # The exact values in the file, as float64 leaves.
    p = {}
    for n, t in params.items():
        stored = t.to(torch.bfloat16) if dtype == "bf16" else t
        p[n] = stored.double().requires_grad_(True)

    lengths = SIZES[size][6]
    tokens, offsets, weights, ent_weights = [], [0], [], []
    for ln in lengths:
        seq = torch.randint(0, cfg["vocab_size"], (ln,), generator=gen).tolist()
        tokens += seq
        offsets.append(len(tokens))
        w = (torch.rand(ln, generator=gen, dtype=torch.float64) * 2 - 1)
        w[torch.rand(ln, generator=gen) < 0.2] = 0.0  # masked-out tokens
        w[-1] = 0.0  # no next token
        weights += w.tolist()
        ent_weights += (torch.rand(ln, generator=gen, dtype=torch.float64) * 2 - 1).tolist()

    logprobs = torch.zeros(len(tokens), dtype=torch.float64)
    entropy = torch.zeros(len(tokens), dtype=torch.float64)
    objective = torch.zeros((), dtype=torch.float64)
    ent_objective = torch.zeros((), dtype=torch.float64)
    for s in range(len(lengths)):
        a, b = offsets[s], offsets[s + 1]
        seq = tokens[a:b]
        lp_all = forward_sequence(cfg, p, seq).log_softmax(-1)
        ent = -(lp_all.exp() * lp_all).sum(-1)
        entropy[a:b] = ent.detach()
        ent_objective = ent_objective + (ent * torch.tensor(ent_weights[a:b], dtype=torch.float64)).sum()
        if b - a > 1:
            lp = lp_all[torch.arange(b - a - 1), torch.tensor(seq[1:])]
            logprobs[a:b - 1] = lp.detach()
            objective = objective + (lp * torch.tensor(weights[a:b - 1], dtype=torch.float64)).sum()
    ref = {"logprobs": logprobs.float(), "entropy": entropy.float()}
    for key, obj in (("grad.", objective), ("grad_entropy.", ent_objective)):
        grads = torch.autograd.grad(obj, list(p.values()), retain_graph=True)
        for n, g in zip(p, grads):
            ref[key + n] = g.float()
    write_safetensors(os.path.join(dir_, "ref.safetensors"), ref, "F32")
    with open(os.path.join(dir_, "batch.json"), "w") as f:
        json.dump({"tokens": tokens, "offsets": offsets, "weights": weights,
                   "ent_weights": ent_weights}, f)
    print(name)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    quick = "--quick" in sys.argv[2:]
    torch.set_num_threads(2)
    seed = 1234
    for size in ("tiny",) if quick else ("tiny", "small"):
        for arch in ("qwen2", "llama"):
            for dtype in ("f32", "bf16"):
                seed += 1
                # One case as shards with an index, as large Hugging Face models ship.
                shards = 3 if (arch, dtype) == ("qwen2", "f32") and size == "tiny" else 1
                make_case(out, arch, size, dtype, seed, shards)


if __name__ == "__main__":
    main()
