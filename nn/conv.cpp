// Linear, convolution, transposed convolution and locally connected layers, composed from the
// unfold/fold and matmul primitives (no hand-written backward).
#include <fmt/format.h>

#include "../autograd/primitives.hpp"
#include "functional.hpp"

namespace tg::nn::functional {
namespace {

std::vector<int64_t> per_dim(const IntList& v, int64_t n, const char* op, const char* what) {
  if (v.size() == 1) return std::vector<int64_t>(size_t(n), v[0]);
  if (int64_t(v.size()) != n)
    throw Error(fmt::format("{}: expected {} with 1 or {} values, got [{}]", op, what, n, fmt::join(v, ", ")));
  return v;
}

void check_rank(const Tensor& t, int64_t rank, const char* op, const char* what, const char* layout) {
  if (!t.defined()) throw Error(fmt::format("{}: {} is undefined", op, what));
  if (t.dim() != rank)
    throw Error(fmt::format("{}: {} expects {} dims {}, got {}", op, what, rank, layout, shape_str(t.shape())));
}

Tensor add_channel_bias(const Tensor& y, const Tensor& b, const char* op) {
  if (!b.defined()) return y;
  if (b.dim() != 1 || b.size(0) != y.size(1))
    throw Error(fmt::format("{}: bias expects shape [{}], got {}", op, y.size(1), shape_str(b.shape())));
  Shape s(size_t(y.dim()), 1);
  s[1] = y.size(1);
  return y + b.reshape(s);
}

const char* layout_name(int64_t nsp, bool input) {
  static const char* in[] = {"", "(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)"};
  static const char* w[] = {"", "(out, in/groups, k)", "(out, in/groups, kh, kw)", "(out, in/groups, kd, kh, kw)"};
  return input ? in[nsp] : w[nsp];
}

// Convolution over nsp spatial dims: the kernel bank [O, C/g * K] times the unfolded input
// [C/g * K, L] of each sample, per group (prim::conv).
Tensor conv_nd(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o, int64_t nsp, const char* op) {
  check_rank(x, nsp + 2, op, "input", layout_name(nsp, true));
  check_rank(w, nsp + 2, op, "weight", layout_name(nsp, false));
  const int64_t g = o.groups();
  if (g < 1) throw Error(fmt::format("{}: groups must be positive, got {}", op, g));
  const int64_t c = x.size(1), out_c = w.size(0);
  if (out_c % g != 0)
    throw Error(fmt::format("{}: out channels {} (weight {}) not divisible by groups {}", op, out_c,
                            shape_str(w.shape()), g));
  if (w.size(1) * g != c)
    throw Error(fmt::format("{}: expected input with {} channels (weight {} with groups {}), got {} channels "
                            "(input {})",
                            op, w.size(1) * g, shape_str(w.shape()), g, c, shape_str(x.shape())));
  std::vector<int64_t> kernel(w.shape().begin() + 2, w.shape().end());
  WindowOptions win = WindowOptions(kernel)
                          .stride(per_dim(o.stride(), nsp, op, "stride"))
                          .padding(per_dim(o.padding(), nsp, op, "padding"))
                          .dilation(per_dim(o.dilation(), nsp, op, "dilation"));
  // unfold + matmul per group, fused per sample (prim::conv): the unfolded batch is never built
  // and the tape keeps x and w.
  if (b.defined() && (b.dim() != 1 || b.size(0) != out_c))
    throw Error(fmt::format("{}: bias expects shape [{}], got {}", op, out_c, shape_str(b.shape())));
  return prim::conv(x, w, b, win, g);
}

// Transposed convolution: the adjoint of conv_nd. Each input pixel scatters a kernel-sized
// patch: cols = W^T x per group, then fold (col2im) sums the overlapping patches.
Tensor conv_transpose_nd(const Tensor& x, const Tensor& w, const Tensor& b, const ConvTransposeOptions& o,
                         int64_t nsp, const char* op) {
  check_rank(x, nsp + 2, op, "input", layout_name(nsp, true));
  check_rank(w, nsp + 2, op, "weight", "(in, out/groups, *kernel)");
  const int64_t g = o.groups();
  if (g < 1) throw Error(fmt::format("{}: groups must be positive, got {}", op, g));
  const int64_t n = x.size(0), c = x.size(1);
  if (w.size(0) != c || c % g != 0)
    throw Error(fmt::format("{}: expected input with {} channels (weight {}, groups {}), got {} (input {})", op,
                            w.size(0), shape_str(w.shape()), g, c, shape_str(x.shape())));
  const int64_t og = w.size(1);
  std::vector<int64_t> kernel(w.shape().begin() + 2, w.shape().end());
  auto stride = per_dim(o.stride(), nsp, op, "stride"), padding = per_dim(o.padding(), nsp, op, "padding");
  auto dilation = per_dim(o.dilation(), nsp, op, "dilation"), out_pad = per_dim(o.output_padding(), nsp, op, "output_padding");
  Shape out_size;
  for (int64_t d = 0; d < nsp; ++d) {
    const size_t i = size_t(d);
    if (out_pad[i] >= std::max(stride[i], dilation[i]) || out_pad[i] < 0)
      throw Error(fmt::format("{}: output_padding {} must be smaller than stride {} or dilation {}", op, out_pad[i],
                              stride[i], dilation[i]));
    const int64_t in = x.size(2 + d);
    out_size.push_back((in - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1) + out_pad[i] + 1);
    if (out_size.back() < 1)
      throw Error(fmt::format("{}: the output size {} is not positive (input {})", op, shape_str(out_size),
                              shape_str(x.shape())));
  }
  const WindowOptions win = WindowOptions(kernel).stride(stride).padding(padding).dilation(dilation);
  // The adjoint of the convolution that maps the output back to x's size: conv_input_grad, one
  // fused pass per sample. The transposed conv is the full adjoint F (size (in - 1) s + span)
  // cropped to [p, p + out): p at the start, p - output_padding at the end. When the convolution
  // geometry cannot express that (output_padding >= stride, allowed with a larger dilation), the
  // adjoint is taken with symmetric padding q = max(p - output_padding, 0) and then sliced
  // (and zero-padded where the crop runs past F).
  bool direct = true;
  for (int64_t d = 0; d < nsp; ++d) {
    const size_t i = size_t(d);
    direct = direct && (out_size[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) / stride[i] + 1 == x.size(2 + d);
  }
  Shape full{n, og * g};
  std::vector<int64_t> q(padding);
  for (int64_t d = 0; d < nsp; ++d) {
    const size_t i = size_t(d);
    if (!direct) q[i] = std::max<int64_t>(padding[i] - out_pad[i], 0);
    full.push_back(direct ? out_size[i] : (x.size(2 + d) - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - 2 * q[i]);
  }
  Tensor y = prim::conv_input_grad(x, w, full, WindowOptions(win).padding(q), g);  // q = p when direct
  for (int64_t d = 0; d < nsp && !direct; ++d) {
    const size_t i = size_t(d);
    const int64_t start = padding[i] - q[i], have = y.size(2 + d) - start;
    y = tg::narrow(y, 2 + d, start, std::min(have, out_size[i]));
    if (have < out_size[i]) {
      std::vector<int64_t> pads(size_t(2 * nsp), 0);  // F.pad order: last dim first
      pads[size_t(2 * (nsp - 1 - d) + 1)] = out_size[i] - have;
      y = tg::pad(y, pads);
    }
  }
  return add_channel_bias(y, b, op);
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_rank(w, 2, "linear", "weight", "(out, in)");
  if (!x.defined() || x.dim() < 1 || x.size(-1) != w.size(1))
    throw Error(fmt::format("linear: expected input with {} features in the last dim, got {}", w.size(1),
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  Tensor x2 = x.dim() == 2 ? x : x.reshape({-1, w.size(1)});
  Tensor y = prim::matmul(x2, w, false, true);  // x W^T without materialising W^T
  if (b.defined()) {
    if (b.dim() != 1 || b.size(0) != w.size(0))
      throw Error(fmt::format("linear: bias expects shape [{}], got {}", w.size(0), shape_str(b.shape())));
    y = y + b;
  }
  lead.push_back(w.size(0));
  return x.dim() == 2 ? y : y.reshape(lead);
}

Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o) { return conv_nd(x, w, b, o, 1, "conv1d"); }
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o) { return conv_nd(x, w, b, o, 2, "conv2d"); }
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvOptions& o) { return conv_nd(x, w, b, o, 3, "conv3d"); }
Tensor conv_transpose1d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvTransposeOptions& o) {
  return conv_transpose_nd(x, w, b, o, 1, "conv_transpose1d");
}
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvTransposeOptions& o) {
  return conv_transpose_nd(x, w, b, o, 2, "conv_transpose2d");
}
Tensor conv_transpose3d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvTransposeOptions& o) {
  return conv_transpose_nd(x, w, b, o, 3, "conv_transpose3d");
}

