"""Tandem's GPT in PyTorch, written from its description in the README
(pre-LN GPT-2 layout, learned positions, exact GELU, layer-norm eps 1e-5,
attention scale 1/sqrt(d/H), untied head without bias; PyTorch's parameter
names and [out, in] shapes).

    gpt_torch.py logits WEIGHTS IDS.h5      print PyTorch's logits for ids of an HDF5 file
    gpt_torch.py train --text kjv.txt ...   the training recipe of the README in PyTorch,
                                            for comparing validation loss and step time

As a module: load_gpt(path) builds the model a Tandem weights.h5 records
(model_config and vocab attributes/datasets) and loads its parameters."""
import argparse
import math
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d, 3 * d)  # rows q, then k, then v
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        p = F.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
        p = F.dropout(p, self.dropout, self.training)
        y = (p @ v).transpose(1, 2).reshape(b, t, d)
        return F.dropout(self.proj(y), self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, d, dropout):
        super().__init__()
        self.dropout = dropout
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return F.dropout(self.proj(F.gelu(self.fc(x))), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), Attention(d, heads, dropout)
        self.ln2, self.mlp = nn.LayerNorm(d), MLP(d, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, layers=4, d_model=256, heads=4, context=128, dropout=0.0):
        super().__init__()
        self.context, self.dropout = context, dropout
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        self.h = nn.ModuleList(Block(d_model, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        # GPT-2's initialisation, as Tandem's zoo model.
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln" in name or name.startswith("ln_f"):
                nn.init.ones_(p)
            elif name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.tok_emb(ids) + self.pos_emb.weight[:t]
        x = F.dropout(x, self.dropout, self.training)
        for block in self.h:
            x = block(x)
        return self.head(self.ln_f(x))


def h5_name(param_name):
    """PyTorch's "h.0.attn.qkv.weight" is Tandem's "h0/attn/qkv/weight"."""
    parts = param_name.split(".")
    if parts[0] == "h":
        parts = [f"h{parts[1]}"] + parts[2:]
    return "/".join(parts)


def config_of(f):
    words = f.attrs["model_config"]
    words = words.decode() if isinstance(words, bytes) else str(words)
    cfg = {}
    for w in words.split():
        k, v = w.split("=")
        cfg[k] = float(v) if k == "dropout" else int(v)
    return cfg


def load_gpt(path):
    """The GPT a Tandem weights.h5 describes, with its parameters; and its vocabulary."""
    with h5py.File(path, "r") as f:
        vocab = bytes(f["vocab"][...])
        model = GPT(len(vocab), **config_of(f))
        state = {n: torch.from_numpy(f[h5_name(n)][...]) for n, _ in model.named_parameters()}
    model.load_state_dict(state)
    return model, vocab


def cmd_logits(a):
    model, _ = load_gpt(a.weights)
    model.eval()
    with h5py.File(a.ids, "r") as f:
        ids = torch.from_numpy(f["ids"][...].astype(np.int64))
    with torch.no_grad():
        print(model(ids).numpy())


def read_text(path, val_fraction):
    data = np.frombuffer(open(path, "rb").read(), dtype=np.uint8)
    vocab = np.unique(data)
    lut = np.zeros(256, dtype=np.int64)
    lut[vocab] = np.arange(len(vocab))
    tokens = torch.from_numpy(lut[data])
    n_val = int(math.floor(val_fraction * len(tokens)))
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val:], len(vocab)


def lr_at(step, a):
    """Tandem's schedule: linear warmup from lr/W, then cosine to min_lr."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    j, total = step - a.warmup, max(a.steps - a.warmup, 1)
    return a.min_lr + (a.lr - a.min_lr) * (1 + math.cos(math.pi * min(j, total) / total)) / 2


@torch.no_grad()
def evaluate(model, val, a):
    """Tandem's validation windows: starts n_train + k * context, every
    validation token after the first a target once."""
    model.eval()
    c = a.context
    n_windows = (len(val) - 1) // c
    if a.eval_batches:
        n_windows = min(n_windows, a.eval_batches * a.batch)
    total, count = 0.0, 0
    for first in range(0, n_windows, a.batch):
        starts = range(first, min(first + a.batch, n_windows))
        x = torch.stack([val[s * c: s * c + c] for s in starts])
        y = torch.stack([val[s * c + 1: s * c + c + 1] for s in starts])
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


def cmd_train(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    train, val, vocab = read_text(a.text, a.val_fraction)
    model = GPT(vocab, a.layers, a.d_model, a.heads, a.context, a.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(a.beta1, a.beta2), eps=1e-8,
                            weight_decay=a.weight_decay)
    gen = torch.Generator().manual_seed(a.seed)
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{sum(p.numel() for p in model.parameters())} parameters, vocabulary {vocab}")
    print("step,train_loss,val_loss,seconds,step_ms")
    t0, loss_sum, n = time.perf_counter(), 0.0, 0
    times = []
    for step in range(a.steps):
        ts = time.perf_counter()
        starts = torch.randint(0, len(train) - a.context, (a.batch,), generator=gen)
        x = torch.stack([train[s: s + a.context] for s in starts])
        y = torch.stack([train[s + 1: s + a.context + 1] for s in starts])
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        times.append(time.perf_counter() - ts)
        loss_sum, n = loss_sum + loss.item(), n + 1
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            v = evaluate(model, val, a)
            print(f"{step + 1},{loss_sum / n:.4f},{v:.4f},{time.perf_counter() - t0:.1f},"
                  f"{1e3 * float(np.median(times[-a.eval_every:])):.1f}", flush=True)
            loss_sum, n = 0.0, 0
    print(f"median step {1e3 * float(np.median(times)):.1f} ms over {len(times)} steps")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("weights")
    lg.add_argument("ids")
    tr = sub.add_parser("train")
    tr.add_argument("--text", required=True)
    for name, kind, default in (("layers", int, 4), ("d-model", int, 256), ("heads", int, 4),
                                ("context", int, 128), ("dropout", float, 0.0),
                                ("batch", int, 16), ("steps", int, 1500),
                                ("eval-every", int, 250), ("eval-batches", int, 0),
                                ("lr", float, 1e-3), ("min-lr", float, 1e-4),
                                ("warmup", int, 100), ("beta1", float, 0.9),
                                ("beta2", float, 0.95), ("weight-decay", float, 0.1),
                                ("clip", float, 1.0), ("threads", int, 2), ("seed", int, 1),
                                ("val-fraction", float, 0.1)):
        tr.add_argument(f"--{name}", type=kind, default=default)
    a = ap.parse_args()
    (cmd_logits if a.cmd == "logits" else cmd_train)(a)


if __name__ == "__main__":
    sys.exit(main())
