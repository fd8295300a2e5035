// RMSprop: one fused pass over the parameter, its gradient and the running averages, in ATen's
// operation order (see adam.cpp).
#include "rmsprop.hpp"

#include <cmath>

#include "detail.hpp"

namespace tg::optim {

void RMSpropOptions::validate(const std::string& who) const {
  detail::check_non_negative(who, "lr", lr_);
  detail::check(alpha_ >= 0 && alpha_ <= 1, who, "alpha", alpha_, "in [0, 1]");
  detail::check_non_negative(who, "eps", eps_);
  detail::check_non_negative(who, "weight_decay", weight_decay_);
  detail::check_non_negative(who, "momentum", momentum_);
}

void RMSpropOptions::visit(const Visitor& f) {
  f("lr", &lr_, 1);
  f("alpha", &alpha_, 1);
  f("eps", &eps_, 1);
  f("weight_decay", &weight_decay_, 1);
  f("momentum", &momentum_, 1);
  detail::visit_flag(f, "centered", centered_);
  detail::visit_flag(f, "maximize", maximize_);
}

RMSprop::RMSprop(std::vector<Tensor> params, const RMSpropOptions& defaults)
    : RMSprop(std::vector<ParamGroup>{ParamGroup(std::move(params))}, defaults) {}
RMSprop::RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& defaults) : Optimizer("RMSprop", defaults) {
  init(std::move(groups));
}

void RMSprop::update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) {
  const auto& o = static_cast<const RMSpropOptions&>(options);
  const bool use_momentum = o.momentum() > 0;
  Tensor& square_avg = state.buffer("square_avg", param);
  Tensor buf = use_momentum ? state.buffer("momentum_buffer", param) : Tensor();
  Tensor grad_avg = o.centered() ? state.buffer("grad_avg", param) : Tensor();
  const int64_t n = param.numel();
  detail::dispatch_param(param, [&](auto z) {
    using T = decltype(z);
    T* __restrict p = param.data_ptr<T>();
    const T* __restrict g = grad.data_ptr<T>();
    T* __restrict sq = square_avg.data_ptr<T>();
    T* __restrict b = use_momentum ? buf.data_ptr<T>() : nullptr;
    T* __restrict ga = o.centered() ? grad_avg.data_ptr<T>() : nullptr;
    const T sign = o.maximize() ? T(-1) : T(1), wd = T(o.weight_decay()), alpha = T(o.alpha());
    const T one_m_alpha = T(1 - o.alpha()), eps = T(o.eps()), mom = T(o.momentum()), neg_lr = T(-o.lr());
    detail::with_flag(o.weight_decay() != 0, [&](auto decay) {
      detail::with_flag(o.centered(), [&](auto centered) {
        detail::with_flag(use_momentum, [&](auto momentum) {
          auto direction = [=](int64_t i) {
            T d = sign * g[i];
            if constexpr (decltype(decay)::value) d = d + wd * p[i];
            return d;
          };
          detail::sqrt_blocks<T>(
              n,
              [=](int64_t i) {  // the averages; returns the variance estimate
                const T d = direction(i);
                const T si = sq[i] * alpha + (one_m_alpha * d) * d;
                sq[i] = si;
                if constexpr (decltype(centered)::value) {
                  const T gi = ga[i] * alpha + one_m_alpha * d;
                  ga[i] = gi;
                  return si - gi * gi;
                }
                return si;
              },
              [=](int64_t i, T root) {  // the step (p is unchanged since `direction` first read it)
                const T d = direction(i), avg = root + eps;
                if constexpr (decltype(momentum)::value) {
                  const T bi = b[i] * mom + d / avg;
                  b[i] = bi;
                  p[i] = p[i] + neg_lr * bi;
                } else {
                  p[i] = p[i] + (neg_lr * d) / avg;
                }
              });
        });
      });
    });
  });
}

}  // namespace tg::optim
