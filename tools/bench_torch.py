"""PyTorch reference for tools/bench.sh: the same workloads as tandem-bench,
printed as `key value` lines like tandem-bench's.

    bench_torch.py --model mlp|wide-mlp|gpt --plans grad,hvp,jvp,train ...
        grad   loss and the gradient of every parameter (autograd.grad)
        hvp    gradient and H v by double backward (the usual way in PyTorch)
        jvp    the logits and their JVP in a direction of the parameters
               (forward-mode AD, torch.autograd.forward_ad)
        train  gradient, global-norm clipping at 1 and an AdamW step (the GPT
               recipe: betas 0.9/0.95, weight decay 0.1)
    bench_torch.py --epoch --data DIR ...
        one epoch of the seed MLP on Fashion-MNIST with Adam (lr 0.002,
        batch 128, shuffled, the last partial batch skipped) and the
        evaluation on the test set, as `tandem train` runs it; epoch_s is
        the time of both, without start-up and data loading.
    bench_torch.py --product M,K,N ...
        one product [M, K] x [K, N], each operand stored plain or transposed
        (product_nn, _tn, _nt, _tt), as tandem-bench --product times it.

Times are medians of 7 repetitions of --steps runs after --warmup runs."""
import argparse
import gzip
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def mlp(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def build(a):
    """The model, a batch (x, y) and a loss function of the logits."""
    if a.model == "gpt":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from gpt_torch import GPT
        vocab = 73  # tandem-bench's stand-in vocabulary, the KJV Bible's size
        model = GPT(vocab, a.layers, a.d_model, a.heads, a.context, 0.0)
        x = torch.randint(0, vocab, (a.batch, a.context))
        y = torch.randint(0, vocab, (a.batch, a.context))

        def loss_of(logits):
            return F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        return model, x, loss_of
    widths = [784, 4096, 4096, 10] if a.model == "wide-mlp" else [784, 128, 64, 10]
    model = mlp(widths)
    x = torch.rand(a.batch, 784)
    y = torch.randint(0, 10, (a.batch,))
    return model, x, lambda logits: F.cross_entropy(logits, y)


def timed(fn, a):
    for _ in range(a.warmup):
        fn()
    reps = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            fn()
        reps.append((time.perf_counter() - t0) / a.steps)
    med = statistics.median(reps)
    return med, (max(reps) - min(reps)) / med


def bench_steps(a):
    model, x, loss_of = build(a)
    params = list(model.parameters())
    v = [1e-3 * torch.randn_like(p) for p in params]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)

    def grad():
        return torch.autograd.grad(loss_of(model(x)), params)

    def hvp():
        g = torch.autograd.grad(loss_of(model(x)), params, create_graph=True)
        return torch.autograd.grad(g, params, grad_outputs=v)

    def jvp():
        import torch.autograd.forward_ad as fwAD
        with fwAD.dual_level():
            saved = dict(model.named_parameters())
            for (name, p), t in zip(saved.items(), v):
                set_param(model, name, fwAD.make_dual(p.detach(), t))
            try:
                out = fwAD.unpack_dual(model(x))
                return out.primal, out.tangent
            finally:
                for name, p in saved.items():
                    set_param(model, name, p)

    def train():
        opt.zero_grad(set_to_none=True)
        loss_of(model(x)).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    fns = {"grad": ("grad_step", grad), "hvp": ("grad_hvp_step", hvp),
           "jvp": ("jvp_step", jvp), "train": ("train_step", train)}
    print(f"torch {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    print(f"parameters {sum(p.numel() for p in params)}")
    for plan in a.plans.split(","):
        key, fn = fns[plan]
        med, spread = timed(fn, a)
        print(f"{key}_ms {med * 1e3:.4f}")
        print(f"{key}_spread {spread:.3f}")


def bench_product(a):
    """One product [M, K] x [K, N] with each operand stored plain or
    transposed, as tandem-bench --product times it (out= writes into one
    buffer, as a plan does)."""
    m, k, n = (int(v) for v in a.product.split(","))
    print(f"torch {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    c = torch.empty(m, n)
    for name in ("nn", "tn", "nt", "tt"):
        x = torch.randn(k, m).t() if name[0] == "t" else torch.randn(m, k)
        y = torch.randn(n, k).t() if name[1] == "t" else torch.randn(k, n)
        med, spread = timed(lambda: torch.matmul(x, y, out=c), a)
        print(f"product_{name}_ms {med * 1e3:.4f}")
        print(f"product_{name}_spread {spread:.3f}")


def set_param(model, name, value):
    """Replaces parameter `name` of model by a tensor (forward-mode duals)."""
    *path, leaf = name.split(".")
    m = model
    for p in path:
        m = getattr(m, p)
    delattr(m, leaf)
    if isinstance(value, torch.nn.Parameter):
        m.register_parameter(leaf, value)
    else:
        setattr(m, leaf, value)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def bench_epoch(a):
    d = a.data
    xtr = torch.from_numpy(read_idx(f"{d}/train-images-idx3-ubyte.gz").reshape(-1, 784).copy())
    ytr = torch.from_numpy(read_idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy(read_idx(f"{d}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).copy())
    yte = torch.from_numpy(read_idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    xtr, xte = xtr.float() / 255, xte.float() / 255
    torch.manual_seed(1)
    model = mlp([784, 128, 64, 10])
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    gen = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    order = torch.randperm(len(xtr), generator=gen)
    steps = len(xtr) // a.batch
    for s in range(steps):
        idx = order[s * a.batch:(s + 1) * a.batch]
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t1 = time.perf_counter()
    with torch.no_grad():
        correct, total = 0, 0.0
        for i in range(0, len(xte), 1000):
            logits = model(xte[i:i + 1000])
            total += F.cross_entropy(logits, yte[i:i + 1000], reduction="sum").item()
            correct += (logits.argmax(1) == yte[i:i + 1000]).sum().item()
    t2 = time.perf_counter()
    print(f"torch {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    print(f"epoch_s {t2 - t0:.4f}")
    print(f"epoch_train_s {t1 - t0:.4f}")
    print(f"test_loss {total / len(xte):.4f}")
    print(f"test_acc {correct / len(xte):.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="mlp", choices=("mlp", "wide-mlp", "gpt"))
    ap.add_argument("--plans", default="grad,hvp")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--epoch", action="store_true")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--product", metavar="M,K,N", help="time one product in each operand layout")
    a = ap.parse_args()
    if a.batch == 0:
        a.batch = 16 if a.model == "gpt" else 256 if a.model == "wide-mlp" else 128
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    bench_product(a) if a.product else bench_epoch(a) if a.epoch else bench_steps(a)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak_rss_mb {rss / 1024:.1f}")


if __name__ == "__main__":
    main()
