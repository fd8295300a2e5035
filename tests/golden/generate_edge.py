#!/usr/bin/python3
"""Golden values for the numerical edge cases (tests/test_edge_golden.cpp), computed by PyTorch.

    /usr/bin/python3 tests/golden/generate_edge.py      # writes tests/golden/edge.txt

The inputs sit where an op overflows, divides by zero, saturates or meets NaN/Inf: logits of
+-1e4, a constant batch-norm channel, exp and pow past the largest double, sqrt and log at 0,
0/0, softmax of a row of -inf, NaN targets, class indices out of range. Same format as
generate.py (inputs, output, a random weight R, gradients of sum(out * R)); the values may be
inf or nan, written as Python prints them. Two more lines:
  raises <type>: <message>   PyTorch raises here; tapegrad must throw tg::Error naming the op
  smooth                     the function is smooth at the inputs, so gradcheck and
                             gradgradcheck apply too (not at a pole, a kink or a NaN)
  float64_only               compared in float64 only (float32 overflows, or rounds, apart)
  known_difference <why>     tapegrad's forward matches, its gradients are finite but are not
                             PyTorch's (docs/reliability.md says why)
The C++ side runs each case in float64 and float32, so the other inputs are chosen to behave
alike in both (overflowing in both or in neither).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402  (reuses the tensor format and input makers)

torch.manual_seed(1616)
torch.set_default_dtype(torch.float64)
randn, idx, const = g.randn, g.idx, g.const
inf, nan = float("inf"), float("nan")

CASES = []  # (name, fn, inputs, smooth)


def case(name, fn, *inputs, smooth=False, float64_only=False, known_difference=None):
    CASES.append((name, fn, inputs, smooth, float64_only, known_difference))


def t(*rows):
    return torch.tensor(rows if len(rows) > 1 else rows[0])


def signs(*s, scale):  # +-scale at random
    return torch.where(torch.rand(s) < 0.5, -scale, scale) * torch.ones(s)


# ---- elementwise: overflow, poles, domains, NaN ----
case("exp_overflow", torch.exp, t([800.0, -800.0, 1.0, inf, -inf, nan]))
case("expm1_overflow", torch.expm1, t([800.0, -800.0, 0.5, inf, -inf]))
case("pow_overflow", lambda x: x.pow(3), t([1e200, -1e200, 2.0]))
case("pow_tensor_overflow", torch.pow, t([10.0, 1e10, 0.5]), t([400.0, 40.0, -2000.0]))
case("pow_half_at_0", lambda x: x.pow(0.5), t([0.0, 4.0, 1.0]))
case("pow_neg1_at_0", lambda x: x.pow(-1.0), t([0.0, -0.0, 2.0]))
case("pow_0_at_0", lambda x: x.pow(0.0), t([0.0, 3.0, -2.0]))
case("pow_2_at_0", lambda x: x.pow(2.0), t([0.0, -0.0, 1.5]))
case("pow_half_negative", lambda x: x.pow(0.5), t([-1.0, 4.0]))
case("pow_tensor_zero_base", torch.pow, t([0.0, 0.0, 0.0, 0.0, 2.0]), t([2.0, 0.5, 0.0, -1.0, 0.0]))
case("pow_tensor_negative_base", torch.pow, t([-2.0, -2.0, -8.0]), t([0.5, 2.0, 3.0]))
case("sqrt_at_0", torch.sqrt, t([0.0, 4.0, -1.0, inf]))
case("sqrt_of_square_at_0", lambda x: torch.sqrt(x * x), t([0.0, 3.0, -2.0]))
case("norm_at_0", lambda x: torch.sqrt((x * x).sum()), t([0.0, 0.0, 0.0]))
case("rsqrt_at_0", torch.rsqrt, t([0.0, 4.0, -1.0]))
case("log_at_0", torch.log, t([0.0, -1.0, 1.0, inf]))
case("log1p_at_minus1", torch.log1p, t([-1.0, -2.0, 0.0]))
case("div_by_zero", lambda a, b: a / b, t([1.0, -1.0, 0.0, 2.0]), t([0.0, 0.0, 0.0, -0.0]))
case("div_scalar_by_zero", lambda x: x / 0.0, t([1.0, -1.0, 0.0]))
case("rdiv_scalar_at_0", lambda x: 2.0 / x, t([0.0, -0.0, 4.0]))
case("mul_inf_zero", lambda a, b: a * b, t([inf, 0.0, -inf]), t([0.0, inf, 2.0]))
case("sum_inf", lambda x: x.sum(), t([inf, -inf, 1.0]))
case("mean_nan", lambda x: x.mean(1), t([[nan, 1.0], [2.0, 3.0]]))
case("abs_at_0", torch.abs, t([0.0, -0.0, -2.0]))
case("tanh_saturation", torch.tanh, t([800.0, -800.0, 40.0, -40.0, 1e4, -1e4]))
case("sigmoid_saturation", torch.sigmoid, t([800.0, -800.0, 40.0, -40.0, 1e4, -1e4]))
case("tanh_nan", torch.tanh, t([nan, inf, -inf]))
case("sigmoid_nan", torch.sigmoid, t([nan, inf, -inf]))
case("erf_inf", torch.erf, t([inf, -inf, 1e4, nan]))
case("relu_nan", torch.relu, t([nan, -1.0, 1.0, inf, -inf]))
case("clamp_nan", lambda x: x.clamp(-0.5, 0.7), t([nan, -inf, inf, 0.1]))
case("maximum_nan", torch.maximum, t([nan, 1.0, 2.0]), t([1.0, nan, -inf]))
case("minimum_nan", torch.minimum, t([nan, 1.0, 2.0]), t([1.0, nan, inf]))
case("amax_nan", lambda x: x.amax(1), t([[1.0, nan, 3.0], [1.0, 2.0, 3.0]]))
case("amax_inf", lambda x: x.amax(1), t([[inf, 1.0, 2.0], [-inf, -inf, -inf]]))
case("logsumexp_neg_inf_row", lambda x: torch.logsumexp(x, 1), t([[-inf, -inf, -inf], [-inf, 0.0, 1.0]]))
case("logsumexp_pos_inf", lambda x: torch.logsumexp(x, 1), t([[inf, 1.0, 2.0], [0.0, 1.0, 2.0]]))
case("logsumexp_extreme", lambda x: torch.logsumexp(x, 1), t([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]]),
     smooth=True)
case("atan2_at_origin", torch.atan2, t([0.0, 1.0]), t([0.0, 0.0]))
case("var_single", lambda x: x.var(1), t([[2.0], [3.0]]))
case("std_constant", lambda x: x.std(1), t([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]]))
case("softplus_extreme", F.softplus, t([1e4, -1e4, 800.0, -800.0, nan]))
case("cumsum_inf", lambda x: x.cumsum(0), t([1.0, inf, -inf, 2.0]))

# ---- nn: softmax and log-softmax at +-1e4 and -inf ----
BIG = torch.tensor([[1e4, -1e4, 0.0, 1.0], [-1e4, -1e4, -1e4, 1e4], [1e4, 1e4, -1e4, 0.0]])
case("log_softmax_extreme", lambda x: F.log_softmax(x, 1), BIG.clone(), smooth=True)
case("softmax_extreme", lambda x: F.softmax(x, 1), BIG.clone(), smooth=True)
case("log_softmax_extreme_dim0", lambda x: F.log_softmax(x, 0), BIG.clone(), smooth=True)
MASKED = t([[-inf, 0.0, 1.0], [-inf, -inf, 2.0]])
case("softmax_neg_inf_partial", lambda x: F.softmax(x, 1), MASKED.clone())
case("log_softmax_neg_inf_partial", lambda x: F.log_softmax(x, 1), MASKED.clone())
ALLNEG = t([[-inf, -inf, -inf], [0.0, 1.0, 2.0]])
case("softmax_neg_inf_row", lambda x: F.softmax(x, 1), ALLNEG.clone())
case("log_softmax_neg_inf_row", lambda x: F.log_softmax(x, 1), ALLNEG.clone())
case("softmax_pos_inf", lambda x: F.softmax(x, 1), t([[inf, 0.0, 1.0], [0.0, 1.0, 2.0]]))

# ---- nn: cross-entropy ----
T = torch.tensor([0, 3, 1, 2, 3])
case("cross_entropy_extreme", lambda x, y: F.cross_entropy(x, y), signs(5, 4, scale=1e4), T, smooth=True)
case("cross_entropy_extreme_none", lambda x, y: F.cross_entropy(x, y, reduction="none"),
     signs(5, 4, scale=1e4), T, smooth=True)
case("cross_entropy_extreme_smooth", lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1),
     signs(5, 4, scale=1e4), T, smooth=True)
case("cross_entropy_extreme_weight", lambda x, y, w: F.cross_entropy(x, y, weight=w),
     signs(5, 4, scale=1e4), T, const(g.pos(4)), smooth=True)
case("cross_entropy_neg_inf_logit", lambda x, y: F.cross_entropy(x, y),
     t([[0.0, -inf, 1.0], [2.0, 0.5, -inf]]), torch.tensor([0, 1]))
case("cross_entropy_neg_inf_logit_smooth", lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1),
     t([[0.0, -inf, 1.0], [2.0, 0.5, -inf]]), torch.tensor([0, 1]))
case("cross_entropy_neg_inf_at_target", lambda x, y: F.cross_entropy(x, y),
     t([[0.0, -inf, 1.0], [2.0, 0.5, 1.0]]), torch.tensor([1, 0]))
case("cross_entropy_nan_logit", lambda x, y: F.cross_entropy(x, y), t([[nan, 0.0, 1.0], [2.0, 0.5, 1.0]]),
     torch.tensor([1, 0]))
case("cross_entropy_all_ignored", lambda x, y: F.cross_entropy(x, y, ignore_index=2), randn(3, 4),
     torch.tensor([2, 2, 2]))
case("cross_entropy_all_ignored_smooth", lambda x, y: F.cross_entropy(x, y, ignore_index=2, label_smoothing=0.1),
     randn(3, 4), torch.tensor([2, 2, 2]))
case("nll_loss_all_ignored", lambda x, y: F.nll_loss(x, y, ignore_index=1), randn(2, 3), torch.tensor([1, 1]))
case("cross_entropy_target_too_large", lambda x, y: F.cross_entropy(x, y), randn(3, 4), torch.tensor([0, 4, 1]))
case("cross_entropy_target_negative", lambda x, y: F.cross_entropy(x, y), randn(3, 4), torch.tensor([0, -1, 1]))
case("cross_entropy_spatial_target_too_large", lambda x, y: F.cross_entropy(x, y), randn(2, 3, 2),
     torch.tensor([[0, 1], [3, 2]]))
case("nll_loss_target_too_large", lambda x, y: F.nll_loss(x, y), randn(3, 4), torch.tensor([0, 7, 1]))
# NaN labels: class indices are integers, so a float target of shape [N] holding NaN is refused.
case("cross_entropy_nan_labels", lambda x, y: F.cross_entropy(x, y), randn(3, 4), const(t([0.0, nan, 1.0])))

# ---- nn: normalisation of a constant channel ----
def bn_train(x, w, b):
    rm, rv = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    return F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)


def bn_eval_zero_var(x, w, b):
    rm, rv = torch.zeros(x.shape[1]), torch.zeros(x.shape[1])
    return F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5)


def constant_channel(*s, ch=1, value=0.3):
    x = torch.randn(s)
    x[:, ch] = value
    return x


def constant_row(*s, value):
    x = torch.randn(s)
    x[0] = value
    return x


case("batch_norm_constant_channel", bn_train, constant_channel(4, 3, 2, 2), randn(3), randn(3), smooth=True)
case("batch_norm_constant_channel_1d", bn_train, constant_channel(5, 3, value=-2.0), randn(3), randn(3), smooth=True)
# float64 only: the weight's gradient sum(g x) rsqrt(eps) - mean rsqrt(eps) sum(g) cancels to
# about 2e-4 in float32 where PyTorch's is 0 (each term about 1e3).
case("batch_norm_all_constant", bn_train, torch.full((3, 2, 2, 2), 1.5), randn(2), randn(2), smooth=True,
     float64_only=True)
case("batch_norm_eval_zero_var", bn_eval_zero_var, randn(2, 3, 2, 2), randn(3), randn(3), smooth=True)
case("batch_norm_one_value_per_channel", bn_train, randn(1, 3), randn(3), randn(3))
case("batch_norm_one_value_per_channel_2d", bn_train, randn(1, 3, 1, 1), randn(3), randn(3))
case("layer_norm_constant", lambda x, w, b: F.layer_norm(x, (4,), w, b), constant_row(3, 4, value=2.0),
     randn(4), randn(4), smooth=True)
case("group_norm_constant", lambda x, w, b: F.group_norm(x, 2, w, b), constant_channel(2, 4, 3, ch=0, value=0.7),
     randn(4), randn(4), smooth=True)

# ---- nn: regression and binary losses at extreme inputs and NaN targets ----
case("mse_loss_overflow", F.mse_loss, t([1e300, -1e300, 1.0]), t([0.0, 0.0, 2.0]), float64_only=True)
case("mse_loss_inf_input", F.mse_loss, t([inf, -inf, 1.0]), t([0.0, 0.0, 2.0]))
case("mse_loss_nan_target", F.mse_loss, t([1.0, 2.0, 3.0]), t([nan, 1.0, 2.0]))
case("mse_loss_inf_target", lambda a, b: F.mse_loss(a, b, reduction="none"), t([1.0, 2.0]), t([inf, 1.0]))
case("l1_loss_nan_target", F.l1_loss, t([1.0, 2.0, 3.0]), t([nan, 1.0, 2.0]))
EXT = t([[1e4, -1e4, 800.0, -800.0], [40.0, -40.0, 0.0, 0.0], [1e4, -1e4, 0.0, 3.0]])
EXT_Y = t([[0.0, 1.0, 1.0, 0.0], [0.5, 0.5, 1.0, 0.0], [1.0, 0.0, 0.5, 0.2]])
case("bce_with_logits_extreme", lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none"),
     EXT.clone(), EXT_Y.clone())
case("bce_with_logits_extreme_mean", F.binary_cross_entropy_with_logits, EXT.clone(), EXT_Y.clone())
case("bce_with_logits_extreme_pos_weight",
     lambda x, y, pw: F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none"),
     EXT.clone(), EXT_Y.clone(), const(t([0.5, 2.0, 3.0, 1.5])))
case("bce_with_logits_at_0", F.binary_cross_entropy_with_logits, t([0.0, 0.0, 0.0]), t([0.0, 1.0, 0.3]))
case("bce_with_logits_nan_target", lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none"),
     t([1.0, -2.0]), t([nan, 1.0]))
case("binary_cross_entropy_at_bounds", lambda p, y: F.binary_cross_entropy(p, y, reduction="none"),
     t([0.0, 1.0, 0.0, 1.0, 0.5]), t([1.0, 0.0, 0.0, 1.0, 0.5]),
     known_difference="PyTorch's own VJP: (p - y) / max(p (1 - p), 1e-12) and an unclamped log for the target")
case("binary_cross_entropy_out_of_range", F.binary_cross_entropy, t([1.5, 0.5]), t([1.0, 0.0]))
case("binary_cross_entropy_nan_input", F.binary_cross_entropy, t([nan, 0.5]), t([1.0, 0.0]))

# ---- nn: activations far out ----
case("elu_extreme", F.elu, t([-800.0, -1e4, 800.0, 1e4]), smooth=False)
case("gelu_extreme", F.gelu, t([-1e4, 1e4, -40.0, 40.0]))
case("leaky_relu_inf", lambda x: F.leaky_relu(x, 0.1), t([inf, -inf, nan]))


def main(path):
    out = ["# generated by tests/golden/" + os.path.basename(sys.argv[0]) + " with torch " + torch.__version__ + "; do not edit"]
    for name, fn, inputs, smooth, float64_only, known_difference in CASES:
        takes_grad = [x.is_floating_point() and not getattr(x, "_tg_const", False) for x in inputs]
        xs = [x.clone().requires_grad_(tg) for x, tg in zip(inputs, takes_grad)]
        out.append(f"case {name}")
        for x, tg in zip(inputs, takes_grad):
            out.append(g.fmt_tensor("input" if tg or not x.is_floating_point() else "constant", x))
        try:
            y = fn(*xs)
        except Exception as e:  # noqa: BLE001  (PyTorch's refusal is the expected result)
            out.append(f"raises {type(e).__name__}: {str(e).splitlines()[0]}")
            out.append("end")
            continue
        if smooth:
            out.append("smooth")
        if float64_only:
            out.append("float64_only")
        if known_difference:
            out.append("known_difference " + known_difference)
        r = torch.randn(y.shape)
        floats = [x for x in xs if x.requires_grad]
        grads = torch.autograd.grad((y * r).sum(), floats, allow_unused=True)
        out.append(g.fmt_tensor("output", y.detach()))
        out.append(g.fmt_tensor("weight", r))
        for gr, x in zip(grads, floats):
            out.append(g.fmt_tensor("grad", gr if gr is not None else torch.zeros_like(x)))
        out.append("end")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {len(CASES)} cases to {path}")


if __name__ == "__main__":
    main(os.path.join(os.path.dirname(os.path.abspath(__file__)), "edge.txt"))
