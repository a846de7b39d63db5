#!/usr/bin/python3
"""Independent check of `mart export --format gguf`: a GGUF reader written from the format's
specification (ggml docs/gguf.md, version 3), which compares every metadata key and every
tensor of the file with the model folder it came from, read here without mart (config.json,
tokenizer.json, tokenizer_config.json, and safetensors parsed by hand).

  gguf_check.py FILE.gguf MODEL_DIR {f32|bf16|q8_0}

Tensors: F32 must equal the checkpoint exactly; BF16 must equal its round-to-nearest-even;
Q8_0 blocks must hold scale = fp16(max|x| / 127) and dequantise within half a step (plus the
scale's own fp16 rounding). llama's q/k rows are compared after llama.cpp's permutation.
Also writes a tiny Qwen2 model folder for the byte-level (gpt2) path:

  gguf_check.py --make-qwen2 OUT_DIR TOKENIZER_JSON

and checks what `mart import` made of an exported file: every weight equal to the original's
(F32), to its BF16 rounding (matrices of a BF16 file), or within half a Q8_0 step:

  gguf_check.py --imported ORIG_DIR IMPORTED_DIR {f32|bf16|q8_0}
"""
import json
import os
import struct
import sys

import numpy as np

ALIGN = 32
GGML = {0: "F32", 1: "F16", 8: "Q8_0", 30: "BF16"}


