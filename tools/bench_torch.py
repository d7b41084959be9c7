"""PyTorch reference for tools/bench.sh: the seed MLP (784-128-64-10, ReLU,
softmax cross-entropy) at a given batch and thread count, timing one
gradient step and one gradient + Hessian-vector-product step, printed as
`key value` lines like tandem-bench's."""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10))
    params = list(model.parameters())
    x = torch.rand(a.batch, 784)
    y = torch.randint(0, 10, (a.batch,))
    v = [1e-3 * torch.randn_like(p) for p in params]

    def grad_step():
        loss = F.cross_entropy(model(x), y)
        return torch.autograd.grad(loss, params)

    def grad_hvp_step():
        # Double backward: the usual way to get H v in PyTorch.
        loss = F.cross_entropy(model(x), y)
        g = torch.autograd.grad(loss, params, create_graph=True)
        return torch.autograd.grad(g, params, grad_outputs=v)

    def timed(fn):
        for _ in range(a.warmup):
            fn()
        reps = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                fn()
            reps.append((time.perf_counter() - t0) / a.steps)
        return statistics.median(reps)

    tg = timed(grad_step)
    th = timed(grad_hvp_step)
    print(f"torch {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    print(f"grad_step_ms {tg * 1e3:.4f}")
    print(f"grad_hvp_step_ms {th * 1e3:.4f}")
    print(f"hvp_over_grad {th / tg:.3f}")


if __name__ == "__main__":
    main()
