"""The zoo's `cnn` in PyTorch, trained on Fashion-MNIST with the same recipe
as `tandem train --model cnn --optimizer adam ...`, for comparing accuracy
and time per epoch in one run:

    conv 5x5 32 (pad 2) - ReLU - max pool 2 - conv 5x5 64 (pad 2) - ReLU -
    max pool 2 - dense 128 - ReLU - dense 10, softmax cross-entropy

    /usr/bin/python3 tools/cnn_torch.py [--epochs 10] [--batch 64] [--lr 1e-3] [--threads 2]

Prints one line per epoch: epoch, train loss, test accuracy, seconds of
training (the evaluation excluded, as Tandem's evals.csv counts it)."""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(split):
    x = idx(f"{DATA}/{split}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    y = idx(f"{DATA}/{split}-labels-idx1-ubyte.gz", 8)
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    steps = len(xtr) // a.batch
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {a.batch}, {steps} steps per epoch")
    print("epoch,train_loss,test_acc,seconds")
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(xtr))
        model.train()
        t0, total = time.perf_counter(), 0.0
        for s in range(steps):
            idx_ = perm[s * a.batch:(s + 1) * a.batch]
            loss = F.cross_entropy(model(xtr[idx_]), ytr[idx_])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                          for i in range(0, len(xte), 1000))
        print(f"{epoch},{total / steps:.4f},{correct / len(xte):.4f},{seconds:.1f}", flush=True)


if __name__ == "__main__":
    main()
