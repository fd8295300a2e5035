// Gradient clipping over raw gradient data: one pass to measure, one to scale.
#include "clip.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "detail.hpp"

namespace tg::nn::utils {
namespace {

// The gradients to clip (defined, floating), checked.
std::vector<Tensor> grads_of(const std::vector<Tensor>& parameters, const char* who) {
  std::vector<Tensor> grads;
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (!parameters[i].defined()) throw Error(fmt::format("{}: parameter {} is undefined", who, i));
    const Tensor& g = parameters[i].grad();
    if (!g.defined()) continue;
    if (!is_floating(g.dtype()))
      throw Error(
          fmt::format("{}: the gradient of parameter {} is {}, expected floating", who, i, dtype_name(g.dtype())));
    grads.push_back(g);
  }
  return grads;
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  const char* who = "clip_grad_norm_";
  if (!(norm_type > 0)) throw Error(fmt::format("{}: invalid norm_type {} (expected > 0 or INFINITY)", who, norm_type));
  if (!(max_norm >= 0)) throw Error(fmt::format("{}: invalid max_norm {} (expected >= 0)", who, max_norm));
  std::vector<Tensor> grads = grads_of(parameters, who);
  if (grads.empty()) return 0.0;
  const bool inf_norm = std::isinf(norm_type);
  double acc = 0;  // max |g| or sum |g|^p, in double whatever the gradients' dtype
  for (const Tensor& g : grads) {
    const int64_t n = g.numel();
    optim::detail::dispatch_param(g, [&](auto z) {
      using T = decltype(z);
      const T* p = g.data_ptr<T>();
      if (inf_norm) {
        double m = 0;
        bool nan = false;
        for (int64_t i = 0; i < n; ++i) {
          const double a = std::abs(double(p[i]));
          m = a > m ? a : m;
          nan |= a != a;
        }
        if (nan || std::isnan(acc))  // NaN propagates, as in PyTorch
          acc = std::numeric_limits<double>::quiet_NaN();
        else
          acc = std::max(acc, m);
      } else if (norm_type == 2) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
        acc += s;
      } else if (norm_type == 1) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += std::abs(double(p[i]));
        acc += s;
      } else {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += std::pow(std::abs(double(p[i])), norm_type);
        acc += s;
      }
    });
  }
  const double total = inf_norm         ? acc
                       : norm_type == 2 ? std::sqrt(acc)
                       : norm_type == 1 ? acc
                                        : std::pow(acc, 1 / norm_type);
  if (error_if_nonfinite && !std::isfinite(total))
    throw Error(
        fmt::format("{}: the total norm of order {} of the gradients is {}, so they cannot be clipped "
                    "(pass error_if_nonfinite = false to scale by it anyway)",
                    who, norm_type, total));
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1 || std::isnan(coef))
    for (Tensor& g : grads) g.mul_(coef);
  return total;
}

double clip_grad_norm_(const Tensor& parameter, double max_norm, double norm_type, bool error_if_nonfinite) {
  return clip_grad_norm_(std::vector<Tensor>{parameter}, max_norm, norm_type, error_if_nonfinite);
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  const char* who = "clip_grad_value_";
  if (!(clip_value >= 0)) throw Error(fmt::format("{}: invalid clip_value {} (expected >= 0)", who, clip_value));
  for (Tensor& g : grads_of(parameters, who)) {
    const int64_t n = g.numel();
    optim::detail::dispatch_param(g, [&](auto z) {
      using T = decltype(z);
      T* p = g.data_ptr<T>();
      const T hi = T(clip_value), lo = -hi;
      for (int64_t i = 0; i < n; ++i) p[i] = std::min(std::max(p[i], lo), hi);
    });
  }
}

void clip_grad_value_(const Tensor& parameter, double clip_value) {
  clip_grad_value_(std::vector<Tensor>{parameter}, clip_value);
}

}  // namespace tg::nn::utils
