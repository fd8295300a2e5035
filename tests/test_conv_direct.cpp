// The float32 direct convolution kernels (autograd/kernels/conv_direct.hpp: stride 1), at every
// instruction-set level this processor can run, against the float64 path (unfold + OpenBLAS dgemm, which the golden tests check against PyTorch): the
// forward, and the input, weight and bias gradients, over geometries the kernels take (each row
// checks that they do) and their edge cases: padding rows and taps, dilation, groups, 1-D and
// 3-D, odd sizes, a grid wider than a tile, transposed convolution.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "autograd/kernels/conv_direct.hpp"
#include "autograd/kernels/isa.hpp"
#include "isa_levels.hpp"

using tg::Tensor;
using tg::testing::at_every_isa;
namespace F = tg::nn::functional;

namespace {

struct Row {
  std::string name;
  tg::Shape x, w;  // [N, C, *spatial], [O, C / groups, *kernel]
  std::vector<int64_t> padding, dilation;
  int64_t groups;
  bool bias, forward_direct, weight_direct;  // which kernels the geometry must take
};

double max_rel_err(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = a.to(tg::Dtype::Float64).to_vector<double>(), vb = b.to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double scale = 1e-6, err = 0;
  for (double v : vb) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < va.size(); ++i) err = std::max(err, std::fabs(va[i] - vb[i]));
  return err / scale;
}

// The padded 3-D geometry prim_conv hands to direct::make_plan.
bool direct_accepts(const Row& r, bool weight_grad) {
  const size_t nsp = r.x.size() - 2, lead = 3 - nsp;
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, d{1, 1, 1}, p{0, 0, 0};
  for (size_t i = 0; i < nsp; ++i) {
    in[lead + i] = r.x[2 + i];
    k[lead + i] = r.w[2 + i];
    d[lead + i] = r.dilation[i];
    p[lead + i] = r.padding[i];
    out[lead + i] = in[lead + i] + 2 * p[lead + i] - d[lead + i] * (k[lead + i] - 1);
  }
  tg::prim::direct::Plan pl;
  return tg::prim::direct::make_plan(r.x[1] / r.groups, r.w[0] / r.groups, r.groups, in, out, k, d, p, weight_grad,
                                     pl);
}

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& b, const Row& r) {
  const auto o = F::ConvOptions().padding(r.padding).dilation(r.dilation).groups(r.groups);
  if (x.dim() == 3) return F::conv1d(x, w, b, o);
  if (x.dim() == 4) return F::conv2d(x, w, b, o);
  return F::conv3d(x, w, b, o);
}

}  // namespace

TEST_CASE("conv: the instruction-set levels") {
  using tg::kernels::Isa;
  CHECK(int(tg::kernels::active_isa()) <= int(tg::kernels::best_isa()));
  const Isa before = tg::kernels::active_isa();
  if (tg::kernels::best_isa() != Isa::Avx512) CHECK_THROWS_AS(tg::kernels::set_isa(Isa::Avx512), tg::Error);
  at_every_isa([] {
    const tg::prim::direct::Kernels& k = tg::prim::direct::kernels_for(tg::kernels::active_isa());
    CHECK(k.isa == tg::kernels::active_isa());
    CHECK(k.lanes == (k.isa == Isa::Avx512 ? 16 : k.isa == Isa::Avx2 ? 8 : 4));
    CHECK(tg::config_string().find(std::string("kernels ") + tg::kernels::isa_name(k.isa)) != std::string::npos);
  });
  CHECK(tg::kernels::active_isa() == before);
}

