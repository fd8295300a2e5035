#!/usr/bin/python3
"""Golden values for the table-driven op tests, computed by PyTorch.

Run with Debian's interpreter (the one that has python3-torch):
    /usr/bin/python3 tests/golden/generate.py
It writes tests/golden/ops.txt. Each case: the inputs, the forward output, a random weight R
of the output's shape, and the gradients of sum(out * R) with respect to every floating input,
all in float64. The C++ suite (tests/test_ops_golden.cpp) has one row per case name, runs the
same function in float64 and float32, and compares.
"""
import os
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)

CASES = []


def case(name, fn, *inputs):
    CASES.append((name, fn, inputs))


def randn(*s):
    return torch.randn(s)


def pos(*s):  # strictly positive, away from 0
    return torch.rand(s) * 1.5 + 0.5


def away(*s):  # |x| >= 0.2, so abs / relu / max have no kink nearby
    x = torch.randn(s)
    return torch.where(x.abs() < 0.2, torch.sign(x) * 0.2 + x, x)


def distinct(*s):  # values well separated, so max/min have a unique arg
    n = 1
    for v in s:
        n *= v
    return (torch.randperm(n).double() * 0.37 + torch.rand(n) * 0.1).reshape(s)


def const(t):  # an input that takes no gradient (class weights, pos_weight): written as "constant"
    t._tg_const = True
    return t


def idx(high, *s):
    return torch.randint(0, high, s)


# ---- elementwise unary ----
for shape, tag in [((3, 4), ""), ((1,), "_size1"), ((), "_0d"), ((2, 1, 3), "_3d")]:
    case("neg" + tag, lambda x: -x, randn(*shape))
    case("exp" + tag, torch.exp, randn(*shape))
    case("log" + tag, torch.log, pos(*shape))
    case("sqrt" + tag, torch.sqrt, pos(*shape))
    case("abs" + tag, torch.abs, away(*shape))
    case("tanh" + tag, torch.tanh, randn(*shape))
    case("sigmoid" + tag, torch.sigmoid, randn(*shape))
    case("relu" + tag, torch.relu, away(*shape))
    case("erf" + tag, torch.erf, randn(*shape))
case("pow_2", lambda x: x.pow(2), randn(3, 4))
case("pow_3", lambda x: x.pow(3), randn(3, 4))
case("pow_half", lambda x: x.pow(0.5), pos(3, 4))
case("pow_neg1_5", lambda x: x.pow(-1.5), pos(3, 4))
case("clamp", lambda x: x.clamp(-0.5, 0.7), away(4, 5))

# ---- elementwise binary, equal shapes and broadcast ----
BIN = [
    ("add", lambda a, b: a + b, randn, randn),
    ("sub", lambda a, b: a - b, randn, randn),
    ("mul", lambda a, b: a * b, randn, randn),
    ("div", lambda a, b: a / b, randn, pos),
    ("pow", lambda a, b: a.pow(b), pos, randn),
    ("maximum", torch.maximum, distinct, distinct),
    ("minimum", torch.minimum, distinct, distinct),
]
SHAPES = [((3, 4), (3, 4), ""), ((3, 1), (1, 4), "_bcast"), ((2, 3, 4), (4,), "_bcast_rank"),
          ((), (3,), "_0d"), ((1,), (1,), "_size1")]
for name, fn, ga, gb in BIN:
    for sa, sb, tag in SHAPES:
        case(name + tag, fn, ga(*sa), gb(*sb))
case("add_scalar", lambda x: x + 2.5, randn(3, 4))
case("rsub_scalar", lambda x: 2.5 - x, randn(3, 4))
case("mul_scalar", lambda x: x * -1.5, randn(3, 4))
case("div_scalar", lambda x: x / 3.0, randn(3, 4))
case("rdiv_scalar", lambda x: 2.0 / x, pos(3, 4))
case("where", lambda c, a, b: torch.where(c > 0, a, b), randn(3, 4), randn(3, 4), randn(3, 4))
case("where_bcast", lambda c, a, b: torch.where(c > 0, a, b), randn(3, 1), randn(1, 4), randn(4))

