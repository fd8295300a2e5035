// The memory-bound loops (autograd/kernels/loops.hpp) at every instruction-set level this
// processor can run: each loop against a plain reference over lengths that leave every kind of
// remainder, with NaNs and ties where the loop selects; then max pooling, batch norm and ReLU
// through the public API, each level against a brute-force reference (values and gradients).
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <tapegrad.hpp>

#include "autograd/kernels/loops.hpp"
#include "isa_levels.hpp"

using tg::Tensor;
using tg::testing::at_every_isa;
namespace F = tg::nn::functional;

namespace {

const std::vector<int64_t> kLengths = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1001};

// Values with ties (a few distinct levels), negatives, zeros, and a NaN at every 37th place when
// asked.
template <typename T>
std::vector<T> values(int64_t n, unsigned seed, bool nans) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> level(-4, 4);
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = nans && i % 37 == 5 ? std::numeric_limits<T>::quiet_NaN() : T(level(rng)) * T(0.5);
  return v;
}

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

template <typename T>
void check_loops() {
  const tg::kernels::Loops<T>& L = tg::kernels::loops<T>();
  CHECK(L.isa == tg::kernels::active_isa());
  for (int64_t n : kLengths) {
    CAPTURE(n);
    const std::vector<T> x = values<T>(n + 8, 1u + unsigned(n), false), g = values<T>(n + 8, 99u + unsigned(n), false);
    double s1 = 0.25, s2 = 0.5, r1 = 0.25, r2 = 0.5, d = 0, sm = 0;
    for (int64_t i = 0; i < n; ++i) {
      r1 += double(x[size_t(i)]) - 0.5;
      r2 += (double(x[size_t(i)]) - 0.5) * (double(x[size_t(i)]) - 0.5);
      d += double(x[size_t(i)]) * double(g[size_t(i)]);
      sm += double(x[size_t(i)]);
    }
    L.shifted_moments(x.data(), n, 0.5, &s1, &s2);
    CHECK(s1 == doctest::Approx(r1).epsilon(1e-12));
    CHECK(s2 == doctest::Approx(r2).epsilon(1e-12));
    CHECK(L.dot(x.data(), g.data(), n) == doctest::Approx(d).epsilon(1e-12));
    CHECK(L.sum(x.data(), n) == doctest::Approx(sm).epsilon(1e-12));

    const std::vector<T> xn = values<T>(n, 7u + unsigned(n), true);
    std::vector<T> y(size_t(n) + 1, T(-7)), z(size_t(n) + 1, T(-7));
    L.scale_shift(xn.data(), T(1.5), T(-0.25), y.data(), n);
    L.scale_shift_relu(xn.data(), T(1.5), T(-0.25), z.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const T v = xn[size_t(i)] * T(1.5) + T(-0.25);
      CHECK(same(y[size_t(i)], v));
      CHECK(same(z[size_t(i)], std::isnan(v) ? v : v > 0 ? v : T(0)));
    }
    CHECK(y[size_t(n)] == T(-7));  // nothing past n is written
    CHECK(z[size_t(n)] == T(-7));
    L.relu(xn.data(), y.data(), n);
    L.relu_backward(g.data(), xn.data(), z.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      // A NaN stays NaN and passes g (PyTorch's relu and threshold_backward).
      const bool pass = !(xn[size_t(i)] <= 0);
      CHECK(same(y[size_t(i)], pass ? xn[size_t(i)] : T(0)));
      CHECK(same(z[size_t(i)], pass ? g[size_t(i)] : T(0)));
    }

    // running_max: against (current, candidate) taken one by one, with and without index arrays,
    // in place and not.
    const int64_t off = 3;
    const std::vector<T> src = values<T>(n + off, 11u + unsigned(n), true), cur = values<T>(n, 13u + unsigned(n), true);
    std::vector<int32_t> src_i(static_cast<size_t>(n + off)), cur_i(static_cast<size_t>(n));
    for (int64_t i = 0; i < n + off; ++i) src_i[size_t(i)] = int32_t(1000 + i);
    for (int64_t i = 0; i < n; ++i) cur_i[size_t(i)] = int32_t(5000 + i);
    for (int variant = 0; variant < 4; ++variant) {
      CAPTURE(variant);
      const bool with_xi = variant & 1, with_ci = variant & 2;
      std::vector<T> bv = cur;
      std::vector<int32_t> bi = cur_i;
      L.running_max(src.data(), with_xi ? src_i.data() : nullptr, off, n, bv.data(), with_ci ? bi.data() : nullptr,
                    bv.data(), bi.data());
      for (int64_t f = 0; f < n; ++f) {
        const T v = src[size_t(f + off)], c = cur[size_t(f)];
        const bool take = v > c || std::isnan(v);
        CHECK(same(bv[size_t(f)], take ? v : c));
        CHECK(bi[size_t(f)] == (take ? (with_xi ? src_i[size_t(f + off)] : int32_t(f + off))
                                     : (with_ci ? cur_i[size_t(f)] : int32_t(f))));
      }
    }
    for (int64_t stride : {1, 2, 3}) {
      CAPTURE(stride);
      const std::vector<T> row = values<T>(n * stride + 1, 17u + unsigned(n), true);
      std::vector<T> bv = cur, bv64 = cur;
      std::vector<int32_t> bi = cur_i;
      std::vector<int64_t> bi64(cur_i.begin(), cur_i.end());
      const int64_t lo = n > 2 ? 1 : 0;
      L.row_max(row.data(), stride, lo, n, 40, bv.data(), bi.data());
      L.row_max_i64(row.data(), stride, lo, n, 40, bv64.data(), bi64.data());
      for (int64_t o = 0; o < n; ++o) {
        const T v = row[size_t(o * stride)], c = cur[size_t(o)];
        const bool take = o >= lo && (v > c || std::isnan(v));
        CHECK(same(bv[size_t(o)], take ? v : c));
        CHECK(bi[size_t(o)] == (take ? int32_t(40 + o * stride) : cur_i[size_t(o)]));
        CHECK(same(bv64[size_t(o)], bv[size_t(o)]));
        CHECK(bi64[size_t(o)] == int64_t(bi[size_t(o)]));
      }
    }
  }
}

