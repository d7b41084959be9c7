"""Loads Tandem's exported MLP weights into torch.nn.Linear layers the way
the README documents, and checks PyTorch computes Tandem's logits.

Usage: test_torch_load.py <export_mlp executable>
Exit status 77 (skipped, for meson) when torch, h5py or numpy is missing."""
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:
    print(f"skipped: {e} (install python3-torch and python3-h5py)")
    sys.exit(77)


def load_mlp(path):
    """The README snippet: one nn.Linear per layer, weights [out, in]."""
    fc1, fc2, fc3 = torch.nn.Linear(784, 128), torch.nn.Linear(128, 64), torch.nn.Linear(64, 10)
    with h5py.File(path, "r") as f:
        for name, layer in (("fc1", fc1), ("fc2", fc2), ("fc3", fc3)):
            layer.weight.data.copy_(torch.from_numpy(f[f"{name}/weight"][...]))
            layer.bias.data.copy_(torch.from_numpy(f[f"{name}/bias"][...]))
    return torch.nn.Sequential(fc1, torch.nn.ReLU(), fc2, torch.nn.ReLU(), fc3)


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="td_torch_load_") as d:
        run = subprocess.run([exe, d], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"FAIL: {exe} exited {run.returncode}: {run.stderr.strip()}")
            return 1
        with h5py.File(f"{d}/weights.h5", "r") as f:
            # Fixed-length strings (no global heap): h5py 3 reads them as bytes.
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
            order = [n.decode() for n in f.attrs["param_order"]]
            vlen = [k for k in f.attrs
                    if h5py.check_string_dtype(f.attrs.get_id(k).dtype).length is None]
            dtypes = {k: f[k].dtype for k in order}
            userblock = f.userblock_size
        print(f"weights.h5 attributes: framework={attrs['framework']} "
              f"version={attrs['version']} param_order={order}; user block {userblock} bytes")
        expected = [f"fc{i}/{p}" for i in (1, 2, 3) for p in ("weight", "bias")]
        if attrs["framework"] != "tandem" or order != expected:
            print(f"FAIL: attributes {attrs}, expected framework=tandem and order {expected}")
            return 1
        if vlen or userblock != 512:
            print(f"FAIL: variable-length attributes {vlen}, user block {userblock} (want none, 512)")
            return 1
        if any(t != np.float32 for t in dtypes.values()):
            print(f"FAIL: dtypes {dtypes}, expected float32")
            return 1
        model = load_mlp(f"{d}/weights.h5")
        with h5py.File(f"{d}/reference.h5", "r") as f:
            x = torch.from_numpy(f["x"][...])
            want = torch.from_numpy(f["logits"][...])
    with torch.no_grad():
        got = model(x)
    diff = (got - want).abs().max().item()
    scale = want.abs().max().item()
    print(f"max |torch - tandem| = {diff:.3e} (logits up to {scale:.3f}, batch {tuple(x.shape)})")
    if not diff < 1e-4:
        print("FAIL: difference above 1e-4")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