# ---- reductions ----
case("sum_all", lambda x: x.sum(), randn(3, 4))
case("sum_dim1", lambda x: x.sum(1), randn(3, 4, 2))
case("sum_dims02_keep", lambda x: x.sum((0, 2), keepdim=True), randn(3, 4, 2))
case("sum_neg_dim", lambda x: x.sum(-1), randn(2, 3, 5))
case("sum_long_row", lambda x: x.sum(1), randn(2, 37))
case("mean_all", lambda x: x.mean(), randn(3, 4))
case("mean_dims", lambda x: x.mean((1, 2)), randn(2, 3, 4))
case("var_unbiased", lambda x: x.var(1), randn(3, 5))
case("var_biased_keep", lambda x: x.var((0, 1), unbiased=False, keepdim=True), randn(3, 4, 2))
case("std_dim", lambda x: x.std(0), randn(4, 3))
case("amax_all", lambda x: x.amax(), distinct(3, 4))
case("amax_dim1", lambda x: x.amax(1), distinct(3, 4, 2))
case("amax_dims_keep", lambda x: x.amax((0, 2), keepdim=True), distinct(3, 4, 2))
case("amin_dim0", lambda x: x.amin(0), distinct(3, 4))
case("amax_ties", lambda x: x.amax(1), torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))

# ---- movement ----
case("reshape", lambda x: x.reshape(4, 6), randn(2, 3, 4))
case("reshape_infer", lambda x: x.reshape(-1, 4), randn(2, 3, 4))
case("permute", lambda x: x.permute(2, 0, 1), randn(2, 3, 4))
case("transpose", lambda x: x.transpose(0, 2), randn(2, 3, 4))
case("flatten", lambda x: x.flatten(1), randn(2, 3, 4))
case("unsqueeze", lambda x: x.unsqueeze(1), randn(3, 4))
case("squeeze", lambda x: x.squeeze(1), randn(3, 1, 4))
case("expand", lambda x: x.expand(2, 3, 4), randn(3, 1))
case("pad_last", lambda x: F.pad(x, (1, 2)), randn(2, 3))
case("pad_2d_value", lambda x: F.pad(x, (1, 0, 2, 1), value=0.5), randn(2, 3, 4))
case("slice_step", lambda x: x[:, 1:6:2], randn(3, 7))
case("slice_neg", lambda x: x[-2:], randn(5, 3))
case("narrow", lambda x: x.narrow(1, 1, 2), randn(3, 4))
case("cat_dim0", lambda a, b: torch.cat([a, b], 0), randn(2, 3), randn(4, 3))
case("cat_dim1", lambda a, b, c: torch.cat([a, b, c], 1), randn(2, 1), randn(2, 3), randn(2, 2))
case("stack", lambda a, b: torch.stack([a, b], 1), randn(2, 3), randn(2, 3))
case("split_piece", lambda x: x.split(2, 1)[1], randn(3, 5))
case("chunk_piece", lambda x: x.chunk(3, 0)[2], randn(7, 2))
case("gather", lambda x, i: torch.gather(x, 1, i), randn(3, 5), idx(5, 3, 4))
case("gather_dim0", lambda x, i: torch.gather(x, 0, i), randn(4, 3), idx(4, 6, 3))
case("index_select", lambda x, i: torch.index_select(x, 0, i), randn(4, 3), torch.tensor([3, 0, 3, 1]))
case("index_select_dim1", lambda x, i: torch.index_select(x, 1, i), randn(2, 5, 2), torch.tensor([4, 4, 0]))

# ---- matmul ----
case("matmul_2d", torch.matmul, randn(3, 4), randn(4, 5))
case("matmul_1d_2d", torch.matmul, randn(4), randn(4, 5))
case("matmul_2d_1d", torch.matmul, randn(3, 4), randn(4))
case("matmul_1d_1d", torch.matmul, randn(4), randn(4))
case("matmul_batched", torch.matmul, randn(2, 3, 4), randn(2, 4, 5))
case("matmul_bcast_batch", torch.matmul, randn(2, 1, 3, 4), randn(3, 4, 2))
case("matmul_3d_2d", torch.matmul, randn(2, 3, 4), randn(4, 5))
case("matmul_size1", torch.matmul, randn(1, 1), randn(1, 1))
case("matmul_2d_3d", torch.matmul, randn(3, 4), randn(2, 4, 5))
case("matmul_2d_4d", torch.matmul, randn(3, 4), randn(2, 2, 4, 1))

# ---- unfold / fold (im2col / col2im) ----
def unfold1d(x, k, s, p, d):  # 1-D through the 2-D op with a unit height
    return F.unfold(x.unsqueeze(2), (1, k), stride=(1, s), padding=(0, p), dilation=(1, d))


