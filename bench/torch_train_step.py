#!/usr/bin/python3
"""The training step of `mart bench train` in PyTorch, for bench/train_vs_torch.sh.

Same architecture (Qwen2: RMSNorm, q/k/v with bias, rotate-half rotary, grouped-query
causal attention, SwiGLU, tied LM head), same batch shapes, mean cross-entropy over next
tokens, gradient clipping at 1.0 and AdamW, in FP32. Prints one line per config in the
format of `mart bench train`, with the FLOPs counted the same way (3 x forward matrix
products; causal attention as 2 L^2 hd per head). Run it through train_vs_torch.sh, which
gives PyTorch its best set-up on this machine (threads, BLIS, tcmalloc).
"""
import argparse
import resource
import time

import torch
import torch.nn.functional as F

SHAPES = {  # name: (vocab, d, layers, heads, kv heads, ffn, batch, seq_len)
    "small": (512, 256, 4, 4, 2, 704, 8, 256),
    "40m": (32000, 512, 8, 8, 4, 1408, 4, 512),
}


class Block(torch.nn.Module):
    def __init__(self, d, nh, nkv, ffn):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, d // nh
        self.attn_norm = torch.nn.Parameter(torch.ones(d))
        self.q = torch.nn.Linear(d, nh * self.hd)
        self.k = torch.nn.Linear(d, nkv * self.hd)
        self.v = torch.nn.Linear(d, nkv * self.hd)
        self.o = torch.nn.Linear(nh * self.hd, d, bias=False)
        self.mlp_norm = torch.nn.Parameter(torch.ones(d))
        self.gate = torch.nn.Linear(d, ffn, bias=False)
        self.up = torch.nn.Linear(d, ffn, bias=False)
        self.down = torch.nn.Linear(ffn, d, bias=False)


def rmsnorm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Model(torch.nn.Module):
    def __init__(self, vocab, d, layers, nh, nkv, ffn):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList(Block(d, nh, nkv, ffn) for _ in range(layers))
        self.norm = torch.nn.Parameter(torch.ones(d))
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, tokens, mask, cos, sin):
        b, n = tokens.shape
        x = self.embed(tokens)
        for blk in self.blocks:
            a = rmsnorm(x, blk.attn_norm)
            q = blk.q(a).view(b, n, blk.nh, blk.hd).transpose(1, 2)
            k = blk.k(a).view(b, n, blk.nkv, blk.hd).transpose(1, 2)
            v = blk.v(a).view(b, n, blk.nkv, blk.hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = blk.nh // blk.nkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            s = (q @ k.transpose(-1, -2)) * (blk.hd ** -0.5)
            p = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
            o = (p @ v).transpose(1, 2).reshape(b, n, blk.nh * blk.hd)
            x = x + blk.o(o)
            a = rmsnorm(x, blk.mlp_norm)
            x = x + blk.down(F.silu(blk.gate(a)) * blk.up(a))
        return F.linear(rmsnorm(x, self.norm), self.embed.weight)


def step_flops(vocab, d, layers, nh, nkv, ffn, batch, n):
    hd = d // nh
    per_layer = d * (nh + 2 * nkv) * hd + nh * hd * d + 3 * d * ffn
    linear = 2.0 * batch * n * (layers * per_layer + d * vocab)
    attn = 2.0 * layers * nh * hd * n * n * batch
    return 3.0 * (linear + attn)


def run(name, steps, threads):
    vocab, d, layers, nh, nkv, ffn, batch, n = SHAPES[name]
    torch.manual_seed(1)
    torch.set_num_threads(threads)
    model = Model(vocab, d, layers, nh, nkv, ffn)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1)
    tokens = torch.randint(0, vocab, (batch, n))
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    hd = d // nh
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(n).float()[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    params = sum(p.numel() for p in model.parameters())
    t0 = 0.0
    for step in range(steps + 1):  # step 0 warms up
        if step == 1:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        logits = model(tokens, mask, cos, sin)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    dt = (time.perf_counter() - t0) / steps
    fl = step_flops(vocab, d, layers, nh, nkv, ffn, batch, n)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:<6s} params {params / 1e6:5.1f}M  batch {batch}x{n}  {dt * 1e3:8.1f} ms/step  "
          f"{batch * n / dt:9.0f} tokens/s  {fl / dt / 1e9:6.1f} GFLOP/s  loss {loss.item():.3f}  "
          f"peak RSS {rss:.0f} MiB", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="all", choices=["small", "40m", "all"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"torch {torch.__version__} threads {a.threads}")
    for name in SHAPES:
        if a.config in ("all", name):
            run(name, a.steps, a.threads)


if __name__ == "__main__":
    main()
