// Tensor's methods: each is the free function of the same name (ops.cpp), as in libtorch.
#include <fmt/format.h>

#include "autograd.hpp"
#include "primitives.hpp"

namespace tg {
namespace {
void need(const Tensor& t, const char* op) {
  if (!t.defined()) throw Error(fmt::format("{}: got an undefined tensor", op));
}
}  // namespace

Tensor Tensor::to(Dtype d) const {
  need(*this, "to");
  return d == dtype() ? *this : prim::cast(*this, d);
}
Tensor Tensor::clone() const {
  need(*this, "clone");
  return prim::cast(*this, dtype());  // a differentiable copy into fresh storage
}
Tensor Tensor::operator-() const { return tg::neg(*this); }
Tensor Tensor::sum() const { return tg::sum(*this); }
Tensor Tensor::sum(const std::vector<int64_t>& d, bool k) const { return tg::sum(*this, d, k); }
Tensor Tensor::mean() const { return tg::mean(*this); }
Tensor Tensor::mean(const std::vector<int64_t>& d, bool k) const { return tg::mean(*this, d, k); }
Tensor Tensor::max() const { return tg::max(*this); }
Tensor Tensor::max(const std::vector<int64_t>& d, bool k) const { return tg::max(*this, d, k); }
Tensor Tensor::min() const { return tg::min(*this); }
Tensor Tensor::min(const std::vector<int64_t>& d, bool k) const { return tg::min(*this, d, k); }
Tensor Tensor::argmax(int64_t d, bool k) const { return tg::argmax(*this, d, k); }
Tensor Tensor::reshape(const Shape& s) const { return tg::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return tg::view(*this, s); }
Tensor Tensor::permute(const std::vector<int64_t>& d) const { return tg::permute(*this, d); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return tg::transpose(*this, a, b); }
Tensor Tensor::t() const {
  if (dim() > 2) throw Error(fmt::format("t: expected a tensor with at most 2 dims, got {}", shape_str(shape())));
  return dim() < 2 ? *this : tg::transpose(*this, 0, 1);
}
Tensor Tensor::flatten(int64_t s, int64_t e) const { return tg::flatten(*this, s, e); }
Tensor Tensor::unsqueeze(int64_t d) const { return tg::unsqueeze(*this, d); }
Tensor Tensor::squeeze() const { return tg::squeeze(*this); }
Tensor Tensor::squeeze(int64_t d) const { return tg::squeeze(*this, d); }
Tensor Tensor::expand(const Shape& s) const { return tg::expand(*this, s); }
Tensor Tensor::narrow(int64_t d, int64_t s, int64_t l) const { return tg::narrow(*this, d, s, l); }
Tensor Tensor::pow(double p) const { return tg::pow(*this, p); }
Tensor Tensor::pow(const Tensor& p) const { return tg::pow(*this, p); }
Tensor Tensor::exp() const { return tg::exp(*this); }
Tensor Tensor::log() const { return tg::log(*this); }
Tensor Tensor::sqrt() const { return tg::sqrt(*this); }
Tensor Tensor::abs() const { return tg::abs(*this); }
Tensor Tensor::tanh() const { return tg::tanh(*this); }
Tensor Tensor::sigmoid() const { return tg::sigmoid(*this); }
Tensor Tensor::relu() const { return tg::relu(*this); }
Tensor Tensor::clamp(double lo, double hi) const { return tg::clamp(*this, lo, hi); }
Tensor Tensor::matmul(const Tensor& o) const { return tg::matmul(*this, o); }
Tensor Tensor::argmin(int64_t d, bool k) const { return tg::argmin(*this, d, k); }
Tensor Tensor::var(const std::vector<int64_t>& d, bool u, bool k) const { return tg::var(*this, d, u, k); }
Tensor Tensor::std(const std::vector<int64_t>& d, bool u, bool k) const { return tg::std(*this, d, u, k); }
Tensor Tensor::logsumexp(const std::vector<int64_t>& d, bool k) const { return tg::logsumexp(*this, d, k); }
Tensor Tensor::cumsum(int64_t d) const { return tg::cumsum(*this, d); }
std::tuple<Tensor, Tensor> Tensor::sort(int64_t d, bool desc) const { return tg::sort(*this, d, desc); }
Tensor Tensor::argsort(int64_t d, bool desc) const { return tg::argsort(*this, d, desc); }
std::tuple<Tensor, Tensor> Tensor::topk(int64_t k, int64_t d, bool largest, bool sorted) const {
  return tg::topk(*this, k, d, largest, sorted);
}
std::vector<Tensor> Tensor::split(int64_t s, int64_t d) const { return tg::split(*this, s, d); }
std::vector<Tensor> Tensor::chunk(int64_t c, int64_t d) const { return tg::chunk(*this, c, d); }
Tensor Tensor::gather(int64_t d, const Tensor& i) const { return tg::gather(*this, d, i); }
Tensor Tensor::index_select(int64_t d, const Tensor& i) const { return tg::index_select(*this, d, i); }
Tensor Tensor::neg() const { return tg::neg(*this); }
Tensor Tensor::erf() const { return tg::erf(*this); }
Tensor Tensor::sin() const { return tg::sin(*this); }
Tensor Tensor::cos() const { return tg::cos(*this); }
Tensor Tensor::log1p() const { return tg::log1p(*this); }
Tensor Tensor::expm1() const { return tg::expm1(*this); }
Tensor Tensor::rsqrt() const { return tg::rsqrt(*this); }
Tensor Tensor::square() const { return tg::square(*this); }
Tensor Tensor::floor() const { return tg::floor(*this); }
Tensor Tensor::ceil() const { return tg::ceil(*this); }
Tensor Tensor::round() const { return tg::round(*this); }
Tensor Tensor::sign() const { return tg::sign(*this); }
Tensor Tensor::atan2(const Tensor& o) const { return tg::atan2(*this, o); }
Tensor Tensor::maximum(const Tensor& o) const { return tg::maximum(*this, o); }
Tensor Tensor::minimum(const Tensor& o) const { return tg::minimum(*this, o); }
#define TG_COMPARE_METHODS(name)                                                 \
  Tensor Tensor::name(const Tensor& o) const { return tg::name(*this, o); }      \
  Tensor Tensor::name(double o) const { return tg::name(*this, o); }
TG_COMPARE_METHODS(eq)
TG_COMPARE_METHODS(ne)
TG_COMPARE_METHODS(lt)
TG_COMPARE_METHODS(le)
TG_COMPARE_METHODS(gt)
TG_COMPARE_METHODS(ge)
#undef TG_COMPARE_METHODS

}  // namespace tg
