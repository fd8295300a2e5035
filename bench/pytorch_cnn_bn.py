#!/usr/bin/python3
"""PyTorch 1.13's training throughput on the cnn-bn model of tapegrad-train, for the side-by-side
in docs/benchmarks.md. Same model, batch 64, SGD lr 0.01 momentum 0.9, cross-entropy.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/pytorch_cnn_bn.py --threads 1 --steps 60
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def cnn_bn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = cnn_bn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    for step in range(args.steps + 5):
        if step == 5:
            t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    dt = time.perf_counter() - t0
    print(f"pytorch cnn-bn threads {args.threads}: {args.steps * args.batch / dt:.0f} samples/s")


if __name__ == "__main__":
    main()
