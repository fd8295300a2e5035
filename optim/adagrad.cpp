// Adagrad: one fused pass over the parameter, its gradient and the squared-gradient sum, in
// ATen's operation order (see adam.cpp).
#include "adagrad.hpp"

#include <cmath>

#include "detail.hpp"

namespace tg::optim {

void AdagradOptions::validate(const std::string& who) const {
  detail::check_non_negative(who, "lr", lr_);
  detail::check_non_negative(who, "lr_decay", lr_decay_);
  detail::check_non_negative(who, "weight_decay", weight_decay_);
  detail::check_non_negative(who, "initial_accumulator_value", initial_accumulator_value_);
  detail::check_non_negative(who, "eps", eps_);
}

void AdagradOptions::visit(const Visitor& f) {
  f("lr", &lr_, 1);
  f("lr_decay", &lr_decay_, 1);
  f("weight_decay", &weight_decay_, 1);
  f("initial_accumulator_value", &initial_accumulator_value_, 1);
  f("eps", &eps_, 1);
  detail::visit_flag(f, "maximize", maximize_);
}

Adagrad::Adagrad(std::vector<Tensor> params, const AdagradOptions& defaults)
    : Adagrad(std::vector<ParamGroup>{ParamGroup(std::move(params))}, defaults) {}
Adagrad::Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& defaults) : Optimizer("Adagrad", defaults) {
  init(std::move(groups));
}

void Adagrad::update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) {
  const auto& o = static_cast<const AdagradOptions&>(options);
  Tensor& sum = state.buffer("sum", param, o.initial_accumulator_value());
  const double clr = o.lr() / (1 + double(state.step - 1) * o.lr_decay());
  const int64_t n = param.numel();
  detail::dispatch_param(param, [&](auto z) {
    using T = decltype(z);
    T* __restrict p = param.data_ptr<T>();
    const T* __restrict g = grad.data_ptr<T>();
    T* __restrict s = sum.data_ptr<T>();
    const T sign = o.maximize() ? T(-1) : T(1), wd = T(o.weight_decay()), eps = T(o.eps()), neg_clr = T(-clr);
    detail::with_flag(o.weight_decay() != 0, [&](auto decay) {
      auto direction = [=](int64_t i) {
        T d = sign * g[i];
        if constexpr (decltype(decay)::value) d = d + wd * p[i];
        return d;
      };
      detail::sqrt_blocks<T>(
          n,
          [=](int64_t i) {
            const T d = direction(i);
            const T si = s[i] + d * d;
            s[i] = si;
            return si;
          },
          [=](int64_t i, T root) { p[i] = p[i] + (neg_clr * direction(i)) / (root + eps); });
    });
  });
}

}  // namespace tg::optim
