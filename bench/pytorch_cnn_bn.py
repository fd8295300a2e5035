#!/usr/bin/python3
"""PyTorch 1.13's training throughput on the cnn-bn model of tapegrad-train, for the side-by-side
in docs/benchmarks.md (bench/train_throughput.sh runs both). The same model and the same data:
Fashion-MNIST from Debian's dataset-fashion-mnist (the IDX .gz files, read with gzip + numpy),
normalised with tapegrad-train's mean and std, shuffled with a seed, batch 64, SGD lr 0.01
momentum 0.9, cross-entropy. This is PyTorch's best configuration here: tensors already in
memory, no DataLoader workers, OPENBLAS_NUM_THREADS=1 (see ../shared/ENVIRONMENT.md).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/pytorch_cnn_bn.py --threads 1 --samples 12800
    /usr/bin/python3 bench/pytorch_cnn_bn.py --threads 2 --epoch      # one full epoch (peak RSS)
    /usr/bin/python3 bench/pytorch_cnn_bn.py --threads 2 --epoch --eval --seed 2   # + test accuracy

Prints one line: "pytorch cnn-bn threads T: S samples/s (N samples, peak RSS M MiB)".
"""
import argparse
import gzip
import os
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def cnn_bn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=12800, help="training samples to time (after 5 warm-up steps)")
    ap.add_argument("--epoch", action="store_true", help="time one full epoch of the 60,000 images")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--eval", action="store_true", help="print the test accuracy after training")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    x_all = (torch.from_numpy(images.astype(np.float32) / 255.0) - 0.2860) / 0.3530
    x_all = x_all.unsqueeze(1)
    y_all = torch.from_numpy(labels.astype(np.int64))
    model = cnn_bn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(args.seed))
    steps = len(x_all) // args.batch if args.epoch else args.samples // args.batch
    warm = 5
    seen = 0
    for step in range(steps + warm):
        if step == warm:
            t0 = time.perf_counter()
        i = (step * args.batch) % (len(x_all) - args.batch + 1)
        idx = order[i: i + args.batch]
        x, y = x_all[idx], y_all[idx]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if step >= warm:
            seen += args.batch
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pytorch cnn-bn threads {args.threads}: {seen / dt:.0f} samples/s "
          f"({seen} samples, peak RSS {rss:.0f} MiB)")
    if args.eval:
        images = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
        labels = torch.from_numpy(read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
        x_test = ((torch.from_numpy(images.astype(np.float32) / 255.0) - 0.2860) / 0.3530).unsqueeze(1)
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(x_test[i: i + 500]).argmax(1) for i in range(0, len(x_test), 500)])
        print(f"pytorch cnn-bn test accuracy {(pred == labels).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
