#!/usr/bin/python3
"""Golden values for the nn functional ops (tests/test_nn_golden.cpp), computed by PyTorch.

    /usr/bin/python3 tests/golden/generate_nn.py      # writes tests/golden/nn.txt

Same format and checks as generate.py: inputs, output, a random weight R, and the gradients
of sum(out * R) for every floating input (data, weight and bias alike).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402  (reuses the case format and input makers)

torch.manual_seed(4321)
torch.set_default_dtype(torch.float64)
g.CASES.clear()
case, randn, pos, away, distinct, idx, const = g.case, g.randn, g.pos, g.away, g.distinct, g.idx, g.const

# ---- linear and convolution ----
case("linear", F.linear, randn(4, 3), randn(5, 3), randn(5))
case("linear_3d_nobias", lambda x, w: F.linear(x, w), randn(2, 3, 4), randn(2, 4))
case("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), randn(2, 3, 9), randn(4, 3, 3), randn(4))
case("conv2d", lambda x, w, b: F.conv2d(x, w, b, padding=1), randn(2, 3, 5, 5), randn(4, 3, 3, 3), randn(4))
case("conv2d_stride_dil", lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=2),
     randn(1, 2, 7, 6), randn(3, 2, 3, 2))
case("conv2d_groups", lambda x, w, b: F.conv2d(x, w, b, groups=2, padding=1), randn(2, 4, 5, 4), randn(6, 2, 3, 3),
     randn(6))
case("conv2d_depthwise", lambda x, w: F.conv2d(x, w, groups=3), randn(1, 3, 5, 5), randn(3, 1, 3, 3))
case("conv2d_1x1", lambda x, w: F.conv2d(x, w), randn(2, 3, 4, 4), randn(5, 3, 1, 1))
case("conv2d_odd", lambda x, w, b: F.conv2d(x, w, b, stride=3, padding=2), randn(1, 1, 7, 5), randn(2, 1, 4, 3),
     randn(2))
case("conv3d", lambda x, w, b: F.conv3d(x, w, b, padding=1, stride=(1, 2, 1)), randn(1, 2, 4, 5, 3),
     randn(3, 2, 3, 3, 2), randn(3))
# Stride 1: conv_input_grad runs as a convolution with the flipped kernel (dilated, asymmetric,
# 3-D, grouped) unless a transposed conv's output_padding breaks the size relation.
case("conv2d_dil_s1", lambda x, w: F.conv2d(x, w, padding=(2, 1), dilation=(2, 3)), randn(2, 2, 6, 7),
     randn(3, 2, 3, 2))
case("conv3d_s1_groups", lambda x, w: F.conv3d(x, w, padding=(1, 0, 1), groups=2), randn(1, 4, 3, 4, 3),
     randn(2, 2, 2, 3, 3))
case("conv_transpose2d_s1_outpad",
     lambda x, w: F.conv_transpose2d(x, w, stride=1, padding=1, output_padding=1, dilation=2),
     randn(1, 2, 4, 3), randn(2, 3, 3, 3))
case("conv_transpose1d_outpad_past_end",
     lambda x, w: F.conv_transpose1d(x, w, stride=1, padding=0, output_padding=1, dilation=2),
     randn(2, 2, 4), randn(2, 3, 2))
case("conv_transpose1d", lambda x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1),
     randn(2, 3, 5), randn(3, 2, 3), randn(2))
case("conv_transpose2d", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1), randn(2, 3, 4, 4),
     randn(3, 2, 3, 3), randn(2))
case("conv_transpose2d_outpad_dil",
     lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, dilation=2),
     randn(1, 2, 3, 4), randn(2, 3, 3, 2))
case("conv_transpose2d_groups", lambda x, w: F.conv_transpose2d(x, w, groups=2, stride=(1, 2)),
     randn(1, 4, 3, 3), randn(4, 1, 2, 2))


def locally_connected(x, w, b, k, s, p):  # unshared weights, from first principles
    cols = F.unfold(x, k, stride=s, padding=p)                # [N, C*K, L]
    y = torch.einsum("ncl,loc->nol", cols, w)                 # w [L, O, C*K]
    n, o = y.shape[0], y.shape[1]
    return y.reshape(n, o, b.shape[1], b.shape[2]) + b


case("locally_connected2d", lambda x, w, b: locally_connected(x, w, b, 3, 1, 1), randn(2, 2, 4, 4),
     randn(16, 3, 18), randn(3, 4, 4))
case("locally_connected2d_stride", lambda x, w, b: locally_connected(x, w, b, 2, 2, 0), randn(1, 3, 5, 4),
     randn(4, 2, 12), randn(2, 2, 2))

# ---- pooling ----
case("max_pool2d", lambda x: F.max_pool2d(x, 2), distinct(2, 3, 4, 6))
case("max_pool2d_pad_stride", lambda x: F.max_pool2d(x, 3, stride=2, padding=1), distinct(1, 2, 7, 6))
case("max_pool2d_ceil", lambda x: F.max_pool2d(x, 2, ceil_mode=True), distinct(1, 2, 5, 5))
case("max_pool2d_dilation", lambda x: F.max_pool2d(x, 2, stride=1, dilation=2), distinct(1, 1, 5, 5))
case("max_pool1d", lambda x: F.max_pool1d(x, 3, stride=2), distinct(2, 2, 9))
case("max_pool3d", lambda x: F.max_pool3d(x, 2), distinct(1, 2, 4, 4, 2))
case("avg_pool2d", lambda x: F.avg_pool2d(x, 2), randn(2, 3, 4, 6))
case("avg_pool2d_pad", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), randn(1, 2, 7, 6))
case("avg_pool2d_pad_exclude", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
     randn(1, 2, 7, 6))
case("avg_pool2d_ceil", lambda x: F.avg_pool2d(x, 2, ceil_mode=True), randn(1, 2, 5, 5))
case("avg_pool2d_ceil_pad", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), randn(1, 1, 6, 6))
case("avg_pool1d", lambda x: F.avg_pool1d(x, 2), randn(2, 2, 8))
case("avg_pool3d", lambda x: F.avg_pool3d(x, 2, padding=1), randn(1, 1, 3, 4, 4))
case("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), randn(2, 2, 4, 6))
case("adaptive_avg_pool2d_uneven", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), randn(1, 2, 5, 7))
case("adaptive_avg_pool2d_global", lambda x: F.adaptive_avg_pool2d(x, 1), randn(2, 3, 4, 5))
case("adaptive_max_pool2d", lambda x: F.adaptive_max_pool2d(x, (2, 3)), distinct(1, 2, 5, 7))

# ---- resampling and padding modes ----
case("interpolate_nearest", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), randn(1, 2, 3, 4))
case("interpolate_nearest_size", lambda x: F.interpolate(x, size=(5, 3), mode="nearest"), randn(1, 2, 3, 4))
case("interpolate_bilinear", lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
     randn(1, 2, 3, 4))
case("interpolate_bilinear_align", lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True),
     randn(1, 2, 3, 4))
case("pad_reflect", lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), randn(1, 2, 4, 5))
case("pad_replicate", lambda x: F.pad(x, (1, 3, 2, 0), mode="replicate"), randn(1, 2, 3, 4))

# ---- normalisation ----
def bn_train(x, w, b):
    rm, rv = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
    return F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)


def bn_eval(x, w, b):
    rm = torch.linspace(-0.5, 0.5, x.shape[1])
    rv = torch.linspace(0.5, 1.5, x.shape[1])
    return F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5)


case("batch_norm_train", bn_train, randn(4, 3, 2, 2), randn(3), randn(3))
case("batch_norm_train_1d", bn_train, randn(5, 3), randn(3), randn(3))
case("batch_norm_eval", bn_eval, randn(4, 3, 2, 2), randn(3), randn(3))
case("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b), randn(2, 4, 3, 3), randn(4), randn(4))
case("group_norm_noaffine", lambda x: F.group_norm(x, 3), randn(2, 6, 5))
case("layer_norm", lambda x, w, b: F.layer_norm(x, (3, 4), w, b), randn(2, 3, 4), randn(3, 4), randn(3, 4))
case("layer_norm_last", lambda x: F.layer_norm(x, (5,)), randn(3, 5))
case("instance_norm", lambda x, w, b: F.instance_norm(x, weight=w, bias=b), randn(2, 3, 4, 4), randn(3), randn(3))
case("local_response_norm", lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=2.0), randn(2, 5, 3, 3))
case("local_response_norm_even", lambda x: F.local_response_norm(x, 4), randn(1, 6, 2, 3))

# ---- activations ----
case("leaky_relu", lambda x: F.leaky_relu(x, 0.1), away(3, 4))
case("elu", lambda x: F.elu(x, 1.5), away(3, 4))
case("gelu", F.gelu, randn(3, 4))
case("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), randn(3, 4))
case("softplus", lambda x: F.softplus(x, beta=2.0, threshold=3.0), randn(4, 5) * 2)
case("softmax", lambda x: F.softmax(x, 1), randn(3, 5))
case("softmax_dim0", lambda x: F.softmax(x, 0), randn(3, 5) * 10)
case("log_softmax", lambda x: F.log_softmax(x, -1), randn(2, 3, 4))
case("log_softmax_large", lambda x: F.log_softmax(x, 1), randn(3, 4) * 100)

# ---- losses ----
T5 = torch.tensor([0, 3, 1, 3, 2])
case("cross_entropy", lambda x, t: F.cross_entropy(x, t), randn(5, 4), T5)
case("cross_entropy_sum", lambda x, t: F.cross_entropy(x, t, reduction="sum"), randn(5, 4), T5)
case("cross_entropy_none", lambda x, t: F.cross_entropy(x, t, reduction="none"), randn(5, 4), T5)
case("cross_entropy_weight", lambda x, t, w: F.cross_entropy(x, t, weight=w), randn(5, 4), T5, const(pos(4)))
case("cross_entropy_ignore", lambda x, t: F.cross_entropy(x, t, ignore_index=3), randn(5, 4), T5)
case("cross_entropy_smooth", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), randn(5, 4), T5)
case("cross_entropy_smooth_ignore", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.2, ignore_index=3),
     randn(5, 4), T5)
case("cross_entropy_smooth_weight", lambda x, t, w: F.cross_entropy(x, t, weight=w, label_smoothing=0.1),
     randn(5, 4), T5, const(pos(4)))
case("cross_entropy_spatial", lambda x, t: F.cross_entropy(x, t), randn(2, 3, 2, 2), idx(3, 2, 2, 2))
case("nll_loss", lambda x, t: F.nll_loss(F.log_softmax(x, 1), t), randn(5, 4), T5)
case("nll_loss_weight_ignore", lambda x, t, w: F.nll_loss(x, t, weight=w, ignore_index=1), randn(5, 4), T5, const(pos(4)))
case("mse_loss", F.mse_loss, randn(3, 4), randn(3, 4))
case("mse_loss_sum", lambda a, b: F.mse_loss(a, b, reduction="sum"), randn(3, 4), randn(3, 4))
case("l1_loss", F.l1_loss, randn(3, 4), randn(3, 4))
case("binary_cross_entropy", lambda p, t: F.binary_cross_entropy(p, t), torch.rand(3, 4) * 0.8 + 0.1, torch.rand(3, 4))
case("binary_cross_entropy_weight", lambda p, t, w: F.binary_cross_entropy(p, t, weight=w),
     torch.rand(3, 4) * 0.8 + 0.1, torch.rand(3, 4), const(pos(3, 4)))
case("bce_with_logits", F.binary_cross_entropy_with_logits, randn(3, 4) * 3, torch.rand(3, 4))
case("bce_with_logits_pos_weight", lambda x, t, pw: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw),
     randn(3, 4) * 3, torch.rand(3, 4), const(pos(4)))

if __name__ == "__main__":
    g.main(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn.txt"))
