// Adam and AdamW: one fused pass over the parameter, its gradient and the moment buffers. The
// arithmetic follows ATen's kernels operation by operation (add_ with alpha: a + alpha·b;
// addcmul_: a + (value·b)·c; addcdiv_: a + (value·b)/c), so float64 runs match PyTorch to
// rounding.
#include "adam.hpp"

#include <algorithm>
#include <cmath>

#include "detail.hpp"

namespace tg::optim {
namespace {

template <typename Options>
void validate_adam(const Options& o, const std::string& who) {
  detail::check_non_negative(who, "lr", o.lr());
  detail::check_non_negative(who, "eps", o.eps());
  const double b1 = std::get<0>(o.betas()), b2 = std::get<1>(o.betas());
  detail::check(b1 >= 0 && b1 < 1, who, "betas[0]", b1, "in [0, 1)");
  detail::check(b2 >= 0 && b2 < 1, who, "betas[1]", b2, "in [0, 1)");
  detail::check_non_negative(who, "weight_decay", o.weight_decay());
}

template <typename Options>
void visit_adam(Options& o, const OptimizerOptions::Visitor& f) {
  double lr = o.lr(), eps = o.eps(), wd = o.weight_decay();
  double betas[2] = {std::get<0>(o.betas()), std::get<1>(o.betas())};
  bool amsgrad = o.amsgrad(), maximize = o.maximize();
  f("lr", &lr, 1);
  f("betas", betas, 2);
  f("eps", &eps, 1);
  f("weight_decay", &wd, 1);
  detail::visit_flag(f, "amsgrad", amsgrad);
  detail::visit_flag(f, "maximize", maximize);
  o.lr(lr).betas({betas[0], betas[1]}).eps(eps).weight_decay(wd).amsgrad(amsgrad).maximize(maximize);
}

// decoupled: AdamW (p *= 1 − lr·wd) instead of Adam (d += wd·p).
template <typename Options>
void adam_update(Tensor& param, const Tensor& grad, ParamState& state, const Options& o, bool decoupled) {
  Tensor& exp_avg = state.buffer("exp_avg", param);
  Tensor& exp_avg_sq = state.buffer("exp_avg_sq", param);
  Tensor max_sq = o.amsgrad() ? state.buffer("max_exp_avg_sq", param) : Tensor();
  const double b1 = std::get<0>(o.betas()), b2 = std::get<1>(o.betas());
  const double t = double(state.step);
  const double step_size = o.lr() / (1 - std::pow(b1, t));
  const double bc2_sqrt = std::sqrt(1 - std::pow(b2, t));
  const int64_t n = param.numel();
  detail::dispatch_param(param, [&](auto z) {
    using T = decltype(z);
    T* __restrict p = param.data_ptr<T>();
    const T* __restrict g = grad.data_ptr<T>();
    T* __restrict m = exp_avg.data_ptr<T>();
    T* __restrict v = exp_avg_sq.data_ptr<T>();
    T* __restrict vmax = o.amsgrad() ? max_sq.data_ptr<T>() : nullptr;
    const T sign = o.maximize() ? T(-1) : T(1), wd = T(o.weight_decay()), shrink = T(1 - o.lr() * o.weight_decay());
    const T beta1 = T(b1), beta2 = T(b2), one_m_b1 = T(1 - b1), one_m_b2 = T(1 - b2);
    const T c2 = T(bc2_sqrt), eps = T(o.eps()), neg_step = T(-step_size);
    detail::with_flag(decoupled, [&](auto decoupled_decay) {
      detail::with_flag(!decoupled && o.weight_decay() != 0, [&](auto coupled_decay) {
        detail::with_flag(o.amsgrad(), [&](auto amsgrad) {
          detail::sqrt_blocks<T>(
              n,
              [=](int64_t i) {  // the moments; returns v̂
                T d = sign * g[i];
                if constexpr (decltype(coupled_decay)::value) d = d + wd * p[i];
                const T mi = m[i] * beta1 + one_m_b1 * d;
                const T vi = v[i] * beta2 + (one_m_b2 * d) * d;
                m[i] = mi;
                v[i] = vi;
                if constexpr (decltype(amsgrad)::value) {
                  const T vhat = std::max(vmax[i], vi);
                  vmax[i] = vhat;
                  return vhat;
                }
                return vi;
              },
              [=](int64_t i, T root) {  // the step, with root = √v̂
                T pi = p[i];
                if constexpr (decltype(decoupled_decay)::value) pi = pi * shrink;
                p[i] = pi + (neg_step * m[i]) / (root / c2 + eps);
              });
        });
      });
    });
  });
}

}  // namespace

void AdamOptions::validate(const std::string& who) const { validate_adam(*this, who); }
void AdamOptions::visit(const Visitor& f) { visit_adam(*this, f); }
void AdamWOptions::validate(const std::string& who) const { validate_adam(*this, who); }
void AdamWOptions::visit(const Visitor& f) { visit_adam(*this, f); }

Adam::Adam(std::vector<Tensor> params, const AdamOptions& defaults)
    : Adam(std::vector<ParamGroup>{ParamGroup(std::move(params))}, defaults) {}
Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults) : Optimizer("Adam", defaults) {
  init(std::move(groups));
}
void Adam::update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) {
  adam_update(param, grad, state, static_cast<const AdamOptions&>(options), false);
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& defaults)
    : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, defaults) {}
AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults) : Optimizer("AdamW", defaults) {
  init(std::move(groups));
}
void AdamW::update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) {
  adam_update(param, grad, state, static_cast<const AdamWOptions&>(options), true);
}

}  // namespace tg::optim
