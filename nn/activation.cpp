// Activations, dropout and losses, composed from elementwise ops, reductions and gather.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "../autograd/autograd.hpp"
#include "functional.hpp"

namespace tg::nn::functional {
namespace {

Tensor zero_like_scalar(const Tensor& x) { return tg::zeros({}, x.dtype()); }

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case kNone: return loss;
    case kSum: return tg::sum(loss);
    default: return tg::mean(loss);
  }
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape())
    throw Error(fmt::format("{}: expected input and target of the same shape, got {} and {}", op,
                            a.defined() ? shape_str(a.shape()) : "undefined",
                            b.defined() ? shape_str(b.shape()) : "undefined"));
}

}  // namespace

Tensor relu(const Tensor& x) { return tg::relu(x); }
Tensor sigmoid(const Tensor& x) { return tg::sigmoid(x); }
Tensor tanh(const Tensor& x) { return tg::tanh(x); }

Tensor leaky_relu(const Tensor& x, double slope) { return tg::where(tg::gt(x, zero_like_scalar(x)), x, x * slope); }

Tensor elu(const Tensor& x, double alpha) {
  Tensor zero = zero_like_scalar(x);
  Tensor negative = tg::where(tg::gt(x, zero), zero, x);  // min(x, 0): exp never overflows
  return tg::where(tg::gt(x, zero), x, (tg::exp(negative) - 1.0) * alpha);
}

Tensor gelu(const Tensor& x, bool tanh_approximation) {
  if (tanh_approximation) {
    const double c = std::sqrt(2.0 / M_PI);
    return x * 0.5 * (1.0 + tg::tanh((x + x * x * x * 0.044715) * c));
  }
  return x * 0.5 * (1.0 + tg::erf(x * M_SQRT1_2));
}

Tensor softplus(const Tensor& x, double beta, double threshold) {
  // PyTorch's formula: x where beta x > threshold, else log1p(exp(beta x)) / beta. The exp sees
  // beta x capped at the threshold, so the unused branch never overflows (inf there would give a
  // NaN gradient: 0 * inf); log1p keeps the digits of a tiny exp(beta x).
  Tensor bx = x * beta;
  Tensor above = bx > threshold;
  Tensor capped = tg::where(above, threshold, bx);
  return tg::where(above, x, tg::log1p(tg::exp(capped)) / beta);
}

Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor e = tg::exp(x - tg::max(x, {dim}, true).detach());
  return e / tg::sum(e, {dim}, true);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  Tensor s = x - tg::max(x, {dim}, true).detach();
  return s - tg::log(tg::sum(tg::exp(s), {dim}, true));
}

Tensor dropout(const Tensor& x, double p, bool training) {
  if (p < 0 || p > 1) throw Error(fmt::format("dropout: p must be in [0, 1], got {}", p));
  if (!training || p == 0) return x;
  if (p == 1) return x * 0.0;
  Tensor keep = tg::ge(tg::rand(x.shape(), x.dtype()), tg::full({}, p, x.dtype()));
  return x * (keep * (1.0 / (1.0 - p)));
}