class Reader:
    def __init__(self, data):
        self.b, self.i = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.b, self.i)
        self.i += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = self.b[self.i:self.i + n].decode("utf-8")
        self.i += n
        return s

    def value(self, t):
        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                  11: "q", 12: "d"}
        if t in scalar:
            return self.take(scalar[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"unknown value type {t}")


def read_gguf(path):
    data = open(path, "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF", "magic"
    r.i = 4
    assert r.take("I") == 3, "version"
    n_t, n_kv = r.take("Q"), r.take("Q")
    kv = {}
    for _ in range(n_kv):
        k = r.string()
        assert k not in kv, f"duplicate key {k}"
        kv[k] = r.value(r.take("I"))
    tensors = {}
    for _ in range(n_t):
        name = r.string()
        dims = [r.take("Q") for _ in range(r.take("I"))]
        tensors[name] = (dims, r.take("I"), r.take("Q"))
    start = (r.i + ALIGN - 1) // ALIGN * ALIGN
    assert all(b == 0 for b in data[r.i:start]), "padding before the data is not zeros"
    return kv, tensors, data, start


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack_from("<Q", b, 0)[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        raw = b[8 + n + lo:8 + n + hi]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, "<f4")
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, "<f2").astype(np.float32)
        out[name] = a.reshape(t["shape"]).astype(np.float32)
    return out


def bf16_round(x):
    """float32 -> bfloat16 (round to nearest, ties to even) -> float32."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return (u.astype(np.uint32) << 16).view(np.float32)


def llama_permute(w, heads):
    """llama.cpp's convert_hf_to_gguf permute(): HF's rotary halves -> interleaved pairs."""
    return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_names(cfg, layer_count):
    m = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    if not cfg.get("tie_word_embeddings", False):
        m["lm_head.weight"] = "output.weight"
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}
    for i in range(layer_count):
        for hf, gg in parts.items():
            for kind in ("weight", "bias"):
                m[f"model.layers.{i}.{hf}.{kind}"] = f"blk.{i}.{gg}.{kind}"
    return m


def check(path, model_dir, dtype):
    kv, tensors, data, start = read_gguf(path)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tj = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    tc_path = os.path.join(model_dir, "tokenizer_config.json")
    tc = json.load(open(tc_path)) if os.path.exists(tc_path) else {}
    arch = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}[cfg["architectures"][0]]
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    d = cfg["hidden_size"]
    want = {
        "general.architecture": arch,
        "general.alignment": ALIGN,
        "general.file_type": {"f32": 0, "bf16": 32, "q8_0": 7}[dtype],
        f"{arch}.vocab_size": cfg["vocab_size"],
        f"{arch}.context_length": cfg["max_position_embeddings"],
        f"{arch}.embedding_length": d,
        f"{arch}.block_count": cfg["num_hidden_layers"],
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.attention.head_count": heads,
        f"{arch}.attention.head_count_kv": kv_heads,
        f"{arch}.rope.dimension_count": cfg.get("head_dim", d // heads),
    }
    for k, v in want.items():
        assert kv.get(k) == v, f"{k}: {kv.get(k)!r}, expected {v!r}"
    assert abs(kv[f"{arch}.attention.layer_norm_rms_epsilon"] - cfg["rms_norm_eps"]) <= 1e-6 * cfg["rms_norm_eps"]
    assert kv[f"{arch}.rope.freq_base"] == np.float32(cfg.get("rope_theta", 10000.0))
    # tokenizer
    model = tj["model"]
    spm = not any(p.get("type") == "ByteLevel" for p in
                  ([tj["pre_tokenizer"]] if tj.get("pre_tokenizer") else [])
                  + (tj.get("pre_tokenizer") or {}).get("pretokenizers", []))
    assert kv["tokenizer.ggml.model"] == ("llama" if spm else "gpt2")
    V = cfg["vocab_size"]
    text = {i: s for s, i in model["vocab"].items()}
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    for i, a in added.items():
        text[i] = a["content"]
    tokens = kv["tokenizer.ggml.tokens"]
    assert len(tokens) == V
    for i in range(V):
        assert tokens[i] == text.get(i, f"[PAD{i}]"), f"token {i}: {tokens[i]!r}"
    types = kv["tokenizer.ggml.token_type"]
    unk = model.get("unk_token")
    for i in range(V):
        if i not in text:
            t = 5
        elif i in added:
            t = 3 if added[i].get("special") else 4
        elif text[i] == unk:
            t = 2
        elif spm and len(text[i]) == 6 and text[i].startswith("<0x") and text[i].endswith(">"):
            t = 6
        else:
            t = 1
        assert types[i] == t, f"token type of {i} ({text.get(i)!r}): {types[i]}, expected {t}"
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    if spm:
        scores = [0.0] * V
        for rank in reversed(range(len(merges))):
            scores[model["vocab"]["".join(merges[rank])]] = -float(rank)
        assert kv["tokenizer.ggml.scores"] == scores, "scores"
        assert "tokenizer.ggml.merges" not in kv
    else:
        assert kv["tokenizer.ggml.merges"] == [" ".join(m) for m in merges], "merges"

    def token_id(v):
        v = v["content"] if isinstance(v, dict) else v
        return {s: i for i, s in text.items()}[v] if v is not None else None

    bos = token_id(tc.get("bos_token")) if "bos_token" in tc else cfg.get("bos_token_id")
    eos = token_id(tc.get("eos_token")) if "eos_token" in tc else cfg.get("eos_token_id")
    assert kv.get("tokenizer.ggml.bos_token_id") == bos, "bos"
    assert kv.get("tokenizer.ggml.eos_token_id") == eos, "eos"
    assert kv.get("tokenizer.ggml.unknown_token_id") == (model["vocab"][unk] if unk else None)
    assert kv["tokenizer.ggml.add_bos_token"] == tc.get("add_bos_token", False)
    assert kv["tokenizer.ggml.add_eos_token"] == tc.get("add_eos_token", False)
    assert kv.get("tokenizer.chat_template") == tc.get("chat_template")
    # tensors
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    names = gguf_names(cfg, cfg["num_hidden_layers"])
    expect = {names[n]: w for n, w in weights.items() if n in names}
    assert set(expect) == set(tensors), f"tensor names differ: {set(expect) ^ set(tensors)}"
    worst = 0.0
    for hf, w in weights.items():
        if hf not in names:
            continue
        name = names[hf]
        dims, ttype, off = tensors[name]
        assert off % ALIGN == 0, f"{name}: offset {off} not aligned"
        assert dims == list(reversed(w.shape)), f"{name}: dims {dims} vs shape {w.shape}"
        if arch == "llama" and ".self_attn.q_proj." in hf:
            w = llama_permute(w, heads)
        if arch == "llama" and ".self_attn.k_proj." in hf:
            w = llama_permute(w, kv_heads)
        rows, cols = (w.shape[0], w.shape[1]) if w.ndim == 2 else (1, w.shape[0])
        p = start + off
        quant = w.ndim == 2 and (dtype == "bf16" or (dtype == "q8_0" and cols % 32 == 0))
        want_type = ("BF16" if dtype == "bf16" else "Q8_0") if quant else "F32"
        assert GGML[ttype] == want_type, f"{name}: type {GGML.get(ttype)}, expected {want_type}"
        x = w.reshape(rows, cols)
        if want_type == "F32":
            got = np.frombuffer(data, "<f4", rows * cols, p).reshape(rows, cols)
            assert np.array_equal(got, x), f"{name}: F32 values differ"
        elif want_type == "BF16":
            got = (np.frombuffer(data, "<u2", rows * cols, p).astype(np.uint32) << 16).view(np.float32)
            assert np.array_equal(got.reshape(rows, cols), bf16_round(x)), f"{name}: BF16 rounding"
        else:
            blocks = np.frombuffer(data, np.dtype([("d", "<f2"), ("q", "i1", 32)]), rows * cols // 32, p)
            xb = x.reshape(-1, 32)
            scale = np.abs(xb).max(axis=1) / 127
            assert np.array_equal(blocks["d"], scale.astype(np.float16)), f"{name}: Q8_0 scales"
            deq = blocks["d"].astype(np.float32)[:, None] * blocks["q"].astype(np.float32)
            bound = scale[:, None] / 2 + 127 * np.abs(scale - blocks["d"].astype(np.float32))[:, None] + 1e-12
            err = np.abs(deq - xb)
            assert (err <= bound * (1 + 1e-6)).all(), f"{name}: Q8_0 error above half a step"
            worst = max(worst, float((err / np.maximum(scale[:, None], 1e-30)).max()))
    print(f"{os.path.basename(path)}: {len(kv)} keys and {len(tensors)} tensors match {model_dir}"
          + (f" (Q8_0 worst error {worst:.3f} steps)" if dtype == "q8_0" else ""))


def write_safetensors(path, tensors):
    head, blobs, off = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, "<f4").tobytes()
        head[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_qwen2(out, tokenizer_json):
    """A tiny random Qwen2 model (untied, q/k/v biases) with a byte-level tokenizer."""
    tj = json.load(open(tokenizer_json))
    V = max(list(tj["model"]["vocab"].values()) + [a["id"] for a in tj.get("added_tokens", [])]) + 1
    V += 3  # ids past the tokenizer: [PADn]
    d, ffn, L, H, KV = 64, 96, 2, 4, 2
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": V,
           "hidden_size": d, "intermediate_size": ffn, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KV, "max_position_embeddings": 256,
           "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": False,
           "torch_dtype": "float32", "bos_token_id": None, "eos_token_id": V - 4}
    rng = np.random.default_rng(0)
    w = {"model.embed_tokens.weight": rng.normal(0, 0.02, (V, d)), "model.norm.weight": 1 + rng.normal(0, 0.1, d),
         "lm_head.weight": rng.normal(0, 0.02, (V, d))}
    hd = d // H
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        w[p + "post_attention_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        for n, o in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
            w[p + f"self_attn.{n}_proj.weight"] = rng.normal(0, 0.02, (o, d))
            w[p + f"self_attn.{n}_proj.bias"] = rng.normal(0, 0.02, o)
        w[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.02, (d, H * hd))
        w[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.02, (ffn, d))
        w[p + "mlp.up_proj.weight"] = rng.normal(0, 0.02, (ffn, d))
        w[p + "mlp.down_proj.weight"] = rng.normal(0, 0.02, (d, ffn))
    os.makedirs(out, exist_ok=True)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"))
    write_safetensors(os.path.join(out, "model.safetensors"), w)
    with open(tokenizer_json, "rb") as f, open(os.path.join(out, "tokenizer.json"), "wb") as g:
        g.write(f.read())
    json.dump({"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
               "eos_token": "<|im_end|>", "add_bos_token": False},
              open(os.path.join(out, "tokenizer_config.json"), "w"))


def check_imported(orig, imported, dtype):
    a = read_safetensors(os.path.join(orig, "model.safetensors"))
    b = read_safetensors(os.path.join(imported, "model.safetensors"))
    assert set(a) == set(b), f"tensor names differ: {set(a) ^ set(b)}"
    for name, w in a.items():
        v = b[name]
        if w.ndim == 1 or dtype == "f32" or (dtype == "q8_0" and w.shape[1] % 32):
            assert np.array_equal(v, w), f"{name}: not identical"
        elif dtype == "bf16":
            assert np.array_equal(v, bf16_round(w)), f"{name}: not the BF16 rounding"
        else:
            step = np.abs(w.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
            assert (np.abs(v.reshape(-1, 32) - w.reshape(-1, 32)) <= 0.56 * step + 1e-12).all(), name
    print(f"{imported}: {len(a)} tensors as expected from a {dtype} file")


if __name__ == "__main__":
    if sys.argv[1] == "--make-qwen2":
        make_qwen2(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--imported":
        check_imported(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        check(sys.argv[1], sys.argv[2], sys.argv[3])
