#!/usr/bin/python3
"""Golden values for tests/test_vision.cpp, computed by torchvision.

Run with Debian's interpreter (python3-torch 1.13, python3-torchvision 0.14):
    /usr/bin/python3 tests/golden/generate_vision.py
It writes tests/golden/vision.txt in the format of tests/golden/ops.txt (see golden_io.hpp):
each case lists its inputs ("constant" for inputs that take no gradient: boxes, scores), the
output, and for differentiable cases a random weight R of the output's shape and the gradients
of sum(out * R) with respect to every "input". nms cases have no weight and no gradient. The
C++ suite has one row per case name calling the same function with the same arguments.
Cases whose name ends in _f32 hold float32 values (written exactly in float64) and are run in
float32 on both sides.
"""
import os
import sys

import torch
import torchvision
from torchvision.ops import box_iou, nms, roi_align

torch.manual_seed(2024)

CASES = []


def case(name, fn, *inputs, grad=True):
    CASES.append((name, fn, inputs, grad))


def const(t):
    t._tg_const = True
    return t


def boxes(n, lo=0.0, hi=20.0, min_size=1.0, max_size=10.0, dtype=torch.float64):
    """n boxes (x1, y1, x2, y2) with x1 < x2, y1 < y2."""
    xy = torch.rand(n, 2, dtype=torch.float64) * (hi - lo) + lo
    wh = torch.rand(n, 2, dtype=torch.float64) * (max_size - min_size) + min_size
    return torch.cat([xy, xy + wh], 1).to(dtype)


# ---- box_iou: forward and the gradient with respect to both box sets ----
case("box_iou", box_iou, boxes(5), boxes(4))
case("box_iou_overlapping", box_iou, boxes(6, 0, 4, 3, 6), boxes(3, 0, 4, 3, 6))
case("box_iou_single", box_iou, boxes(1), boxes(7, 0, 8, 2, 8))

# ---- nms: indices kept, by decreasing score ----
def clustered(n, dtype=torch.float64):
    """Boxes around a few centres, so that many overlap."""
    centres = torch.tensor([[10.0, 10.0], [30.0, 12.0], [20.0, 30.0]], dtype=torch.float64)
    c = centres[torch.randint(0, 3, (n,))] + torch.randn(n, 2, dtype=torch.float64) * 2.0
    wh = torch.rand(n, 2, dtype=torch.float64) * 6.0 + 6.0
    return torch.cat([c - wh / 2, c + wh / 2], 1).to(dtype)


nms_fn = lambda t: (lambda b, s: nms(b, s, t))
case("nms", nms_fn(0.5), const(clustered(30)), const(torch.rand(30, dtype=torch.float64)), grad=False)
case("nms_low_threshold", nms_fn(0.1), const(clustered(25)), const(torch.rand(25, dtype=torch.float64)), grad=False)
case("nms_high_threshold", nms_fn(0.8), const(clustered(25)), const(torch.rand(25, dtype=torch.float64)), grad=False)
# Scores from {0, 1/4, ..., 1}: many ties, which torchvision breaks by index (a stable sort).
case("nms_ties", nms_fn(0.3), const(clustered(40)), const(torch.randint(0, 5, (40,)).double() / 4), grad=False)
case("nms_f32", nms_fn(0.45), const(clustered(30, torch.float32)), const(torch.rand(30)), grad=False)

# ---- roi_align: forward and the gradient with respect to the input (boxes take none) ----
def rois(k, n_images, lo, hi, min_size, max_size):
    idx = torch.randint(0, n_images, (k, 1)).double()
    return torch.cat([idx, boxes(k, lo, hi, min_size, max_size)], 1)


def ra(output_size, spatial_scale, sampling_ratio, aligned):
    return lambda x, b: roi_align(x, b, output_size, spatial_scale, sampling_ratio, aligned)


x1 = torch.randn(2, 3, 7, 8, dtype=torch.float64)
# Boxes from -2 to 11 in image pixels: some cross the border, some are smaller than a bin.
r1 = rois(6, 2, -2.0, 7.0, 0.3, 5.0)
case("roi_align_sr2", ra((3, 2), 1.0, 2, False), x1, const(r1))
case("roi_align_sr2_aligned", ra((3, 2), 1.0, 2, True), x1, const(r1))
case("roi_align_adaptive", ra(2, 1.0, -1, False), x1, const(r1))
case("roi_align_adaptive_aligned", ra(2, 1.0, 0, True), x1, const(r1))
# Boxes in the coordinates of a 2x larger image (spatial_scale 0.5), adaptive grids of 1 to 4.
x2 = torch.randn(1, 2, 9, 9, dtype=torch.float64)
r2 = rois(5, 1, -2.0, 12.0, 1.0, 14.0)
case("roi_align_scale", ra((2, 3), 0.5, -1, False), x2, const(r2))
case("roi_align_scale_aligned", ra((2, 3), 0.5, 3, True), x2, const(r2))
# Degenerate boxes: a point, one entirely outside the feature map, one covering all of it.
r3 = torch.tensor([[0, 3.0, 3.0, 3.0, 3.0], [0, 20.0, 20.0, 25.0, 26.0], [0, -0.5, -0.5, 8.5, 8.5],
                   [0, 8.9, 0.2, 9.6, 4.0]], dtype=torch.float64)
case("roi_align_degenerate", ra(3, 1.0, -1, False), x2, const(r3))
case("roi_align_degenerate_aligned", ra(3, 1.0, 2, True), x2, const(r3))
# The per-image list form: one [L_i, 4] tensor per image.
case("roi_align_list", lambda x, b0, b1: roi_align(x, [b0, b1], (2, 2), 1.0, 2, True),
     x1, const(boxes(3, -1.0, 6.0, 0.5, 4.0)), const(boxes(2, -1.0, 6.0, 0.5, 4.0)))
x3 = torch.randn(2, 2, 6, 5)
case("roi_align_f32", ra((2, 2), 1.0, -1, True), x3, const(rois(4, 2, -1.0, 5.0, 0.5, 4.0).float()))


def fmt_tensor(kind, t):
    dims = ",".join(str(v) for v in t.shape)
    dtype = "int64" if t.dtype == torch.int64 else "float64"
    vals = " ".join(repr(float(v)) if dtype == "float64" else str(int(v)) for v in t.reshape(-1).tolist())
    return f"{kind} [{dims}] {dtype} {vals}".rstrip()


def main():
    out = ["# generated by tests/golden/" + os.path.basename(sys.argv[0]) + " with torch " + torch.__version__ +
           " and torchvision " + torchvision.__version__ + "; do not edit"]
    for name, fn, inputs, grad in CASES:
        takes_grad = [grad and x.is_floating_point() and not getattr(x, "_tg_const", False) for x in inputs]
        xs = [x.clone().requires_grad_(t) for x, t in zip(inputs, takes_grad)]
        y = fn(*xs)
        out.append(f"case {name}")
        for x, t in zip(inputs, takes_grad):
            out.append(fmt_tensor("input" if t or not x.is_floating_point() else "constant", x))
        out.append(fmt_tensor("output", y.detach()))
        if grad:
            r = torch.randn(y.shape, dtype=y.dtype)
            floats = [x for x in xs if x.requires_grad]
            grads = torch.autograd.grad((y * r).sum(), floats)
            out.append(fmt_tensor("weight", r))
            for g in grads:
                out.append(fmt_tensor("grad", g))
        out.append("end")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vision.txt")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {len(CASES)} cases to {path}")


if __name__ == "__main__":
    main()