Tensor dropout2d(const Tensor& x, double p, bool training) {
  if (p < 0 || p > 1) throw Error(fmt::format("dropout2d: p must be in [0, 1], got {}", p));
  if (!x.defined() || x.dim() < 3)
    throw Error(fmt::format("dropout2d: expected input [N, C, *spatial], got {}",
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  if (!training || p == 0) return x;
  if (p == 1) return x * 0.0;
  Shape s(size_t(x.dim()), 1);
  s[0] = x.size(0);
  s[1] = x.size(1);
  Tensor keep = tg::ge(tg::rand(s, x.dtype()), tg::full({}, p, x.dtype()));
  return x * (keep * (1.0 / (1.0 - p)));
}

// ---- losses ----
namespace {
// Per-element negative log-likelihood pieces shared by nll_loss and cross_entropy:
// the picked log-probabilities, the per-element weight (class weight, 0 where ignored).
struct Picked {
  Tensor nll;     // -log p[target], 0 where ignored, [N, *]
  Tensor weight;  // class weight of the target, 0 where ignored, [N, *]
  Tensor mask;    // 1 where the target counts, 0 where ignored
};

Picked pick(const Tensor& logp, const Tensor& target, const CrossEntropyOptions& o, const char* op) {
  if (!logp.defined() || logp.dim() < 2)
    throw Error(fmt::format("{}: expected input [N, C, *], got {}", op, logp.defined() ? shape_str(logp.shape()) : "undefined"));
  if (!target.defined() || target.dtype() != kInt64)
    throw Error(fmt::format("{}: expected int64 class indices as target, got {}", op,
                            target.defined() ? dtype_name(target.dtype()) : "undefined"));
  Shape want = logp.shape();
  want.erase(want.begin() + 1);
  if (target.shape() != want)
    throw Error(fmt::format("{}: expected target of shape {} for input {}, got {}", op, shape_str(want),
                            shape_str(logp.shape()), shape_str(target.shape())));
  const int64_t c = logp.size(1);
  if (o.weight().defined() && (o.weight().dim() != 1 || o.weight().size(0) != c))
    throw Error(fmt::format("{}: weight expects shape [{}], got {}", op, c, shape_str(o.weight().shape())));
  // Ignored targets gather from class 0 and are masked out afterwards.
  auto t = target.to_vector<int64_t>();
  std::vector<double> safe(t.size()), keep(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    bool ignored = t[i] == o.ignore_index();
    if (!ignored && (t[i] < 0 || t[i] >= c))
      throw Error(fmt::format("{}: target {} is out of range for {} classes", op, t[i], c));
    safe[i] = ignored ? 0.0 : double(t[i]);
    keep[i] = ignored ? 0.0 : 1.0;
  }
  Tensor idx = tg::tensor(safe, target.shape(), kInt64);
  Tensor mask = tg::tensor(keep, target.shape(), logp.dtype());
  Tensor picked = tg::gather(logp, 1, idx.unsqueeze(1)).squeeze(1);
  Tensor w = mask;
  if (o.weight().defined())
    w = tg::index_select(o.weight().to(logp.dtype()).detach(), 0, idx.reshape({-1})).reshape(target.shape()) * mask;
  return {-picked * w, w, mask};
}

// total / denom, the mean over the counted targets. With no target counted (all ignored) it is
// 0 / 0 = NaN, as PyTorch's, and the gradient is 0 (PyTorch's), not the 0 * inf of a division.
Tensor counted_mean(const Tensor& total, const Tensor& denom) {
  Tensor none = tg::eq(denom, 0.0);
  return total / tg::where(none, 1.0, denom) +
         tg::where(none, std::numeric_limits<double>::quiet_NaN(), tg::zeros_like(denom));
}
}  // namespace

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const CrossEntropyOptions& o) {
  Picked p = pick(log_probs, target, o, "nll_loss");
  if (o.reduction() == kMean) return counted_mean(tg::sum(p.nll), tg::sum(p.weight));
  return reduce(p.nll, o.reduction());
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  const double eps = o.label_smoothing();
  if (eps < 0 || eps > 1) throw Error(fmt::format("cross_entropy: label_smoothing must be in [0, 1], got {}", eps));
  if (!logits.defined() || logits.dim() < 2)
    throw Error(fmt::format("cross_entropy: expected input [N, C, *], got {}",
                            logits.defined() ? shape_str(logits.shape()) : "undefined"));
  Tensor logp = log_softmax(logits, 1);
  Picked p = pick(logp, target, o, "cross_entropy");
  if (eps == 0) return o.reduction() == kMean ? counted_mean(tg::sum(p.nll), tg::sum(p.weight)) : reduce(p.nll, o.reduction());
  // Label smoothing (PyTorch 1.13): (1 - eps) * nll + eps / C * sum_c w_c * (-log p_c), with the
  // smooth part masked where the target is ignored; mean divides both by the sum of weights.
  const int64_t c = logits.size(1);
  Tensor lp = logp;
  if (o.weight().defined()) {
    Shape s(size_t(logp.dim()), 1);
    s[1] = c;
    lp = lp * o.weight().to(logp.dtype()).detach().reshape(s);
  }
  Tensor smooth = -tg::sum(lp, {1}) * p.mask;
  if (o.reduction() == kMean) {
    Tensor denom = tg::sum(p.weight);
    // Both parts divide by the summed weights of the counted targets (their count without a
    // class weight), as PyTorch 1.13 does.
    return counted_mean(tg::sum(p.nll), denom) * (1.0 - eps) + counted_mean(tg::sum(smooth), denom) * (eps / double(c));
  }
  return reduce(p.nll * (1.0 - eps) + smooth * (eps / double(c)), o.reduction());
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape(input, target, "mse_loss");
  Tensor d = input - target;
  return reduce(d * d, r);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same_shape(input, target, "l1_loss");
  return reduce(tg::abs(input - target), r);
}

Tensor binary_cross_entropy(const Tensor& p, const Tensor& target, const Tensor& weight, Reduction r) {
  check_same_shape(p, target, "binary_cross_entropy");
  // PyTorch refuses probabilities outside [0, 1], NaN included (they would give a NaN loss).
  const std::vector<double> pv = p.detach().to_vector<double>();
  for (size_t i = 0; i < pv.size(); ++i)
    if (!(pv[i] >= 0.0 && pv[i] <= 1.0))
      throw Error(fmt::format("binary_cross_entropy: expected every input in [0, 1], got {} at flat index {} of {}", pv[i],
                              i, shape_str(p.shape())));
  // PyTorch clamps each log at -100 so p = 0 or 1 gives a finite loss. At 0 the log reads 1
  // and is replaced by -100, so the gradient there is the clamp's 0, not 0 / 0.
  auto clamped_log = [](const Tensor& q) {
    Tensor zero = tg::eq(q, 0.0);
    return tg::where(zero, -100.0, tg::clamp(tg::log(tg::where(zero, 1.0, q)), -100.0, std::numeric_limits<double>::infinity()));
  };
  Tensor lp = clamped_log(p), l1p = clamped_log(1.0 - p);
  Tensor loss = -(target * lp + (1.0 - target) * l1p);
  if (weight.defined()) loss = loss * weight;
  return reduce(loss, r);
}

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& target, const Tensor& weight,
                                        const Tensor& pos_weight, Reduction r) {
  check_same_shape(x, target, "binary_cross_entropy_with_logits");
  // (1 - y) x + (1 + (pw - 1) y) * softplus(-x), softplus(-x) = log1p(exp(-|x|)) + max(-x, 0):
  // stable for any x. -|x| is written as a where whose x >= 0 branch is taken at 0, so the
  // gradient at x = 0 is sigmoid(0) - y, as PyTorch's (abs' and relu' of 0 would drop the 1/2).
  Tensor zero = zero_like_scalar(x);
  Tensor nonneg = tg::ge(x, zero);
  Tensor softplus_neg = tg::log1p(tg::exp(tg::where(nonneg, -x, x))) + tg::where(nonneg, zero, -x);
  Tensor coef = pos_weight.defined() ? (pos_weight - 1.0) * target + 1.0 : Tensor();
  Tensor loss = (1.0 - target) * x + (coef.defined() ? coef * softplus_neg : softplus_neg);
  if (weight.defined()) loss = loss * weight;
  return reduce(loss, r);
}

}  // namespace tg::nn::functional
