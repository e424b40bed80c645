#!/usr/bin/env python3
"""Run a tracc model file with nothing but the standard library and numpy.

    run_model.py [--hard] [--blocks K] MODEL < inputs     one JSON array per input line
    run_model.py --compare A B                            compare two such outputs

This is the interop check of docs/model-format.md: it reads the safetensors container
with struct + json, finds every tensor by its TransformerLens name, takes the sizes from
the `config` metadata, runs the forward pass in float64 and decodes the output as the
spec says. tests/cli/interop.sh diffs its output against `tracc run --json`.
"""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__")
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        tensors[name] = arr.astype(np.float64)
    return tensors, meta


def text_of(token):
    return token if isinstance(token, str) else str(token)


class Model:
    def __init__(self, path):
        self.t, meta = load(path)
        self.cfg = json.loads(meta["config"])
        self.vocab = json.loads(meta["vocab"])
        self.bos = self.vocab.index(json.loads(meta["bos"]))
        self.pad = self.vocab.index(json.loads(meta["pad"]))
        self.output = json.loads(meta["output"])

    def forward(self, ids, hard=False, blocks=None):
        c, t = self.cfg, self.t
        T = len(ids)
        x = t["embed.W_E"][ids] + t["pos_embed.W_pos"][:T]
        L = c["n_layers"] if blocks is None else min(blocks, c["n_layers"])
        for l in range(L):
            p = "blocks.%d." % l
            attn = np.zeros_like(x) + t[p + "attn.b_O"]
            for h in range(c["n_heads"]):
                q = x @ t[p + "attn.W_Q"][h] + t[p + "attn.b_Q"][h]
                k = x @ t[p + "attn.W_K"][h] + t[p + "attn.b_K"][h]
                v = x @ t[p + "attn.W_V"][h] + t[p + "attn.b_V"][h]
                s = q @ k.T
                if c["use_attn_scale"]:
                    s = s / c["attn_scale"]
                if c["attention_dir"] == "causal":
                    s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, -np.inf)
                m = s.max(axis=1, keepdims=True)
                if hard:
                    tol = 1e-4 * np.maximum(1.0, np.abs(m))
                    w = (s >= m - tol).astype(np.float64)
                else:
                    w = np.exp(s - m)
                w = w / w.sum(axis=1, keepdims=True)
                attn = attn + (w @ v) @ t[p + "attn.W_O"][h]
            x = x + attn
            hidden = np.maximum(x @ t[p + "mlp.W_in"] + t[p + "mlp.b_in"], 0.0)
            x = x + hidden @ t[p + "mlp.W_out"] + t[p + "mlp.b_out"]
        return x @ t["unembed.W_U"] + t["unembed.b_U"]

    def run(self, tokens, hard=False, blocks=None):
        texts = [text_of(v) for v in self.vocab]
        ids = [self.bos]
        for tok in tokens:
            row = texts.index(tok)
            assert row not in (self.bos, self.pad), tok
            ids.append(row)
        logits = self.forward(ids, hard, blocks)[1:]
        if self.output["encoding"] == "numerical":
            return [float(row[0]) for row in logits]
        # no value (null) unless the largest logit is above 0.5 (docs/model-format.md)
        return [self.output["values"][int(np.argmax(row))] if row.max() > 0.5 else None for row in logits]


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
            return a == b
        return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))
    return a == b and type(a) == type(b)


def compare(path_a, path_b):
    with open(path_a) as f:
        a = [json.loads(line) for line in f]
    with open(path_b) as f:
        b = [json.loads(line) for line in f]
    bad = 0
    if len(a) != len(b):
        print("%d lines against %d" % (len(a), len(b)))
        return 1
    for i, (ra, rb) in enumerate(zip(a, b)):
        if len(ra) != len(rb) or not all(same(x, y) for x, y in zip(ra, rb)):
            print("line %d: %s != %s" % (i + 1, json.dumps(ra), json.dumps(rb)))
            bad += 1
    return 1 if bad else 0


def main(argv):
    if argv[:1] == ["--compare"]:
        return compare(argv[1], argv[2])
    hard, blocks = False, None
    while argv and argv[0].startswith("--"):
        if argv[0] == "--hard":
            hard = True
            argv = argv[1:]
        elif argv[0] == "--blocks":
            blocks = int(argv[1])
            argv = argv[2:]
        else:
            print("unknown option " + argv[0], file=sys.stderr)
            return 2
    model = Model(argv[0])
    for line in sys.stdin:
        print(json.dumps(model.run(line.split(), hard, blocks)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
