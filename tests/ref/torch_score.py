#!/usr/bin/python3
"""Log-probabilities of token sequences under a model folder, by the independent PyTorch
forward of torch_ref.py in float64 (the reference of `mart score` on a real checkpoint).

  torch_score.py MODEL_DIR INPUT.jsonl > OUT.jsonl

INPUT lines are {"tokens": [...]}; each output line is {"logprobs": [...]} with
logprobs[i] = log p(tokens[i+1] | tokens[..i]), as `mart score` writes them.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_check import read_safetensors  # noqa: E402  (hand-written safetensors reader)
from torch_ref import forward_sequence  # noqa: E402


def main():
    model_dir, inp = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("tie_word_embeddings", False)
    p = {k: torch.from_numpy(v).double()
         for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    for line in open(inp):
        tokens = json.loads(line)["tokens"]
        with torch.no_grad():
            lp = forward_sequence(cfg, p, tokens).log_softmax(-1)
        out = [lp[i, tokens[i + 1]].item() for i in range(len(tokens) - 1)]
        print(json.dumps({"logprobs": out}))


if __name__ == "__main__":
    main()
