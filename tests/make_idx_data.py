#!/usr/bin/env python3
"""Writes a tiny Fashion-MNIST-shaped data set for the end-to-end tests: the four IDX files
(gzip), 64 training and 32 test images of 28 x 28 whose class y sets a bright row 2 + 2y.

  make_idx_data.py DIR            noisy background (0-59), the whole row at 250 (seed 7)
  make_idx_data.py DIR --clean    black background, columns 4-23 of the row at 200-249 (seed 3)
"""
import gzip, os, random, struct, sys

root, clean = sys.argv[1], "--clean" in sys.argv[2:]
os.makedirs(root)
rng = random.Random(3 if clean else 7)


def write(prefix, n):
    labels = [i % 10 for i in range(n)]
    pixels = bytearray()
    for y in labels:
        if clean:
            img = [0] * 784
            for c in range(4, 24):
                img[(2 + 2 * y) * 28 + c] = 200 + rng.randrange(0, 50)
        else:
            img = [rng.randrange(0, 60) for _ in range(784)]
            for c in range(28):
                img[(2 + 2 * y) * 28 + c] = 250
        pixels += bytes(img)
    with gzip.open(os.path.join(root, prefix + "-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(pixels))
    with gzip.open(os.path.join(root, prefix + "-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(labels))


write("train", 64)
write("t10k", 32)
