#pragma once
// Internal helpers shared by the optimizer sources: option checks and the typed raw loops.
// Not part of the public API.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "../autograd/error.hpp"
#include "../autograd/parallel.hpp"
#include "../autograd/simd.hpp"
#include "../autograd/tensor.hpp"

namespace tg::optim::detail {

/// Throws "<who>: invalid <option> <value> (expected <expected>)" unless ok.
inline void check(bool ok, const std::string& who, const char* option, double value, const char* expected) {
  if (!ok) throw Error(fmt::format("{}: invalid {} {} (expected {})", who, option, value, expected));
}
inline void check_non_negative(const std::string& who, const char* option, double value) {
  check(value >= 0 && std::isfinite(value), who, option, value, ">= 0 and finite");
}

/// Visits a bool option as 0/1.
template <typename Visitor>
void visit_flag(const Visitor& f, const char* name, bool& flag) {
  double v = flag ? 1.0 : 0.0;
  f(name, &v, 1);
  flag = v != 0.0;
}

/// Calls f(T{}) with T = float or double, the parameter's element type.
template <typename F>
void dispatch_param(const Tensor& p, F&& f) {
  if (p.dtype() == kFloat32)
    f(float{});
  else
    f(double{});
}

/// Calls f(std::true_type{}) or f(std::false_type{}): a flag hoisted out of an element loop, so
/// each combination compiles to its own branch-free loop.
template <typename F>
void with_flag(bool flag, F&& f) {
  if (flag)
    f(std::true_type{});
  else
    f(std::false_type{});
}

/// Elements per chunk when a parameter's update is split between the library's threads
/// (tg::set_num_threads); smaller parameters are updated on the calling thread. Every element's
/// update is independent, so the result does not depend on the number of threads.
constexpr int64_t kGrain = 1 << 15;

/// body(i) for i in [0, n): one fused pass, split between threads for large n. Capture by value
/// in body ([=]): the copy it gets here is what lets the loop vectorise.
template <typename Body>
void for_each_index(int64_t n, Body&& body) {
  tg::detail::parallel_for(n, kGrain, [&body](int64_t begin, int64_t end) {
    auto f = body;  // a private copy, so its captured scalars and pointers live in registers
    for (int64_t i = begin; i < end; ++i) f(i);
  });
}

/// One fused pass over n elements whose update needs a square root: for each block of elements,
/// x_i = first(i), then √x_i for the whole block with vector instructions (xsimd), then
/// second(i, √x_i). A std::sqrt inside one loop would keep the loop scalar, because it may set
/// errno and the library is not built with -fno-math-errno. The block stays in L1, so every
/// array is still read and written once from memory. Split between threads like for_each_index.
template <typename T, typename First, typename Second>
void sqrt_blocks(int64_t n, First&& first, Second&& second) {
  tg::detail::parallel_for(n, kGrain, [&first, &second](int64_t begin, int64_t end) {
    auto f = first;  // private copies, as in for_each_index
    auto s = second;
    constexpr int64_t kBlock = 256;
    alignas(64) T root[kBlock];
    for (int64_t i0 = begin; i0 < end; i0 += kBlock) {
      const int64_t len = std::min(kBlock, end - i0);
      for (int64_t j = 0; j < len; ++j) root[j] = f(i0 + j);
      simd::sqrt(root, root, len);
      for (int64_t j = 0; j < len; ++j) s(i0 + j, root[j]);
    }
  });
}

}  // namespace tg::optim::detail
