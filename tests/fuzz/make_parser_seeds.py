#!/usr/bin/python3
"""Seeds the parser fuzz corpora (corpus_safetensors, corpus_config, corpus_tokenizer,
corpus_jsonl) with small valid inputs and hand-made hostile ones. libFuzzer grows each corpus
from here; `-merge=1` keeps it small (see tests/fuzz.cmake)."""
import hashlib, json, os, struct

root = os.path.dirname(os.path.abspath(__file__))


def put(corpus, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    d = os.path.join(root, "corpus_" + corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


# ---- safetensors: 8-byte little-endian header length, JSON header, data ----
def st(header, data=b"", hlen=None):
    h = json.dumps(header).encode() if isinstance(header, dict) else header
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


f32 = struct.pack("<4f", 1, -2, 0.5, 3)
good = {"__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]},
        "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [20, 20]}}
put("safetensors", st(good, f32 + b"\x80\x3f\x00\xc0"))
put("safetensors", st(good, f32))                                   # data cut short
put("safetensors", st(good, f32 + b"\0" * 4, hlen=2**63))           # huge header length
put("safetensors", st(good, f32 + b"\0" * 4, hlen=10**8 + 1))
put("safetensors", b"\x05\0\0")                                      # shorter than 8 bytes
put("safetensors", st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32))
put("safetensors", st({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, f32))
put("safetensors", st({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, f32))
put("safetensors", st({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, f32))
put("safetensors", st(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                      b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32))
put("safetensors", st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, f32))
put("safetensors", st({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, f32))
put("safetensors", st({"a": {"dtype": "F32", "shape": [1, 1, 1, 1, 1], "data_offsets": [0, 4]}}, f32))
put("safetensors", st(b"[1,2,3]", f32))
put("safetensors", st(b'{"a":', f32))

# ---- config.json ----
qwen = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 259,
        "hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-06, "rope_theta": 10000,
        "tie_word_embeddings": True, "rope_scaling": None, "eos_token_id": 258,
        "torch_dtype": "float32"}
llama = {"architectures": ["LlamaForCausalLM"], "vocab_size": 512, "hidden_size": 64,
         "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8,
         "num_key_value_heads": 4, "bos_token_id": [1, 2], "attention_bias": False,
         "torch_dtype": "bfloat16"}
put("config", json.dumps(qwen))
put("config", json.dumps(llama))
for k, v in [("num_hidden_layers", 20000), ("hidden_size", 10**9), ("vocab_size", 2**31 - 1),
             ("num_key_value_heads", 3), ("head_dim", 7), ("rope_scaling", {"type": "yarn"}),
             ("torch_dtype", "int8"), ("hidden_size", 1.5), ("num_attention_heads", 0),
             ("rms_norm_eps", -1), ("architectures", []), ("eos_token_id", [-5])]:
    put("config", json.dumps(dict(llama, **{k: v})))
put("config", "[]")
put("config", '{"architectures":["LlamaForCausalLM"],"vocab_size":1e400}')

# ---- tokenizer.json: a small byte-level BPE, as mart and Hugging Face write it ----
def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


bc = byte_chars()
vocab = {bc[b]: b for b in range(256)}
vocab[bc[ord("h")] + bc[ord("e")]] = 256
vocab["Ġ" + bc[ord("w")]] = 257
added = [{"id": 258 + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, c in enumerate(["<|endoftext|>", "<|im_end|>"])]
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
tok = {"version": "1.0", "added_tokens": added, "normalizer": {"type": "NFC"},
       "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
           {"type": "Split", "pattern": {"Regex": "\\p{N}| ?\\p{L}+| ?[^\\s\\p{L}\\p{N}]+|\\s+"},
            "behavior": "Isolated", "invert": False}, bl]},
       "post_processor": bl, "decoder": bl,
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                 "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                 "vocab": vocab, "merges": [bc[ord("h")] + " " + bc[ord("e")], "Ġ w"]}}
put("tokenizer", json.dumps(tok))
put("tokenizer", json.dumps(dict(tok, normalizer=None)))
bad_regex = json.loads(json.dumps(tok))
bad_regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(((((a*)*)*)*)*" + "[" * 50
put("tokenizer", json.dumps(bad_regex))
bad_merge = json.loads(json.dumps(tok))
bad_merge["model"]["merges"] = ["nothere x", ["a"], 5]
put("tokenizer", json.dumps(bad_merge))
dup = json.loads(json.dumps(tok))
dup["added_tokens"].append(dict(added[0], id=2**31 - 1))
put("tokenizer", json.dumps(dup))

# SentencePiece-style (Llama 2 family): Prepend/Replace normalizers, byte fallback, unk.
sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
sp_vocab.update({"<0x%02X>" % b: 3 + b for b in range(256)})
for piece in ["\u2581", "t", "h", "e", "a", "\u2581t", "he", "\u2581a", "\u2581the"]:
    sp_vocab[piece] = len(sp_vocab)
sp = {"version": "1.0", "added_tokens": [
          {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
           "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])],
      "normalizer": {"type": "Sequence", "normalizers": [
          {"type": "Prepend", "prepend": "\u2581"},
          {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
      "pre_tokenizer": None,
      "decoder": {"type": "Sequence", "decoders": [
          {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
          {"type": "ByteFallback"}, {"type": "Fuse"},
          {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
      "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True,
                "byte_fallback": True, "vocab": sp_vocab,
                "merges": [["\u2581", "t"], ["h", "e"], ["\u2581", "a"], ["\u2581t", "he"]]}}
put("tokenizer", json.dumps(sp))
put("tokenizer", json.dumps(dict(sp, pre_tokenizer={"type": "Metaspace", "replacement": "\u2581",
                                                     "prepend_scheme": "first", "split": True},
                                 normalizer=None)))

# ---- JSONL ----
for text in [
    '{"text":"hello"}\n{"ids":[1,2,3]}\n',
    '{"text":"a\\u0000b"}\n{"text":"x\\ud800"}\n{"text":"\\udc00"}\n{"text":"\\ud83d\\ude00"}\n',
    '\r\n{"prompt":"crlf"}\r\n\n  \t\n{"tokens":[1]}\n',
    '{"gold":"1","pred":"\xe2\x82"}\n{"gold":"\\"","response":"\\\\boxed{\\\\u0000}"}\n',
    '{"a":[{"b":{"c":["\\u0000"]}}]}\n',
    '{"a\\u0000":1}\n',
    '[' * 1100 + ']' * 1100 + '\n',
    '{"text":"' + 'x' * 3000 + '"}\n',
    '{"text":"\\b\\f\\n\\r\\t\\/\\u001f\\u007f\\u2028\\uffff"}\n',
    'not json\n{"x":1} trailing\n{"x":nan}\n{"x":1e999}\n',
]:
    put("jsonl", text.encode("utf-8", "surrogateescape") if "\xe2" not in text else
        text.encode("latin-1"))
put("jsonl", b'{"text":"a\x00b"}\n{"text":"\xff\xfe"}\n')