TEST_CASE("conv: the float32 direct kernels agree with the float64 unfold + GEMM path") {
  const std::vector<Row> rows = {
      {"3x3 same, 32x32, 64->64 (the benchmark's layer)", {2, 64, 32, 32}, {64, 64, 3, 3}, {1, 1}, {1, 1}, 1, true, true, true},
      {"3x3 valid, odd sizes, 16->24", {3, 16, 11, 7}, {24, 16, 3, 3}, {0, 0}, {1, 1}, 1, true, true, true},
      {"5x3 dilated (2, 1), asymmetric padding", {2, 32, 13, 9}, {32, 32, 5, 3}, {4, 0}, {2, 1}, 1, false, true, true},
      {"grouped: 2 groups of 16->32", {2, 32, 10, 12}, {64, 16, 3, 3}, {1, 1}, {1, 1}, 2, true, true, true},
      {"20 outputs: padding rows in both tiles", {2, 16, 9, 9}, {20, 16, 3, 3}, {1, 1}, {1, 1}, 1, true, true, true},
      {"one input channel: 9 taps padded to the tap blocks", {2, 1, 28, 28}, {24, 1, 3, 3}, {1, 1}, {1, 1}, 1, true, true, true},
      {"densenet-small's layer: 36->12 on 14x14, no bias", {2, 36, 14, 14}, {12, 36, 3, 3}, {1, 1}, {1, 1}, 1, false, true,
       true},
      {"width 48: forward tiles along output rows", {2, 16, 6, 48}, {24, 16, 3, 3}, {1, 1}, {1, 1}, 1, true, true, true},
      {"3-D, width 16: small planes taken along output rows", {1, 8, 3, 5, 16}, {16, 8, 3, 3, 3}, {1, 1, 1}, {1, 1, 1},
       1, true, true, true},
      {"4 outputs: forward only", {2, 8, 9, 9}, {4, 8, 3, 3}, {1, 1}, {1, 1}, 1, true, true, false},
      {"1x1 kernel", {2, 48, 7, 5}, {32, 48, 1, 1}, {0, 0}, {1, 1}, 1, true, true, true},
      {"1-D, k 5, dilation 2", {2, 24, 70}, {40, 24, 5}, {4}, {2}, 1, true, true, true},
      {"3-D 3x3x3 same", {1, 8, 4, 10, 30}, {16, 8, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1, true, true, true},
      {"3-D on small planes: too many discarded positions, unfold + GEMM", {2, 16, 5, 6, 7}, {16, 16, 3, 3, 3},
       {1, 1, 1}, {1, 1, 1}, 1, true, false, false},
      {"depthwise: one output per group, unfold + GEMM", {2, 16, 8, 8}, {16, 1, 3, 3}, {1, 1}, {1, 1}, 16, true,
       false, false},
      {"wide rows: a grid row longer than a tile", {1, 16, 3, 100}, {16, 16, 3, 3}, {1, 1}, {1, 1}, 1, true, true, true},
  };
  at_every_isa([&] {
  tg::manual_seed(7);
  for (const Row& r : rows) {
    CAPTURE(r.name);
    CHECK(direct_accepts(r, false) == r.forward_direct);
    CHECK(direct_accepts(r, true) == r.weight_direct);
    Tensor x = tg::randn(r.x, tg::Dtype::Float64), w = tg::randn(r.w, tg::Dtype::Float64);
    Tensor b = r.bias ? tg::randn({r.w[0]}, tg::Dtype::Float64) : Tensor();
    Tensor probe;  // the upstream gradient: a random weighting of the output
    std::vector<Tensor> grads64, grads32;
    Tensor y64, y32;
    for (auto dtype : {tg::Dtype::Float64, tg::Dtype::Float32}) {
      Tensor xs = x.to(dtype).detach().requires_grad_(), ws = w.to(dtype).detach().requires_grad_();
      Tensor bs = r.bias ? b.to(dtype).detach().requires_grad_() : Tensor();
      Tensor y = conv(xs, ws, bs, r);
      if (!probe.defined()) probe = tg::randn(y.shape(), tg::Dtype::Float64);
      tg::sum(y * probe.to(dtype)).backward();
      std::vector<Tensor> g{xs.grad(), ws.grad()};
      if (r.bias) g.push_back(bs.grad());
      (dtype == tg::Dtype::Float64 ? y64 : y32) = y.detach();
      (dtype == tg::Dtype::Float64 ? grads64 : grads32) = g;
    }
    CHECK(max_rel_err(y32, y64) < 2e-5);
    CHECK(max_rel_err(grads32[0], grads64[0]) < 2e-5);  // input: the forward kernel, flipped weights
    CHECK(max_rel_err(grads32[1], grads64[1]) < 2e-5);  // weight
    if (r.bias) CHECK(max_rel_err(grads32[2], grads64[2]) < 2e-5);
  }
  });
}

TEST_CASE("conv: stride-1 transposed convolution runs on the direct forward kernel and matches float64") {
  at_every_isa([] {
  tg::manual_seed(8);
  Tensor x = tg::randn({2, 32, 9, 11}, tg::Dtype::Float64), w = tg::randn({32, 16, 3, 3}, tg::Dtype::Float64);
  const auto o = F::ConvTransposeOptions().padding({1, 0});
  // It is the input gradient of a conv: a conv of x with the flipped kernel, padded by k - 1 - p.
  const Row as_conv{"", {2, 32, 9, 11}, {16, 32, 3, 3}, {1, 2}, {1, 1}, 1, false, true, true};
  CHECK(direct_accepts(as_conv, false));
  Tensor y64 = F::conv_transpose2d(x, w, Tensor(), o);
  Tensor y32 = F::conv_transpose2d(x.to(tg::Dtype::Float32), w.to(tg::Dtype::Float32), Tensor(), o);
  CHECK(y64.shape() == tg::Shape{2, 16, 9, 13});
  CHECK(max_rel_err(y32, y64) < 2e-5);
  });
}

TEST_CASE("conv: one sample split between two threads gives the bits of one thread") {
  // With fewer samples than threads the direct kernels split a sample's tiles (forward, input
  // gradient) and taps (weight gradient) instead of the batch: the arithmetic per output is
  // unchanged, so the results are identical.
  at_every_isa([] {
  tg::manual_seed(9);
  Tensor x = tg::randn({1, 32, 20, 24}), w = tg::randn({48, 32, 3, 3}), b = tg::randn({48});
  const auto o = F::ConvOptions().padding({1, 1});
  std::vector<std::vector<float>> results[2];
  const int before = tg::get_num_threads();
  for (int threads : {1, 2}) {
    tg::set_num_threads(threads);
    {  // NaN in the blocks the caching allocator hands out next: an output element the kernels
       // miss cannot inherit the previous run's value
      std::vector<Tensor> poison;
      for (const tg::Shape& s : {tg::Shape{1, 48, 20, 24}, tg::Shape{1, 32, 20, 24}, tg::Shape{48, 32, 3, 3}})
        for (int i = 0; i < 4; ++i) poison.push_back(tg::full(s, std::nan("")));
    }
    Tensor xs = x.detach().requires_grad_(), ws = w.detach().requires_grad_(), bs = b.detach().requires_grad_();
    Tensor y = F::conv2d(xs, ws, bs, o);
    tg::sum(y * y).backward();
    results[threads - 1] = {y.to_vector<float>(), xs.grad().to_vector<float>(), ws.grad().to_vector<float>(),
                            bs.grad().to_vector<float>()};
  }
  tg::set_num_threads(before);
  CHECK(results[0] == results[1]);
  });
}