// Max pooling by brute force over [N, C, *spatial] (1 to 3 dims) with a NaN or a tie anywhere:
// the first maximum in row-major window order, a NaN winning; and the gradient routed to it.
struct PoolCase {
  tg::Shape x;
  std::vector<int64_t> k, s, p, d;
};

void check_pool(const PoolCase& c) {
  const size_t nsp = c.x.size() - 2;
  Tensor x = tg::floor(tg::rand(c.x, tg::TensorOptions().dtype(tg::kFloat64)) * 4.0);  // many ties
  std::vector<double> xv = x.to_vector<double>();
  xv[xv.size() / 3] = std::numeric_limits<double>::quiet_NaN();
  x = tg::tensor(xv, c.x, tg::kFloat64).requires_grad_(true);
  const auto o = F::PoolOptions(c.k).stride(c.s).padding(c.p).dilation(c.d);
  Tensor y = nsp == 1 ? F::max_pool1d(x, o) : nsp == 2 ? F::max_pool2d(x, o) : F::max_pool3d(x, o);
  Tensor go = tg::rand(y.shape(), tg::TensorOptions().dtype(tg::kFloat64));
  (y * go).sum().backward();
  // Reference, padded to 3 dims.
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, p{0, 0, 0}, d{1, 1, 1};
  for (size_t i = 0; i < nsp; ++i) {
    const size_t j = 3 - nsp + i;
    in[j] = c.x[2 + i];
    out[j] = y.size(int64_t(2 + i));
    k[j] = c.k[i];
    s[j] = c.s[i];
    p[j] = c.p[i];
    d[j] = c.d[i];
  }
  const std::vector<double> yv = y.to_vector<double>(), gov = go.to_vector<double>();
  std::vector<double> gref(xv.size(), 0.0);
  const int64_t planes = c.x[0] * c.x[1], plane = in[0] * in[1] * in[2], L = out[0] * out[1] * out[2];
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t o0 = 0; o0 < out[0]; ++o0)
      for (int64_t o1 = 0; o1 < out[1]; ++o1)
        for (int64_t o2 = 0; o2 < out[2]; ++o2) {
          double best = -std::numeric_limits<double>::infinity();
          int64_t at = -1;
          for (int64_t a = 0; a < k[0]; ++a)
            for (int64_t b = 0; b < k[1]; ++b)
              for (int64_t e = 0; e < k[2]; ++e) {
                const int64_t i0 = o0 * s[0] - p[0] + a * d[0], i1 = o1 * s[1] - p[1] + b * d[1],
                              i2 = o2 * s[2] - p[2] + e * d[2];
                if (i0 < 0 || i1 < 0 || i2 < 0 || i0 >= in[0] || i1 >= in[1] || i2 >= in[2]) continue;
                const int64_t idx = pl * plane + (i0 * in[1] + i1) * in[2] + i2;
                const double v = xv[size_t(idx)];
                if (at < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
                  best = v;
                  at = idx;
                }
              }
          const int64_t oi = pl * L + (o0 * out[1] + o1) * out[2] + o2;
          CHECK(same(yv[size_t(oi)], best));
          gref[size_t(at)] += gov[size_t(oi)];
        }
  const std::vector<double> gx = x.grad().to_vector<double>();
  for (size_t i = 0; i < gx.size(); ++i) CHECK(gx[i] == doctest::Approx(gref[i]).epsilon(1e-12));
}

}  // namespace

