#!/usr/bin/python3
"""Golden values of the model zoo against torchvision 0.14 (tests/test_models.cpp).

Run with Debian's interpreter (python3-torch, python3-torchvision), from anywhere:
    /usr/bin/python3 tests/golden/generate_models.py
Writes models.txt next to this file, and densenet_tiny.safetensors / densenet_tiny_io.safetensors.

models.txt holds, for every architecture:
  * `key NAME [SHAPE]` for each state_dict key at the default options (1000 classes), in
    torchvision's order: the C++ names must be these;
  * `case ARCH MODE` (eval or train) for the same model (dropout 0 in train mode, as
    randomness cannot be matched), in float64, with every state_dict entry set by the formula
    below, an input [2, 3, 64, 64] and loss = sum(logits * W) from the same formula:
    `output logits NUMEL SUMSQ v...` the logits' sum of squares and 16 evenly spaced elements
    (flat index j * numel // 16), `grad NAME NUMEL SUMSQ v...` the same for a gradient (flat index j * numel // 16), `buffer NAME ...` the same for a
    batch norm's running_mean after the train-mode forward; each with `f32err=`, how far torch's
    own float32 run lands from these float64 values by the test's measure.

The formula (tests/test_models.cpp computes the same, bit for bit): for the k-th key of
sorted(state_dict) and its element i (row-major), u in [0, 1) is the top 24 bits of splitmix64's
finaliser of i * 0x9E3779B97F4A7C15 + k * 0xBF58476D1CE4E5B9 + 1 (64-bit wrap-around; a simpler
pattern with a short period made whole channels nearly constant, so that batch norm's train-mode
gradients lost float32's precision in torch as well), and the value is
  running_mean 0.2 (u - 0.5); running_var 0.5 + u; num_batches_tracked left at 0;
  a 1-D weight (batch norm) 1 + 0.5 (u - 0.5); a 1-D bias 0.2 (u - 0.5);
  any other tensor (u - 0.5) sqrt(24 / fan_in), fan_in = numel / shape[0] (variance 2 / fan_in).
The input uses k = 1000003 and 2 (u - 0.5); W [2, 1000] uses k = 1000004 and 2 (u - 0.5).

densenet_tiny: torchvision.models.DenseNet(growth_rate=4, block_config=(1, 1, 1),
num_init_features=8, num_classes=10) -- tg::models::densenet_bc(10, 4, ModelOptions().num_classes(10))
-- trained 3 SGD steps in float32 from torch.manual_seed(0), saved with torch.save and exported
with tools/export_safetensors.py (the path a user takes), with an input [2, 3, 32, 32] and the
eval-mode output in densenet_tiny_io.safetensors.
"""
import math
import os
import sys
import tempfile

import numpy as np
import torch
import torchvision.models as tvm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import export_safetensors  # noqa: E402

SAMPLES = 16