def unfold3d(x, k, s, p, d):  # 3-D from first principles: pad, then gather every window
    n, c, D, H, W = x.shape
    xp = F.pad(x, (p, p, p, p, p, p))
    span = d * (k - 1) + 1
    od, oh, ow = [(v + 2 * p - span) // s + 1 for v in (D, H, W)]
    cols = []
    for kd in range(k):
        for kh in range(k):
            for kw in range(k):
                sl = xp[:, :, kd * d: kd * d + s * (od - 1) + 1: s,
                        kh * d: kh * d + s * (oh - 1) + 1: s,
                        kw * d: kw * d + s * (ow - 1) + 1: s]
                cols.append(sl.reshape(n, c, 1, -1))
    return torch.cat(cols, 2).reshape(n, c * k ** 3, -1)


case("unfold2d", lambda x: F.unfold(x, 3), randn(2, 2, 4, 5))
case("unfold2d_stride_pad", lambda x: F.unfold(x, (3, 2), stride=2, padding=1), randn(1, 3, 5, 6))
case("unfold2d_dilation", lambda x: F.unfold(x, 2, dilation=2, padding=1), randn(2, 1, 5, 5))
case("unfold1d", lambda x: unfold1d(x, 3, 2, 1, 1), randn(2, 3, 7))
case("unfold3d", lambda x: unfold3d(x, 2, 1, 1, 1), randn(1, 2, 3, 3, 3))
# "Same"-width stride-1 windows take unfold's flat path (one shifted copy per kernel offset).
case("unfold2d_same", lambda x: F.unfold(x, (3, 5), padding=(1, 2)), randn(2, 3, 4, 6))
case("unfold2d_same_tall", lambda x: F.unfold(x, (5, 3), padding=(1, 1)), randn(1, 2, 6, 3))
case("unfold1d_same", lambda x: unfold1d(x, 3, 1, 2, 2), randn(2, 2, 5))
case("unfold3d_same", lambda x: unfold3d(x, 3, 1, 1, 1), randn(1, 2, 3, 4, 3))
case("fold2d", lambda c: F.fold(c, (4, 5), 3, padding=1), randn(2, 2 * 9, 20))
case("fold2d_stride", lambda c: F.fold(c, (5, 5), 2, stride=2), randn(1, 3 * 4, 4))


# ---- issue 10: the ops a PyTorch user reaches for ----
# Their inputs come from a seed of their own, and the global stream is restored afterwards, so
# that the inputs and weights of every case above stay as they were (ops.txt only grows).
_state = torch.get_rng_state()
torch.manual_seed(10)


def above_m1(*s):  # in (-0.5, 1.5): log1p's domain, away from -1
    return torch.rand(s) * 2 - 0.5


def off_grid(*s):  # k + [0.1, 0.4] or k + [0.6, 0.9]: away from the jumps of floor/ceil and round
    frac = torch.rand(s) * 0.3 + 0.1
    return torch.floor(torch.randn(s) * 2) + torch.where(torch.rand(s) < 0.5, frac, frac + 0.5)


def values_indices(pair):  # sort / topk: values and indices in one output, so both are checked
    v, i = pair
    return torch.stack([v, i.to(v.dtype)])


for shape, tag in [((3, 4), ""), ((), "_0d"), ((2, 1, 3), "_3d")]:
    case("sin" + tag, torch.sin, randn(*shape))
    case("cos" + tag, torch.cos, randn(*shape))
    case("square" + tag, torch.square, randn(*shape))
    case("log1p" + tag, torch.log1p, above_m1(*shape))
    case("expm1" + tag, torch.expm1, randn(*shape))
    case("rsqrt" + tag, torch.rsqrt, pos(*shape))
    case("floor" + tag, torch.floor, off_grid(*shape))
    case("ceil" + tag, torch.ceil, off_grid(*shape))
    case("round" + tag, torch.round, off_grid(*shape))
    case("sign" + tag, torch.sign, away(*shape))
# Scaled so that the digits log(1 + x) and exp(x) - 1 would lose show above the tolerance.
case("log1p_tiny", lambda x: torch.log1p(x * 1e-9) * 1e9, randn(3, 4))
case("expm1_tiny", lambda x: torch.expm1(x * 1e-9) * 1e9, randn(3, 4))
case("round_half_even", torch.round, torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49]))
case("sign_times_x", lambda x: torch.sign(x) * x, away(3, 4))
case("atan2", torch.atan2, away(3, 4), randn(3, 4))
case("atan2_bcast", torch.atan2, away(3, 1), randn(4))
case("logsumexp", lambda x: torch.logsumexp(x, 1), randn(3, 4))
case("logsumexp_dims_keep", lambda x: torch.logsumexp(x, (0, 2), keepdim=True), randn(2, 3, 4))
case("logsumexp_all", lambda x: torch.logsumexp(x, (0, 1)), randn(3, 4))
case("logsumexp_large", lambda x: torch.logsumexp(x, -1), randn(2, 5) * 30 + 1000)  # exp(x) overflows
case("cumsum", lambda x: torch.cumsum(x, 1), randn(3, 4))
case("cumsum_dim0", lambda x: x.cumsum(0), randn(5, 3))
case("cumsum_neg_dim", lambda x: x.cumsum(-1), randn(2, 3, 4))
case("cumsum_mid", lambda x: x.cumsum(1), randn(2, 5, 3))
case("cumsum_0d", lambda x: x.cumsum(0), randn())
case("sort", lambda x: values_indices(torch.sort(x)), distinct(3, 5))
case("sort_desc_dim0", lambda x: values_indices(torch.sort(x, 0, descending=True)), distinct(4, 3))
case("sort_3d", lambda x: values_indices(x.sort(1)), distinct(2, 4, 3))
case("topk", lambda x: values_indices(torch.topk(x, 3)), distinct(3, 6))
case("topk_smallest_dim0", lambda x: values_indices(torch.topk(x, 2, 0, largest=False)), distinct(5, 3))
case("topk_all", lambda x: values_indices(x.topk(4)), distinct(2, 4))
case("topk_3d", lambda x: values_indices(x.topk(2, 1)), distinct(2, 5, 3))
case("softplus", F.softplus, randn(3, 4) * 3)
case("softplus_beta_threshold", lambda x: F.softplus(x, beta=0.5, threshold=2.0), randn(4, 5) * 4)
case("softplus_above", F.softplus, torch.tensor([[19.0, 21.0, 30.0, 800.0]]))  # exp(800) = inf
case("softplus_far", lambda x: F.softplus(x) * torch.exp(-x), torch.tensor([[-40.0, -25.0], [-60.0, -12.5]]))
case("lt_scalar", lambda x: x * (x < 0.5), randn(3, 4))
case("le_scalar", lambda x: x * (x <= -0.2), randn(3, 4))
case("gt_scalar", lambda x: x * (x > 0.3), randn(3, 4))
case("ge_scalar", lambda x: x * (x >= 1.0), randn(3, 4))
case("scalar_lt", lambda x: x * (0.5 < x), randn(3, 4))
case("eq_scalar", lambda i, x: x * (i == 2), idx(4, 3, 4), randn(3, 4))
case("ne_scalar", lambda i, x: x * (i != 1), idx(4, 3, 4), randn(3, 4))
case("lt_tensor_op", lambda a, b: a * (a < b), randn(3, 4), randn(4))
case("where_scalar_other", lambda c, x: torch.where(c > 0, x, 0.0), randn(3, 4), randn(3, 4))
case("where_scalar_self", lambda c, x: torch.where(c > 0, -1.5, x), randn(3, 4), randn(3, 4))
case("where_scalar_bcast", lambda c, x: torch.where(c > 0, x, 2.0), randn(3, 1), randn(4))
case("like_factories", lambda x: x * torch.full_like(x, 2.5) + torch.ones_like(x) - torch.zeros_like(x), randn(3, 4))
torch.set_rng_state(_state)


