#!/usr/bin/env python3
"""torch_step.py — the PyTorch reference for bench/bench_train.c: the same fine-tuning step
(forward over every position, cross-entropy of softmax(10 * logits) at the answer position,
backward, global-norm clipping to 1, SGD with momentum 0.9) on a tracc model file, timed on
this machine. Optional: it needs Debian's python3-torch and exits 0 with a message when torch
is not installed (CI never installs it).

usage: torch_step.py MODEL.safetensors [STEPS] [BATCH]
Prints one line: "torch: median S s/step (p10 A, p90 B), N seqs/s, torch threads T, OPENBLAS_NUM_THREADS X".
The model is read with the standard library and numpy only (the format is safetensors).
"""
import json
import os
import struct
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as e:  # no torch here: skip cleanly
    print("torch: skipped (%s; `apt-get install python3-torch` to compare)" % e)
    sys.exit(0)


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[base + a:base + b], dtype="<f4").reshape(t["shape"]).copy()
    return tensors, meta


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 96
    torch.set_num_threads(1)  # the best set-up on Debian's build (see docs/benchmarks.md)
    w, meta = load(path)
    cfg = json.loads(meta["config"])
    L, NH = cfg["n_layers"], cfg["n_heads"]
    scale = 1.0 / cfg["attn_scale"] if cfg["use_attn_scale"] else 1.0
    vocab = json.loads(meta["vocab"])
    bos = vocab.index(json.loads(meta["bos"]))
    T = cfg["n_ctx"]
    rng = np.random.default_rng(0)
    letters = [i for i, v in enumerate(vocab) if v not in (json.loads(meta["bos"]), json.loads(meta["pad"]))]
    b_row = vocab.index("b") if "b" in vocab else letters[1]
    params = {k: torch.tensor(v, requires_grad=not k.startswith("unembed.")) for k, v in w.items()}
    trainable = [p for k, p in params.items() if p.requires_grad]
    rng2 = np.random.default_rng(1)
    with torch.no_grad():  # the paper's densifying noise
        for p in trainable:
            p.add_(torch.tensor(rng2.normal(0, 3e-5, p.shape), dtype=torch.float32))
    opt = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9)

    def forward(tok):
        x = params["embed.W_E"][tok] + params["pos_embed.W_pos"][: tok.shape[1]]
        for l in range(L):
            p = lambda n: params["blocks.%d.%s" % (l, n)]
            att = p("attn.b_O")
            for h in range(NH):
                q = x @ p("attn.W_Q")[h] + p("attn.b_Q")[h]
                k = x @ p("attn.W_K")[h] + p("attn.b_K")[h]
                v = x @ p("attn.W_V")[h] + p("attn.b_V")[h]
                s = (q @ k.transpose(1, 2)) * scale
                att = att + torch.softmax(s, dim=-1) @ v @ p("attn.W_O")[h]
            x = x + att
            x = x + torch.relu(x @ p("mlp.W_in") + p("mlp.b_in")) @ p("mlp.W_out") + p("mlp.b_out")
        return x @ params["unembed.W_U"] + params["unembed.b_U"]

    def batch_of():
        tok = rng.choice(letters, size=(batch, T - 1))
        target = (tok == b_row).sum(axis=1)
        tok = np.concatenate([np.full((batch, 1), bos), tok], axis=1)
        return torch.tensor(tok), torch.tensor(target)

    batches = [batch_of() for _ in range(steps + 5)]
    times = []
    for i, (tok, target) in enumerate(batches):
        t0 = time.perf_counter()
        logits = forward(tok)[:, 2]  # RASP index 1
        loss = torch.nn.functional.cross_entropy(10.0 * logits, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print("torch: median %.4f s/step (p10 %.4f, p90 %.4f), %.0f seqs/s, torch threads %d, OPENBLAS_NUM_THREADS %s"
          % (med, times[len(times) // 10], times[len(times) * 9 // 10], batch / med, torch.get_num_threads(),
             os.environ.get("OPENBLAS_NUM_THREADS", "unset")))


if __name__ == "__main__":
    main()
