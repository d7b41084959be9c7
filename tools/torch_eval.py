"""Loads weights written by `tandem train` into torch.nn.Linear layers, as
the README shows, and prints their test accuracy, to compare with Tandem's.

  /usr/bin/python3 tools/torch_eval.py out/weights.h5 [DATA]

DATA is the Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
or an HDF5 file with datasets x and y. Needs python3-torch and python3-h5py;
exits 77 without them."""
import gzip
import os
import sys

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:
    print(f"skipped: {e} (apt-get install python3-torch python3-h5py)")
    sys.exit(77)


def load_mlp(path):
    layers = []
    with h5py.File(path, "r") as f:
        for name in ("fc1", "fc2", "fc3"):
            w = torch.from_numpy(f[f"{name}/weight"][...])  # [out, in], like nn.Linear
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            lin.weight.data.copy_(w)
            lin.bias.data.copy_(torch.from_numpy(f[f"{name}/bias"][...]))
            layers += [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_test(data):
    if data.endswith((".h5", ".hdf5")):
        with h5py.File(data, "r") as f:
            x = f["x"][...]
            y = f["y"][...]
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255
        return x.astype(np.float32).reshape(len(x), -1), y.astype(np.int64)
    pick = lambda stem: next(os.path.join(data, n) for n in (stem + ".gz", stem)
                             if os.path.exists(os.path.join(data, n)))
    x = read_idx(pick("t10k-images-idx3-ubyte")).astype(np.float32) / 255
    y = read_idx(pick("t10k-labels-idx1-ubyte")).astype(np.int64)
    return x.reshape(len(x), -1), y


def main():
    weights = sys.argv[1]
    data = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    model = load_mlp(weights)
    x, y = load_test(data)
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    print(f"PyTorch {torch.__version__} on {weights}: {len(y)} test samples, "
          f"accuracy {100 * (pred == y).mean():.2f}%")


if __name__ == "__main__":
    main()
