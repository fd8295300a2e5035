#!/usr/bin/python3
"""torchvision 0.14's side of bench/models_bench.cpp: one training step of a model on random
inputs [N, 3, S, S], 1000 classes, cross-entropy, SGD lr 0.01 momentum 0.9, train mode; the median
samples/s over --steps steps after one warm-up step, and the process's peak RSS
(ru_maxrss). DenseNet with its default memory_efficient=False unless --memory-efficient.

    /usr/bin/python3 bench/pytorch_models.py --model resnet50 --batch 16 --size 64 --threads 2
"""
import argparse
import resource
import time

import torch
import torchvision.models as tvm


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-efficient", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    kw = {"aux_logits": False, "init_weights": True} if a.model == "googlenet" else {}
    if a.model == "densenet121":
        kw["memory_efficient"] = a.memory_efficient
    model = getattr(tvm, a.model)(weights=None, **kw)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, 1000, (a.batch,))
    seconds = []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if s > 0:
            seconds.append(time.perf_counter() - t0)
    seconds.sort()
    median = seconds[len(seconds) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    me = " (memory_efficient)" if a.memory_efficient else ""
    print(f"torchvision {a.model}{me} batch {a.batch} size {a.size} threads {a.threads}: "
          f"{a.batch / median:.1f} samples/s (median of {a.steps} steps), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
