// The optimizer base: groups, zero_grad, the step loop and the flat state dict.
#include "optimizer.hpp"

#include <fmt/format.h>

#include <unordered_set>

#include "../autograd/autograd.hpp"

namespace tg::optim {

// ---- ParamGroup ----
ParamGroup::ParamGroup(std::vector<Tensor> params) : params_(std::move(params)) {}
ParamGroup::ParamGroup(std::vector<Tensor> params, const OptimizerOptions& options)
    : params_(std::move(params)), options_(options.clone()) {}
ParamGroup::ParamGroup(const ParamGroup& o)
    : params_(o.params_), options_(o.options_ ? o.options_->clone() : nullptr) {}
ParamGroup& ParamGroup::operator=(const ParamGroup& o) {
  if (this != &o) {
    params_ = o.params_;
    options_ = o.options_ ? o.options_->clone() : nullptr;
  }
  return *this;
}
OptimizerOptions& ParamGroup::options() {
  if (!options_) throw Error("ParamGroup: the group has no options of its own (it takes the optimizer's defaults)");
  return *options_;
}
const OptimizerOptions& ParamGroup::options() const { return const_cast<ParamGroup*>(this)->options(); }

// ---- Optimizer ----
Optimizer::Optimizer(std::string name, const OptimizerOptions& defaults)
    : name_(std::move(name)), defaults_(defaults.clone()) {}

void Optimizer::init(std::vector<ParamGroup> groups) {
  defaults_->validate(name_);
  size_t count = 0;
  for (const ParamGroup& g : groups) count += g.params().size();
  if (count == 0) throw Error(fmt::format("{}: got an empty parameter list", name_));
  for (ParamGroup& g : groups) add_param_group(g);
}

void Optimizer::add_param_group(const ParamGroup& group) {
  const size_t index = param_groups_.size();
  ParamGroup g(group);
  if (!g.has_options()) {
    g.set_options(defaults_->clone());
  } else if (!accepts(g.options())) {
    throw Error(fmt::format("{}: parameter group {} has the options of another optimizer", name_, index));
  }
  g.options().validate(fmt::format("{} (parameter group {})", name_, index));

  std::unordered_set<const TensorImpl*> seen;
  for (const ParamGroup& other : param_groups_)
    for (const Tensor& p : other.params()) seen.insert(p.impl().get());
  for (size_t i = 0; i < g.params().size(); ++i) {
    const Tensor& p = g.params()[i];
    std::string where = fmt::format("{}: parameter {} of group {}", name_, i, index);
    if (!p.defined()) throw Error(where + " is undefined");
    if (!is_floating(p.dtype()))
      throw Error(fmt::format("{} is {}, expected a floating tensor", where, dtype_name(p.dtype())));
    if (!p.is_leaf())
      throw Error(
          fmt::format("{} is not a leaf (made by '{}'); can't optimize a non-leaf tensor", where, p.grad_fn_name()));
    if (!seen.insert(p.impl().get()).second)
      throw Error(where + " appears more than once (in this group or an earlier one)");
  }
  param_groups_.push_back(std::move(g));
}

const ParamState* Optimizer::state(const Tensor& param) const {
  if (!param.defined()) return nullptr;
  auto it = state_.find(param.impl().get());
  return it == state_.end() ? nullptr : &it->second;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (ParamGroup& group : param_groups_) {
    for (Tensor& p : group.params()) {
      Tensor& g = p.mutable_grad();
      if (!g.defined()) continue;
      if (set_to_none) {
        g = Tensor();
      } else {
        if (g.grad_fn()) g = g.detach();  // a create_graph gradient: drop its graph, as PyTorch does
        g.zero_();
      }
    }
  }
}

Tensor Optimizer::step(const LossClosure& closure) {
  Tensor loss;
  if (closure) {
    GradModeGuard on(true);
    loss = closure();
  }
  NoGradGuard guard;
  for (size_t gi = 0; gi < param_groups_.size(); ++gi) {
    ParamGroup& group = param_groups_[gi];
    const OptimizerOptions& options = group.options();
    for (size_t i = 0; i < group.params().size(); ++i) {
      Tensor& p = group.params()[i];
      const Tensor& g = p.grad();
      if (!g.defined()) continue;
      if (g.shape() != p.shape() || g.dtype() != p.dtype())
        throw Error(fmt::format("{}.step: parameter {} of group {} is {} {} but its gradient is {} {}", name_, i, gi,
                                dtype_name(p.dtype()), shape_str(p.shape()), dtype_name(g.dtype()),
                                shape_str(g.shape())));
      ParamState& st = state_[p.impl().get()];
      ++st.step;
      update(p, g, st, options);
    }
  }
  return loss;
}

Tensor& ParamState::buffer(const char* name, const Tensor& param, double init) {
  auto it = buffers.find(name);
  if (it == buffers.end()) it = buffers.emplace(name, tg::full(param.shape(), init, param.dtype())).first;
  return it->second;
}

// ---- state dict ----
namespace {

Tensor values_tensor(const double* v, size_t n) {
  if (n == 1) return tg::scalar_tensor(v[0], kFloat64);
  return tg::tensor(std::vector<double>(v, v + n), {int64_t(n)}, kFloat64);
}

// "12.rest" -> 12 and "rest"; throws naming the whole key otherwise.
std::pair<int64_t, std::string> split_index(const std::string& key, size_t start, const std::string& who) {
  size_t dot = key.find('.', start);
  std::string digits = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
  bool ok = !digits.empty() && digits.size() < 12 && dot != std::string::npos && dot + 1 < key.size();
  for (char c : digits) ok = ok && c >= '0' && c <= '9';
  if (!ok) throw Error(fmt::format("{}: malformed state-dict key '{}'", who, key));
  return {std::stoll(digits), key.substr(dot + 1)};
}

}  // namespace

StateDict Optimizer::state_dict() const {
  NoGradGuard guard;
  StateDict sd;
  int64_t index = 0;
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    const ParamGroup& group = param_groups_[g];
    const std::string prefix = fmt::format("param_groups.{}.", g);
    std::vector<double> ids;
    for (const Tensor& p : group.params()) {
      ids.push_back(double(index));
      auto it = state_.find(p.impl().get());
      if (it != state_.end()) {
        const std::string sp = fmt::format("state.{}.", index);
        sd[sp + "step"] = tg::scalar_tensor(double(it->second.step), kInt64);
        for (const auto& [name, buf] : it->second.buffers) sd[sp + name] = buf.clone();
      }
      ++index;
    }
    sd[prefix + "params"] = tg::tensor(ids, {int64_t(ids.size())}, kInt64);
    std::unique_ptr<OptimizerOptions> copy = group.options().clone();
    copy->visit([&](const char* name, double* v, size_t n) { sd[prefix + name] = values_tensor(v, n); });
  }
  return sd;
}

