// Delta-bar-delta: one fused, branch-free pass over the parameter, its gradient, the per-element
// rates and the gradient average.
#include "delta_bar_delta.hpp"

#include "detail.hpp"

namespace tg::optim {

void DeltaBarDeltaOptions::validate(const std::string& who) const {
  detail::check_non_negative(who, "lr", lr_);
  detail::check_non_negative(who, "kappa", kappa_);
  detail::check(phi_ >= 0 && phi_ <= 1, who, "phi", phi_, "in [0, 1]");
  detail::check(theta_ >= 0 && theta_ < 1, who, "theta", theta_, "in [0, 1)");
  detail::check_non_negative(who, "weight_decay", weight_decay_);
}

void DeltaBarDeltaOptions::visit(const Visitor& f) {
  f("lr", &lr_, 1);
  f("kappa", &kappa_, 1);
  f("phi", &phi_, 1);
  f("theta", &theta_, 1);
  f("weight_decay", &weight_decay_, 1);
}

DeltaBarDelta::DeltaBarDelta(std::vector<Tensor> params, const DeltaBarDeltaOptions& defaults)
    : DeltaBarDelta(std::vector<ParamGroup>{ParamGroup(std::move(params))}, defaults) {}
DeltaBarDelta::DeltaBarDelta(std::vector<ParamGroup> groups, const DeltaBarDeltaOptions& defaults)
    : Optimizer("DeltaBarDelta", defaults) {
  init(std::move(groups));
}

void DeltaBarDelta::update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) {
  const auto& o = static_cast<const DeltaBarDeltaOptions&>(options);
  Tensor& rates = state.buffer("rates", param, o.lr());
  Tensor& bar_delta = state.buffer("bar_delta", param);
  const int64_t n = param.numel();
  detail::dispatch_param(param, [&](auto z) {
    using T = decltype(z);
    T* __restrict p = param.data_ptr<T>();
    const T* __restrict g = grad.data_ptr<T>();
    T* __restrict r = rates.data_ptr<T>();
    T* __restrict bar = bar_delta.data_ptr<T>();
    const T wd = T(o.weight_decay()), kappa = T(o.kappa()), shrink = T(1 - o.phi());
    const T theta = T(o.theta()), one_m_theta = T(1 - o.theta());
    detail::with_flag(o.weight_decay() != 0, [&](auto decay) {
      detail::for_each_index(n, [=](int64_t i) {
        T d = g[i];
        if constexpr (decltype(decay)::value) d = d + wd * p[i];
        const T agree = bar[i] * d;
        const T ri = agree > 0 ? r[i] + kappa : agree < 0 ? r[i] * shrink : r[i];
        r[i] = ri;
        bar[i] = one_m_theta * d + theta * bar[i];
        p[i] = p[i] - ri * d;
      });
    });
  });
}

}  // namespace tg::optim