def pattern(numel, k):
    """u in [0, 1): splitmix64's finaliser of i * golden + k * c1 + 1, its top 24 bits."""
    z = np.arange(numel, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64((k * 0xBF58476D1CE4E5B9 + 1) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / 16777216.0


def formula(name, shape, k):
    numel = int(np.prod(shape)) if len(shape) else 1
    u = pattern(numel, k)
    if name.endswith("running_mean"):
        v = 0.2 * (u - 0.5)
    elif name.endswith("running_var"):
        v = 0.5 + u
    elif len(shape) == 1 and name.endswith("weight"):
        v = 1.0 + 0.5 * (u - 0.5)
    elif len(shape) == 1 and name.endswith("bias"):
        v = 0.2 * (u - 0.5)
    else:
        v = (u - 0.5) * math.sqrt(24.0 / (numel // shape[0]))
    return torch.from_numpy(v.reshape(shape))


def set_weights(model):
    sd = model.state_dict()
    with torch.no_grad():
        for k, name in enumerate(sorted(sd)):
            if not name.endswith("num_batches_tracked"):
                sd[name].copy_(formula(name, tuple(sd[name].shape), k))


# factory, extra kwargs, the gradients to sample (besides the input's), a batch norm to watch
ARCHS = {
    "alexnet": (tvm.alexnet, {}, ["features.0.weight", "features.8.weight", "classifier.6.weight", "classifier.6.bias"], None),
    "vgg11_bn": (tvm.vgg11_bn, {}, ["features.0.weight", "features.15.weight", "classifier.6.weight"], "features.1"),
    "vgg16_bn": (tvm.vgg16_bn, {}, ["features.0.weight", "features.24.weight", "classifier.6.weight"], "features.1"),
    "googlenet": (tvm.googlenet, {"aux_logits": False, "init_weights": False},
                  ["conv1.conv.weight", "inception4c.branch3.1.conv.weight", "fc.weight", "fc.bias"], "conv1.bn"),
    "resnet18": (tvm.resnet18, {}, ["conv1.weight", "layer3.0.downsample.0.weight", "fc.weight"], "bn1"),
    "resnet34": (tvm.resnet34, {}, ["conv1.weight", "layer4.2.conv2.weight", "fc.weight"], "bn1"),
    "resnet50": (tvm.resnet50, {}, ["conv1.weight", "layer2.0.downsample.0.weight", "layer4.2.conv3.weight", "fc.weight"], "bn1"),
    "densenet121": (tvm.densenet121, {}, ["features.conv0.weight", "features.denseblock3.denselayer5.conv1.weight",
                                          "classifier.weight"], "features.norm0"),
}
HAS_DROPOUT = {"alexnet", "vgg11_bn", "vgg16_bn", "googlenet"}


def fmt(values):
    return " ".join(repr(float(v)) for v in values)


def sample(t):
    flat = t.detach().reshape(-1)
    n = flat.numel()
    idx = [j * n // SAMPLES for j in range(SAMPLES)] if n > SAMPLES else list(range(n))
    return n, float((flat * flat).sum()), flat[idx].tolist()


def forward_backward(factory, kw, arch, mode, grads, bn, dtype):
    """The logits and the sampled gradients (and running_mean) of one case, computed in dtype."""
    extra = dict(kw)
    if mode == "train" and arch in HAS_DROPOUT:
        extra["dropout"] = 0.0
    model = factory(weights=None, **extra).double()
    set_weights(model)
    model = model.to(dtype)
    model.train(mode == "train")
    x = torch.from_numpy(2.0 * (pattern(2 * 3 * 64 * 64, 1000003) - 0.5)).reshape(2, 3, 64, 64).to(dtype)
    x.requires_grad_()
    w = torch.from_numpy(2.0 * (pattern(2 * 1000, 1000004) - 0.5)).reshape(2, 1000).to(dtype)
    y = model(x)
    (y * w).sum().backward()
    params = dict(model.named_parameters())
    samples = [("output", "logits", sample(y)), ("grad", "input", sample(x.grad))]
    samples += [("grad", g, sample(params[g].grad)) for g in grads]
    if bn is not None and mode == "train":
        samples.append(("buffer", bn + ".running_mean", sample(model.state_dict()[bn + ".running_mean"])))
    return y.detach().double(), samples


def sample_error(got, ref):
    """The test's measure: the larger of the elements' error relative to max(max |ref|, RMS) and
    half the sum of squares' relative error."""
    n, ss, vals = ref
    _, ss_got, vals_got = got
    scale = max([math.sqrt(ss / n)] + [abs(v) for v in vals])
    elements = max(abs(a - b) for a, b in zip(vals_got, vals)) / scale
    return max(elements, abs(ss_got - ss) / ss / 2)


def main():
    torch.set_num_threads(2)
    lines = ["# tests/golden/generate_models.py, torch " + torch.__version__ + ", torchvision "
             + __import__("torchvision").__version__]
    for arch, (factory, kw, grads, bn) in ARCHS.items():
        model = factory(weights=None, **kw)
        lines.append(f"arch {arch}")
        for name, t in model.state_dict().items():
            lines.append(f"key {name} [{','.join(map(str, t.shape))}]")
        del model
        for mode in ("eval", "train"):
            run = {dtype: forward_backward(factory, kw, arch, mode, grads, bn, dtype)
                   for dtype in (torch.float64, torch.float32)}
            y, samples = run[torch.float64]
            lines.append(f"case {arch} {mode}")
            for j, (kind, name, (n, ss, vals)) in enumerate(samples):
                # how far torch's own float32 lands from its float64: test_models.cpp allows a
                # multiple of that where it exceeds 2e-3 (ReLU and max-pool decisions that flip
                # with rounding, and train-mode batch norm over 2 images, make some gradients
                # ill-conditioned)
                err = sample_error(run[torch.float32][1][j][2], (n, ss, vals))
                lines.append(f"{kind} {name} {n} {ss!r} f32err={err!r} {fmt(vals)}")
            print(arch, mode, "logits", y.abs().max().item(), flush=True)
    with open(os.path.join(HERE, "models.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    torch.manual_seed(0)
    tiny = tvm.DenseNet(growth_rate=4, block_config=(1, 1, 1), num_init_features=8, num_classes=10)
    opt = torch.optim.SGD(tiny.parameters(), lr=0.1)
    tiny.train()
    for _ in range(3):
        xb = torch.randn(4, 3, 32, 32)
        loss = torch.nn.functional.cross_entropy(tiny(xb), torch.arange(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    tiny.eval()
    with tempfile.TemporaryDirectory() as tmp:
        pt = os.path.join(tmp, "densenet_tiny.pt")
        torch.save(tiny.state_dict(), pt)
        export_safetensors.export(pt, os.path.join(HERE, "densenet_tiny.safetensors"))
    xb = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        yb = tiny(xb)
    export_safetensors.save_file({"input": xb.numpy(), "output": yb.numpy()},
                                 os.path.join(HERE, "densenet_tiny_io.safetensors"))


if __name__ == "__main__":
    main()
