"""Loads a tiny Tandem GPT's weights.h5 into tools/gpt_torch.py's PyTorch
module, written from the README's description of the model, and checks
that PyTorch computes Tandem's logits.

Usage: test_torch_gpt.py <export_gpt executable> <tools/gpt_torch.py>
Exit status 77 (skipped, for meson) when torch, h5py or numpy is missing."""
import importlib.util
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


def main():
    exe, module_path = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("gpt_torch", module_path)
    gpt_torch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpt_torch)
    with tempfile.TemporaryDirectory(prefix="td_torch_gpt_") as d:
        run = subprocess.run([exe, d], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"FAIL: {exe} exited {run.returncode}: {run.stderr.strip()}")
            return 1
        model, vocab = gpt_torch.load_gpt(f"{d}/weights.h5")
        with h5py.File(f"{d}/weights.h5", "r") as f:
            names = sorted(n.decode() if isinstance(n, bytes) else str(n)
                           for n in f.attrs["param_order"])
        torch_names = sorted(gpt_torch.h5_name(n) for n, _ in model.named_parameters())
        if names != torch_names:
            print(f"FAIL: parameter names differ:\n  tandem {names}\n  torch  {torch_names}")
            return 1
        if vocab != bytes(range(ord("a"), ord("a") + 11)):
            print(f"FAIL: vocabulary {vocab!r}")
            return 1
        with h5py.File(f"{d}/reference.h5", "r") as f:
            ids = torch.from_numpy(f["ids"][...].astype(np.int64))
            want = torch.from_numpy(f["logits"][...])
    model.eval()
    with torch.no_grad():
        got = model(ids)
    diff = (got - want).abs().max().item()
    scale = want.abs().max().item()
    print(f"{len(torch_names)} parameters by name; max |torch - tandem| = {diff:.3e} "
          f"(logits up to {scale:.3f}, ids {tuple(ids.shape)})")
    if not diff < 1e-4 * max(1.0, scale):
        print("FAIL: difference above 1e-4 relative")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
