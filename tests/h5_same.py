"""Exit 0 when two HDF5 weight files hold bitwise-identical datasets, or,
with --tol X, datasets of equal names and shapes whose largest elementwise
difference is at most X (printed either way).
Usage: h5_same.py [--tol X] A.h5 B.h5   (exit 77 when h5py is missing)"""
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)


def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...])
                     if isinstance(obj, h5py.Dataset) else None)
    return out


args = sys.argv[1:]
tol = None
if args[0] == "--tol":
    tol, args = float(args[1]), args[2:]
a, b = datasets(args[0]), datasets(args[1])
if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
    print(f"different datasets: {sorted(a)} vs {sorted(b)}")
    sys.exit(1)
if tol is None:
    diff = [k for k in a if a[k].tobytes() != b[k].tobytes()]
    print(f"{len(a)} datasets, {len(diff)} differ{': ' + ', '.join(diff) if diff else ''}")
    sys.exit(1 if diff else 0)
worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
print(f"{len(a)} datasets, largest difference {worst:.3g} (tolerance {tol:g})")
sys.exit(0 if worst <= tol else 1)
