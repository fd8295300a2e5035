#!/usr/bin/python3
"""Golden values for the module tests (tests/test_modules.cpp), computed by PyTorch's nn modules.

Run with Debian's interpreter (the one that has python3-torch), from anywhere:
    /usr/bin/python3 tests/golden/generate_modules.py
It writes tests/golden/modules.txt, one tensor per line:

    <name> [<dims>] <float64|int64> <values, row-major>

(the value format of tests/golden/generate.py's fmt_tensor, so golden::parse_tensor reads it).
Float32 results are written as the exact float64 value of each float32.

1. BatchNorm with running statistics. Four scenarios (BatchNorm2d(3) with momentum 0.1 and 0.3,
   BatchNorm1d(4) on [N, C] with momentum 0.1 and on [N, C, L] with momentum 0.3), each with a
   non-trivial affine weight and bias: three training steps on fixed inputs, recording after
   each step the output, running_mean, running_var and num_batches_tracked; the gradients of
   sum(out * R) for the first step with respect to the input, weight and bias; then an eval
   step's output. Each scenario runs in float32 ("<scenario>.f32.*") and float64 ("....f64.*")
   on the same inputs.
2. A small Sequential(Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), ReLU, Flatten, Linear(48, 5))
   with random weights and running statistics: its state_dict ("seq.state.<key>"), an input,
   the eval-mode output, then the train-mode output and the buffers after that step.
"""
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
LINES = []


def fmt(t):
    t = t.detach()
    dims = ",".join(str(v) for v in t.shape)
    dtype = "int64" if t.dtype == torch.int64 else "float64"
    vals = " ".join(repr(float(v)) if dtype == "float64" else str(int(v)) for v in t.reshape(-1).tolist())
    return f"[{dims}] {dtype} {vals}".rstrip()


def emit(name, t):
    LINES.append(f"{name} {fmt(t)}")


def channel_data(shape, gen):
    """Per-channel shifted and scaled normal data, so running statistics move visibly."""
    c = shape[1]
    view = [1, c] + [1] * (len(shape) - 2)
    shift = torch.randn(c, generator=gen).reshape(view) * 2.0
    scale = (torch.rand(c, generator=gen) * 2.0 + 0.5).reshape(view)
    return (torch.randn(shape, generator=gen) * scale + shift).float()


BN_SCENARIOS = [
    # name, module class, features, momentum, training input shape, eval input shape
    ("bn2d_m0.1", nn.BatchNorm2d, 3, 0.1, (4, 3, 5, 5), (2, 3, 5, 5)),
    ("bn2d_m0.3", nn.BatchNorm2d, 3, 0.3, (4, 3, 5, 5), (2, 3, 5, 5)),
    ("bn1d_m0.1", nn.BatchNorm1d, 4, 0.1, (8, 4), (3, 4)),
    ("bn1d_3d_m0.3", nn.BatchNorm1d, 4, 0.3, (6, 4, 3), (2, 4, 3)),
]


def batch_norm_scenarios():
    gen = torch.Generator().manual_seed(1234)
    for name, cls, c, momentum, shape, eval_shape in BN_SCENARIOS:
        weight = (torch.rand(c, generator=gen) + 0.5).float()
        bias = torch.randn(c, generator=gen).float()
        xs = [channel_data(shape, gen) for _ in range(3)]
        r = torch.randn(shape, generator=gen).float()
        x_eval = channel_data(eval_shape, gen)
        emit(f"{name}.weight", weight)
        emit(f"{name}.bias", bias)
        for i, x in enumerate(xs):
            emit(f"{name}.input{i}", x)
        emit(f"{name}.grad_weight_R", r)
        emit(f"{name}.eval_input", x_eval)
        for tag, dtype in (("f32", torch.float32), ("f64", torch.float64)):
            bn = cls(c, momentum=momentum).to(dtype)
            with torch.no_grad():
                bn.weight.copy_(weight)
                bn.bias.copy_(bias)
            bn.train()
            for i, x in enumerate(xs):
                xi = x.to(dtype).clone().requires_grad_(i == 0)
                y = bn(xi)
                p = f"{name}.{tag}.step{i}"
                emit(f"{p}.output", y)
                emit(f"{p}.running_mean", bn.running_mean)
                emit(f"{p}.running_var", bn.running_var)
                emit(f"{p}.num_batches_tracked", bn.num_batches_tracked)
                if i == 0:
                    gx, gw, gb = torch.autograd.grad((y * r.to(dtype)).sum(), [xi, bn.weight, bn.bias])
                    emit(f"{p}.grad_input", gx)
                    emit(f"{p}.grad_weight", gw)
                    emit(f"{p}.grad_bias", gb)
            bn.eval()
            with torch.no_grad():
                emit(f"{name}.{tag}.eval_output", bn(x_eval.to(dtype)))


def sequential():
    torch.manual_seed(7)
    seq = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 5))
    with torch.no_grad():
        bn = seq[1]
        bn.weight.copy_(torch.rand(3) + 0.5)
        bn.bias.copy_(torch.randn(3) * 0.5)
        bn.running_mean.copy_(torch.randn(3) * 0.3)
        bn.running_var.copy_(torch.rand(3) + 0.5)
        bn.num_batches_tracked.fill_(7)
    for k, v in seq.state_dict().items():
        emit(f"seq.state.{k}", v)
    x = torch.randn(4, 2, 4, 4)
    emit("seq.input", x)
    seq.eval()
    with torch.no_grad():
        emit("seq.eval_output", seq(x))
    seq.train()
    with torch.no_grad():
        emit("seq.train_output", seq(x))
    emit("seq.train.running_mean", seq[1].running_mean)
    emit("seq.train.running_var", seq[1].running_var)
    emit("seq.train.num_batches_tracked", seq[1].num_batches_tracked)


def main():
    LINES.append("# generated by tests/golden/generate_modules.py with torch " + torch.__version__ + "; do not edit")
    batch_norm_scenarios()
    sequential()
    path = os.path.join(HERE, "modules.txt")
    with open(path, "w") as f:
        f.write("\n".join(LINES) + "\n")
    print(f"wrote {len(LINES) - 1} tensors to {path}")


if __name__ == "__main__":
    main()
