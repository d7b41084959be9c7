"""Exit 0 when two HDF5 weight files hold bitwise-identical datasets.
Usage: h5_same.py A.h5 B.h5   (exit 77 when h5py is missing)"""
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
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...].tobytes())
                     if isinstance(obj, h5py.Dataset) else None)
    return out


a, b = datasets(sys.argv[1]), datasets(sys.argv[2])
if a.keys() != b.keys():
    print(f"different datasets: {sorted(a)} vs {sorted(b)}")
    sys.exit(1)
diff = [k for k in a if a[k] != b[k]]
print(f"{len(a)} datasets, {len(diff)} differ{': ' + ', '.join(diff) if diff else ''}")
sys.exit(1 if diff else 0)