void Optimizer::load_state_dict(const StateDict& sd) {
  NoGradGuard guard;
  const std::string who = name_ + ".load_state_dict";
  // Sort the keys into per-group option maps and per-saved-index state maps.
  std::map<int64_t, std::map<std::string, Tensor>> groups, states;
  for (const auto& [key, value] : sd) {
    if (!value.defined()) throw Error(fmt::format("{}: key '{}' holds an undefined tensor", who, key));
    if (key.rfind("param_groups.", 0) == 0) {
      auto [g, rest] = split_index(key, 13, who);
      groups[g][rest] = value;
    } else if (key.rfind("state.", 0) == 0) {
      auto [i, rest] = split_index(key, 6, who);
      states[i][rest] = value;
    } else {
      throw Error(fmt::format("{}: unexpected key '{}' (expected param_groups.* or state.*)", who, key));
    }
  }
  if (groups.size() != param_groups_.size() ||
      (!groups.empty() && groups.rbegin()->first + 1 != int64_t(groups.size())))
    throw Error(fmt::format("{}: the state dict has {} parameter groups, the optimizer has {}", who, groups.size(),
                            param_groups_.size()));

  // Options of each group, and the map from saved parameter ids to our parameters.
  std::vector<std::unique_ptr<OptimizerOptions>> options;
  std::map<int64_t, Tensor> by_id;
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    std::map<std::string, Tensor>& saved = groups[int64_t(g)];
    const std::vector<Tensor>& params = param_groups_[g].params();
    auto it = saved.find("params");
    if (it == saved.end()) throw Error(fmt::format("{}: missing key 'param_groups.{}.params'", who, g));
    if (it->second.dim() != 1 || it->second.numel() != int64_t(params.size()))
      throw Error(fmt::format("{}: parameter group {} has {} parameters in the state dict (shape {}), {} here", who, g,
                              it->second.numel(), shape_str(it->second.shape()), params.size()));
    std::vector<int64_t> ids = it->second.to_vector<int64_t>();
    for (size_t k = 0; k < ids.size(); ++k)
      if (!by_id.emplace(ids[k], params[k]).second)
        throw Error(fmt::format("{}: parameter id {} appears twice in param_groups.*.params", who, ids[k]));
    saved.erase(it);

    std::unique_ptr<OptimizerOptions> o = param_groups_[g].options().clone();
    o->visit([&](const char* name, double* v, size_t n) {
      const std::string key = fmt::format("param_groups.{}.{}", g, name);
      auto f = saved.find(name);
      if (f == saved.end()) throw Error(fmt::format("{}: missing key '{}'", who, key));
      if (f->second.numel() != int64_t(n))
        throw Error(fmt::format("{}: key '{}' has {} values, expected {}", who, key, f->second.numel(), n));
      std::vector<double> got = f->second.to_vector<double>();
      std::copy(got.begin(), got.end(), v);
      saved.erase(f);
    });
    if (!saved.empty())
      throw Error(fmt::format("{}: unexpected key 'param_groups.{}.{}' for {}", who, g, saved.begin()->first, name_));
    o->validate(fmt::format("{} (parameter group {})", who, g));
    options.push_back(std::move(o));
  }

  // Per-parameter state, copied into tensors of the parameter's dtype.
  std::unordered_map<const TensorImpl*, ParamState> state;
  for (const auto& [id, entries] : states) {
    auto p = by_id.find(id);
    if (p == by_id.end())
      throw Error(fmt::format("{}: state.{}.* refers to a parameter id that no group lists", who, id));
    const Tensor& param = p->second;
    ParamState st;
    bool has_step = false;
    for (const auto& [name, value] : entries) {
      const std::string key = fmt::format("state.{}.{}", id, name);
      if (name == "step") {
        if (value.numel() != 1)
          throw Error(
              fmt::format("{}: key '{}' should hold one value, got shape {}", who, key, shape_str(value.shape())));
        double s = value.item<double>();
        if (!(s >= 0) || s != double(int64_t(s)))
          throw Error(fmt::format("{}: key '{}' should be a non-negative integer, got {}", who, key, s));
        st.step = int64_t(s);
        has_step = true;
      } else {
        if (value.shape() != param.shape())
          throw Error(fmt::format("{}: key '{}' has shape {}, the parameter has shape {}", who, key,
                                  shape_str(value.shape()), shape_str(param.shape())));
        Tensor copy = tg::empty(param.shape(), param.dtype());
        copy.copy_(value);
        st.buffers.emplace(name, copy);
      }
    }
    if (!has_step) throw Error(fmt::format("{}: missing key 'state.{}.step'", who, id));
    state.emplace(param.impl().get(), std::move(st));
  }

  for (size_t g = 0; g < param_groups_.size(); ++g) param_groups_[g].set_options(std::move(options[g]));
  state_ = std::move(state);
}

}  // namespace tg::optim