def fmt_tensor(kind, t):
    dims = ",".join(str(v) for v in t.shape)
    dtype = "int64" if t.dtype == torch.int64 else "float64"
    vals = " ".join(repr(float(v)) if dtype == "float64" else str(int(v)) for v in t.reshape(-1).tolist())
    return f"{kind} [{dims}] {dtype} {vals}".rstrip()


def main(path=None):
    out = ["# generated by tests/golden/" + os.path.basename(sys.argv[0]) + " with torch " + torch.__version__ + "; do not edit"]
    for name, fn, inputs in CASES:
        takes_grad = [x.is_floating_point() and not getattr(x, "_tg_const", False) for x in inputs]
        xs = [x.clone().requires_grad_(t) for x, t in zip(inputs, takes_grad)]
        y = fn(*xs)
        r = torch.randn(y.shape)
        floats = [x for x in xs if x.requires_grad]
        grads = torch.autograd.grad((y * r).sum(), floats, allow_unused=True)
        out.append(f"case {name}")
        for x, t in zip(inputs, takes_grad):
            out.append(fmt_tensor("input" if t or not x.is_floating_point() else "constant", x))
        out.append(fmt_tensor("output", y.detach()))
        out.append(fmt_tensor("weight", r))
        gi = iter(grads)
        for x in xs:
            if x.requires_grad:
                g = next(gi)
                out.append(fmt_tensor("grad", g if g is not None else torch.zeros_like(x)))
        out.append("end")
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops.txt")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {len(CASES)} cases to {path}")


if __name__ == "__main__":
    main()
