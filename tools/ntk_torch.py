"""PyTorch's two routes to the empirical NTK of the seed MLP (784-128-64-10,
ReLU), on the same weights and inputs as `tandem ntk`, for tools/ntk_bench.sh
and the README's comparison:

  functorch   vmap(jacrev(f)) per-sample Jacobians of every parameter,
              contracted with einsum (the route of functorch's NTK tutorial);
  layerwise   a formula written by hand for this MLP: per-layer output
              cotangents delta^k of every output k (batched over samples and
              outputs), and Theta = sum_l (delta_l delta_l^T) * (a_{l-1} a_{l-1}^T + 1).

  /usr/bin/python3 tools/ntk_torch.py WEIGHTS.h5 [--n 128] [--threads 2]
      [--repeat 5] [--trace] [--check ntk.h5] [--data DIR] [--skip-functorch]

Prints `key value` lines: each route's median and minimum time in ms over
--repeat runs (after one warm-up run), and with --check the largest
difference to Tandem's kernel relative to its largest entry. Inputs are the
first N Fashion-MNIST test images scaled to [0, 1], as `tandem ntk`'s
default. Needs python3-torch (with functorch) and python3-h5py; exits 77
without them."""
import argparse
import gzip
import os
import statistics
import sys
import time

try:
    import h5py
    import numpy as np
    import torch
    from functorch import jacrev, make_functional, vmap
except ImportError as e:
    print(f"skipped: {e} (apt-get install python3-torch python3-h5py)")
    sys.exit(77)

LAYERS = ("fc1", "fc2", "fc3")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(weights, data, n):
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    with h5py.File(weights, "r") as f:
        for name, lin in zip(LAYERS, (model[0], model[2], model[4])):
            lin.weight.data.copy_(torch.from_numpy(f[f"{name}/weight"][...]))
            lin.bias.data.copy_(torch.from_numpy(f[f"{name}/bias"][...]))
    x = read_idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"))[:n]
    x = torch.from_numpy(x.reshape(n, -1).astype(np.float32) / 255)
    return model, x


def ntk_functorch(model, x, trace):
    fmodel, params = make_functional(model)

    def f(p, xi):
        return fmodel(p, xi.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(f), (None, 0))(params, x)  # per parameter [N, K, *shape]
    jac = [j.flatten(2) for j in jac]
    if trace:
        return sum(torch.einsum("nkp,mkp->nm", j, j) for j in jac)
    return sum(torch.einsum("nkp,mlp->nmkl", j, j) for j in jac)


def ntk_layerwise(model, x, trace):
    """delta^k_l = d f_k / d z_l for every sample and output, backwards from
    the identity at the logits; the blocks (delta delta^T) * (a a^T + 1)."""
    lins = [model[0], model[2], model[4]]
    acts, pre = [x], []
    h = x
    for i, lin in enumerate(lins):
        z = h @ lin.weight.T + lin.bias
        pre.append(z)
        h = torch.relu(z) if i < 2 else z
        acts.append(h)
    n, K = x.shape[0], lins[-1].weight.shape[0]
    delta = torch.eye(K).expand(n, K, K)  # [N, K (output), units] at the logits
    out = 0
    for i in (2, 1, 0):
        a = acts[i]
        aa = a @ a.T + 1  # [N, N]: the activations' products plus the bias
        if trace:
            d = torch.einsum("nku,mku->nm", delta, delta)
            out = out + d * aa
        else:
            d = torch.einsum("nku,mlu->nmkl", delta, delta)
            out = out + d * aa[:, :, None, None]
        if i > 0:
            delta = (delta @ lins[i].weight) * (pre[i - 1] > 0)[:, None, :]
    return out


def timed(fn, repeat):
    fn()  # warm-up: first touch of buffers, functorch's tracing
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        k = fn()
        ts.append(1e3 * (time.perf_counter() - t0))
    return k, statistics.median(ts), min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--check", help="a tandem ntk file of the same weights and samples")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--skip-functorch", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, x = load(a.weights, a.data, a.n)
    results = {}
    with torch.no_grad():
        k, med, best = timed(lambda: ntk_layerwise(model, x, a.trace), a.repeat)
    results["layerwise"] = k
    print(f"layerwise_ms {med:.3f}")
    print(f"layerwise_min_ms {best:.3f}")
    if not a.skip_functorch:
        k, med, best = timed(lambda: ntk_functorch(model, x, a.trace), a.repeat)
        results["functorch"] = k
        print(f"functorch_ms {med:.3f}")
        print(f"functorch_min_ms {best:.3f}")
    if a.check:
        with h5py.File(a.check, "r") as f:
            ref = f["ntk"][...].astype(np.float64)
        scale = np.abs(ref).max()
        for name, k in results.items():
            err = np.abs(k.detach().double().numpy() - ref).max() / scale
            print(f"{name}_vs_tandem_rel {err:.3e}")


if __name__ == "__main__":
    main()