Tensor locally_connected2d(const Tensor& x, const Tensor& w, const Tensor& b, IntList kernel, const ConvOptions& o) {
  const char* op = "locally_connected2d";
  check_rank(x, 4, op, "input", "(N, C, H, W)");
  check_rank(w, 3, op, "weight", "(out_h * out_w, out, in * kh * kw)");
  auto k = per_dim(kernel, 2, op, "kernel_size");
  WindowOptions win = WindowOptions(k).stride(per_dim(o.stride(), 2, op, "stride"))
                          .padding(per_dim(o.padding(), 2, op, "padding"))
                          .dilation(per_dim(o.dilation(), 2, op, "dilation"));
  Tensor cols = tg::unfold(x, win);  // [N, C * K, L]
  const int64_t n = x.size(0), ck = cols.size(1), l = cols.size(2), out_c = w.size(1);
  if (w.size(0) != l || w.size(2) != ck)
    throw Error(fmt::format("{}: expected weight [{}, out, {}] for input {} (kernel [{}]), got {}", op, l, ck,
                            shape_str(x.shape()), fmt::join(k, ", "), shape_str(w.shape())));
  int64_t oh = (x.size(2) + 2 * win.padding()[0] - win.dilation()[0] * (k[0] - 1) - 1) / win.stride()[0] + 1;
  int64_t ow = l / oh;
  // Per position p: out[:, :, p] = cols[:, :, p] @ w[p]^T, as one batched GEMM over positions.
  Tensor per_pos = tg::permute(cols, {2, 0, 1});                 // [L, N, C * K]
  Tensor y = prim::matmul(per_pos, w, false, true);               // [L, N, O]
  y = tg::permute(y, {1, 2, 0}).reshape({n, out_c, oh, ow});     // [N, O, OH, OW]
  if (b.defined()) {
    if (b.shape() != Shape{out_c, oh, ow})
      throw Error(fmt::format("{}: bias expects shape [{}, {}, {}], got {}", op, out_c, oh, ow, shape_str(b.shape())));
    y = y + b;
  }
  return y;
}

}  // namespace tg::nn::functional
