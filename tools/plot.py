#!/usr/bin/env python3
"""Plots from Tandem's own outputs (matplotlib; PNG or SVG by the -o suffix).

  plot.py RUN_DIR [RUN_DIR ...] -o curves.png
      Training and validation curves from each run's evals.csv (loss and
      accuracy against epochs, runs side by side), and, for runs trained with
      --track-curvature, their curvature.h5: top Hessian eigenvalue
      (sharpness), Hessian trace with its 95% interval and NTK trace against
      steps.
  plot.py FILE.h5 [FILE.h5 ...] -o spectrum.svg
      Spectra: the eigenvalues in a `tandem curvature` file, or those of the
      kernel in a `tandem ntk` file (full kernels as [n K, n K] matrices,
      trace kernels as [n, n]), sorted, on log axes.
  --what curves|sharpness|spectrum picks one figure; by default directories
  give curves (with sharpness panels when there is curvature.h5) and .h5
  files spectra. --title sets the figure's title.

Run with Debian's /usr/bin/python3 (python3-matplotlib, python3-h5py).
"""
import argparse
import csv
import os
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:  # the interpreter first on PATH may lack them
    print(f"plot.py needs matplotlib and numpy ({e}); run /usr/bin/python3 tools/plot.py",
          file=sys.stderr)
    sys.exit(77)


def read_evals(run):
    path = os.path.join(run, "evals.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no evaluations")
    cols = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    return cols


def read_h5(path):
    import h5py

    with h5py.File(path, "r") as f:
        data = {k: f[k][...] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
    return data, attrs


def label_of(path):
    return os.path.basename(os.path.normpath(path)) or path


def curves(runs, ax_loss, ax_acc):
    for run in runs:
        e = read_evals(run)
        x = e["epoch"]
        line, = ax_loss.plot(x, e["val_loss"], marker="o", ms=3, label=f"{label_of(run)} validation")
        ax_loss.plot(x, e["train_loss"], ls="--", color=line.get_color(),
                     label=f"{label_of(run)} training")
        if not np.all(np.isnan(e["val_acc"])):
            ax_acc.plot(x, 100 * e["val_acc"], marker="o", ms=3, color=line.get_color(),
                        label=label_of(run))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (nats)")
    ax_loss.set_title("loss")
    ax_loss.legend(fontsize=7)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.set_title("accuracy")
    ax_acc.legend(fontsize=7)
    for a in (ax_loss, ax_acc):
        a.grid(alpha=0.3)


def sharpness(runs, ax_top, ax_tr):
    for run in runs:
        path = os.path.join(run, "curvature.h5")
        if not os.path.exists(path):
            continue
        d, _ = read_h5(path)
        s = d["step"]
        line, = ax_top.plot(s, d["top_eigenvalue"], marker="o", ms=3, label=label_of(run))
        ax_tr.plot(s, d["hessian_trace"], color=line.get_color(), label=f"{label_of(run)} tr H")
        ax_tr.fill_between(s, d["hessian_trace"] - d["hessian_trace_ci95"],
                           d["hessian_trace"] + d["hessian_trace_ci95"], color=line.get_color(),
                           alpha=0.2)
        ax2 = ax_tr.twinx() if not hasattr(ax_tr, "_ntk") else ax_tr._ntk
        ax_tr._ntk = ax2
        ax2.plot(s, d["ntk_trace"], ls=":", color=line.get_color(), label=f"{label_of(run)} tr NTK")
        ax2.set_ylabel("NTK trace (dotted)")
    ax_top.set_xlabel("step")
    ax_top.set_ylabel("top Hessian eigenvalue")
    ax_top.set_title("sharpness")
    ax_top.legend(fontsize=7)
    ax_tr.set_xlabel("step")
    ax_tr.set_ylabel("Hessian trace (95% band)")
    ax_tr.set_title("traces")
    for a in (ax_top, ax_tr):
        a.grid(alpha=0.3)


def spectrum_of(path):
    d, attrs = read_h5(path)
    if "eigenvalues" in d:
        return np.sort(d["eigenvalues"])[::-1], f"{label_of(path)} ({attrs.get('matrix', '?')})"
    if "ntk" in d:
        k = d["ntk"].astype(np.float64)
        if k.ndim == 4:
            n1, n2, K, _ = k.shape
            if n1 != n2:
                raise ValueError(f"{path}: the kernel is not square ({n1} x {n2})")
            k = k.transpose(0, 2, 1, 3).reshape(n1 * K, n2 * K)
        elif k.ndim != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"{path}: a diagonal or non-square kernel has no spectrum")
        return np.sort(np.linalg.eigvalsh(0.5 * (k + k.T)))[::-1], f"{label_of(path)} (NTK)"
    raise ValueError(f"{path}: neither eigenvalues nor an ntk dataset")


def spectra(files, ax):
    for path in files:
        w, lab = spectrum_of(path)
        pos = w[w > 0]
        ax.loglog(np.arange(1, len(pos) + 1), pos, marker=".", ms=4, label=lab)
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue")
    ax.set_title("spectrum")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="run directories or .h5 files")
    ap.add_argument("-o", "--output", required=True, help="figure file, .png or .svg")
    ap.add_argument("--what", choices=["auto", "curves", "sharpness", "spectrum"], default="auto")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    ext = os.path.splitext(a.output)[1].lower()
    if ext not in (".png", ".svg"):
        ap.error(f"-o {a.output}: give a .png or .svg file")
    for p in a.inputs:
        if not os.path.exists(p):
            ap.error(f"{p}: no such file or directory")
    what = a.what
    if what == "auto":
        what = "spectrum" if all(os.path.isfile(p) for p in a.inputs) else "curves"
    try:
        if what == "spectrum":
            fig, ax = plt.subplots(figsize=(5.5, 4))
            spectra(a.inputs, ax)
        elif what == "sharpness":
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            sharpness(a.inputs, *axes)
        else:
            tracked = any(os.path.exists(os.path.join(r, "curvature.h5")) for r in a.inputs)
            fig, axes = plt.subplots(1, 4 if tracked else 2, figsize=(20 if tracked else 10, 4))
            curves(a.inputs, axes[0], axes[1])
            if tracked:
                sharpness(a.inputs, axes[2], axes[3])
    except (OSError, KeyError, ValueError) as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 1
    if a.title:
        fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.output, dpi=120)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