TEST_CASE("loops: every loop at every level against its reference") {
  at_every_isa([] {
    check_loops<float>();
    check_loops<double>();
  });
}

TEST_CASE("loops: max pooling at every level against brute force (ties, a NaN, the gradient)") {
  const std::vector<PoolCase> cases = {
      {{2, 3, 28, 28}, {2, 2}, {2, 2}, {0, 0}, {1, 1}},   // tiling windows (cnn-bn's)
      {{2, 2, 14, 13}, {2, 2}, {2, 2}, {0, 0}, {1, 1}},   // an odd width, a dropped column
      {{1, 3, 17, 19}, {3, 3}, {2, 2}, {1, 1}, {1, 1}},   // padded (ResNet's stem)
      {{1, 2, 9, 11}, {3, 3}, {1, 1}, {0, 0}, {1, 1}},    // overlapping, separable
      {{1, 2, 12, 12}, {3, 2}, {2, 1}, {0, 0}, {2, 1}},   // dilated, unequal
      {{2, 3, 40}, {4}, {3}, {0}, {1}},                   // 1-D
      {{1, 2, 5, 6, 7}, {2, 3, 2}, {1, 2, 2}, {0, 1, 0}, {1, 1, 2}},  // 3-D, padding along h
      {{1, 1, 6, 6}, {1, 1}, {2, 2}, {0, 0}, {1, 1}},     // 1 x 1 windows
  };
  at_every_isa([&] {
    for (size_t i = 0; i < cases.size(); ++i) {
      CAPTURE(i);
      check_pool(cases[i]);
    }
  });
}

TEST_CASE("loops: batch norm and ReLU agree across levels") {
  tg::manual_seed(3);
  const Tensor x0 = tg::randn({4, 5, 7, 9}), w0 = tg::rand({5}) + 0.5, b0 = tg::randn({5}), g = tg::randn({4, 5, 7, 9});
  std::vector<std::vector<double>> results;
  at_every_isa([&] {
    Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    Tensor y = F::relu(F::batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5));
    (y * g).sum().backward();
    std::vector<double> all;
    for (const Tensor& t : {y, x.grad(), w.grad(), b.grad()}) {
      const std::vector<double> v = t.to(tg::kFloat64).to_vector<double>();
      all.insert(all.end(), v.begin(), v.end());
    }
    results.push_back(all);
  });
  REQUIRE(!results.empty());
  for (size_t r = 1; r < results.size(); ++r)
    for (size_t i = 0; i < results[0].size(); ++i) CHECK(results[r][i] == doctest::Approx(results[0][i]).epsilon(1e-5));
}
