// SGD: one fused pass over the parameter, its gradient and the momentum buffer.
#include "sgd.hpp"

#include "detail.hpp"

namespace tg::optim {

void SGDOptions::validate(const std::string& who) const {
  detail::check_non_negative(who, "lr", lr_);
  detail::check_non_negative(who, "momentum", momentum_);
  detail::check(std::isfinite(dampening_), who, "dampening", dampening_, "a finite value");
  detail::check_non_negative(who, "weight_decay", weight_decay_);
  if (nesterov_) {
    detail::check(momentum_ > 0, who, "momentum", momentum_, "> 0 with nesterov=true");
    detail::check(dampening_ == 0, who, "dampening", dampening_, "0 with nesterov=true");
  }
}

void SGDOptions::visit(const Visitor& f) {
  f("lr", &lr_, 1);
  f("momentum", &momentum_, 1);
  f("dampening", &dampening_, 1);
  f("weight_decay", &weight_decay_, 1);
  detail::visit_flag(f, "nesterov", nesterov_);
  detail::visit_flag(f, "maximize", maximize_);
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& defaults)
    : SGD(std::vector<ParamGroup>{ParamGroup(std::move(params))}, defaults) {}
SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults) : Optimizer("SGD", defaults) {
  init(std::move(groups));
}

void SGD::update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) {
  const auto& o = static_cast<const SGDOptions&>(options);
  const bool use_momentum = o.momentum() != 0;
  const bool first = use_momentum && state.buffers.count("momentum_buffer") == 0;
  Tensor buf = use_momentum ? state.buffer("momentum_buffer", param) : Tensor();
  const int64_t n = param.numel();
  detail::dispatch_param(param, [&](auto z) {
    using T = decltype(z);
    T* __restrict p = param.data_ptr<T>();
    const T* __restrict g = grad.data_ptr<T>();
    T* __restrict b = use_momentum ? buf.data_ptr<T>() : nullptr;
    const T sign = o.maximize() ? T(-1) : T(1), wd = T(o.weight_decay()), lr = T(o.lr());
    const T mom = T(o.momentum()), keep = T(1 - o.dampening());
    detail::with_flag(o.weight_decay() != 0, [&](auto decay) {
      auto direction = [=](int64_t i) {
        T d = sign * g[i];
        if constexpr (decltype(decay)::value) d += wd * p[i];
        return d;
      };
      if (!use_momentum) {
        detail::for_each_index(n, [=](int64_t i) { p[i] -= lr * direction(i); });
      } else if (first) {  // PyTorch: the buffer starts as the first direction, undamped
        detail::with_flag(o.nesterov(), [&](auto nesterov) {
          detail::for_each_index(n, [=](int64_t i) {
            T d = direction(i);
            b[i] = d;
            if constexpr (decltype(nesterov)::value) d += mom * d;
            p[i] -= lr * d;
          });
        });
      } else {
        detail::with_flag(o.nesterov(), [&](auto nesterov) {
          detail::for_each_index(n, [=](int64_t i) {
            T d = direction(i);
            T bi = mom * b[i] + keep * d;
            b[i] = bi;
            if constexpr (decltype(nesterov)::value)
              d += mom * bi;
            else
              d = bi;
            p[i] -= lr * d;
          });
        });
      }
    });
  });
}

}  // namespace tg::optim
