// Module: registration, traversal with dotted names, modes, state dicts and forward hooks.
#include "module.hpp"

#include <atomic>

#include <fmt/format.h>

#include <cxxabi.h>

#include <atomic>
#include <cstdlib>
#include <set>

#include "../autograd/autograd.hpp"
#include "../autograd/tensor_impl.hpp"

namespace tg::nn {

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {}

Module::~Module() {
  for (auto& [n, c] : children_)
    if (c->parent_ == this) c->parent_ = nullptr;  // a child that outlives us becomes a root
}

Module::Module(Module&& other)
    : std::enable_shared_from_this<Module>(),
      type_name_(movable_type_name(other)),
      training_(other.training_),
      params_(std::move(other.params_)),
      buffers_(std::move(other.buffers_)),
      children_(std::move(other.children_)),
      hooks_(std::move(other.hooks_)) {
  for (auto& [n, c] : children_) c->parent_ = this;
}

// Runs before any member is moved, so a refused move leaves `other` whole.
std::string Module::movable_type_name(const Module& other) {
  if (other.parent_)
    throw Error(fmt::format("{}: cannot move a module that is registered in a parent; move it before registering "
                            "it, or share its handle",
                            other.describe()));
  return other.type_name_;
}

namespace {
// The module whose operator() is running on this thread. Its forward's after_forward leaves the
// hooks to operator(), which runs them once, on the final output (a subclass of a built-in
// module may change what the built-in forward returned).
thread_local const Module* current_call = nullptr;
struct EnterCall {
  const Module* prev = current_call;
  explicit EnterCall(const Module* m) { current_call = m; }
  ~EnterCall() { current_call = prev; }
};
// The module whose default forward or forward_list is running: the other default calling back
// into it means that neither is overridden.
thread_local const Module* in_default_forward = nullptr;
struct EnterDefault {
  const Module* prev = in_default_forward;
  explicit EnterDefault(const Module* m) { in_default_forward = m; }
  ~EnterDefault() { in_default_forward = prev; }
};
}  // namespace

Tensor Module::forward(const Tensor& x) {
  if (in_default_forward == this)
    fail("forward is not implemented (override forward(const Tensor&) or forward_list(const TensorList&))");
  TensorList y;
  {
    EnterDefault guard(this);
    y = forward_list({x});
  }
  if (y.size() != 1)
    fail(fmt::format("forward_list returned {} tensors where one was expected; call the module with a TensorList, "
                     "(*m)(tg::nn::TensorList{{...}}), to get them all",
                     y.size()));
  return y[0];
}

TensorList Module::forward_list(const TensorList& inputs) {
  if (in_default_forward == this)
    fail("forward is not implemented (override forward(const Tensor&) or forward_list(const TensorList&))");
  if (inputs.size() != 1)
    fail(fmt::format("takes one tensor (it implements forward(const Tensor&)), got a list of {}", inputs.size()));
  EnterDefault guard(this);
  return {forward(inputs[0])};
}

Tensor Module::operator()(const Tensor& x) {
  Tensor y;
  {
    EnterCall call(this);
    y = forward(x);
  }
  if (!hooks_.empty()) run_hooks({x}, {y});
  return y;
}

TensorList Module::operator()(const TensorList& inputs) {
  TensorList y;
  {
    EnterCall call(this);
    y = forward_list(inputs);
  }
  if (!hooks_.empty()) run_hooks(inputs, y);
  return y;
}

Tensor Module::after_forward(const Tensor& x, Tensor y) {
  if (current_call != this && !hooks_.empty()) run_hooks({x}, {y});
  return y;
}

TensorList Module::after_forward(const TensorList& inputs, TensorList outputs) {
  if (current_call != this && !hooks_.empty()) run_hooks(inputs, outputs);
  return outputs;
}

void Module::run_hooks(const TensorList& inputs, const TensorList& outputs) {
  // A copy: a hook may remove itself (or another) while they run.
  auto hooks = hooks_;
  for (auto& [id, hook] : hooks) hook(*this, inputs, outputs);
}

namespace {
void check_name(const std::string& name, const std::string& who) {
  if (name.empty() || name.find('.') != std::string::npos)
    throw Error(fmt::format("{}: invalid name '{}' (must be non-empty and contain no '.')", who, name));
}
template <typename V>
bool has(const V& v, const std::string& name) {
  for (auto& [n, t] : v)
    if (n == name) return true;
  return false;
}
}  // namespace

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_name(name, describe() + " register_parameter");
  if (has(params_, name) || has(buffers_, name) || has(children_, name))
    fail(fmt::format("register_parameter: the name '{}' is already taken", name));
  if (t.defined() && requires_grad) t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name(name, describe() + " register_buffer");
  if (has(params_, name) || has(buffers_, name) || has(children_, name))
    fail(fmt::format("register_buffer: the name '{}' is already taken", name));
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_name(name, describe() + " register_module");
  if (!m) fail(fmt::format("register_module: module '{}' is null", name));
  if (has(params_, name) || has(buffers_, name) || has(children_, name))
    fail(fmt::format("register_module: the name '{}' is already taken", name));
  m->parent_ = this;
  m->name_in_parent_ = name;
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, bool recurse, bool params, NamedTensors& out) const {
  for (auto& [n, t] : params ? params_ : buffers_)
    if (t.defined()) out.emplace_back(prefix + n, t);
  if (!recurse) return;
  for (auto& [n, c] : children_) c->collect(prefix + n + ".", true, params, out);
}

namespace {
// PyTorch lists a tensor shared by two modules (tied weights) once, under its first name.
NamedTensors unique_by_identity(NamedTensors all) {
  NamedTensors out;
  std::set<const void*> seen;
  for (auto& nt : all)
    if (seen.insert(nt.second.impl().get()).second) out.push_back(std::move(nt));
  return out;
}
}  // namespace

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", recurse, true, out);
  return unique_by_identity(std::move(out));
}
NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", recurse, false, out);
  return unique_by_identity(std::move(out));
}
std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}
std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}
std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& [n, c] : children_) out.push_back(c);
  return out;
}
std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const { return children_; }

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  std::shared_ptr<Module> self;
  try {
    self = shared_from_this();
  } catch (const std::bad_weak_ptr&) {
    self = std::shared_ptr<Module>(this, [](Module*) {});  // a module on the stack: non-owning
  }
  out.emplace_back("", self);
  std::set<const Module*> seen{this};
  for (auto& [n, c] : children_)
    for (auto& [sub, m] : c->named_modules())
      if (seen.insert(m.get()).second) out.emplace_back(sub.empty() ? n : n + "." + sub, m);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (Tensor& p : parameters()) {
    if (set_to_none || !p.grad().defined())
      p.mutable_grad() = Tensor();
    else
      p.mutable_grad().zero_();
  }
}

void Module::to(Dtype d) {
  if (!is_floating(d)) fail(fmt::format("to: expected a floating dtype, got {}", dtype_name(d)));
  // Swap storage and dtype inside each TensorImpl, so every handle the module and the user hold
  // sees the conversion.
  auto convert = [d](const Tensor& t) {
    if (!t.defined() || !is_floating(t.dtype()) || t.dtype() == d) return;
    Tensor c = t.detach().to(d);
    t.impl()->storage = c.impl()->storage;
    t.impl()->dtype = d;
    t.impl()->grad = Tensor();
  };
  for (auto& [n, t] : named_parameters()) convert(t);
  for (auto& [n, t] : named_buffers()) convert(t);
}

StateDict Module::state_dict() const {
  // Every name, tied tensors included (as PyTorch's state_dict).
  NamedTensors all;
  collect("", true, true, all);
  collect("", true, false, all);
  StateDict sd;
  for (auto& [n, t] : all) sd[n] = t.detach();
  return sd;
}

void Module::load_state_dict(const StateDict& sd, bool strict) {
  NamedTensors own;
  collect("", true, true, own);
  collect("", true, false, own);
  std::vector<std::string> missing, unexpected, wrong_shape;
  std::set<std::string> known;
  for (auto& [n, t] : own) {
    known.insert(n);
    auto it = sd.find(n);
    if (it == sd.end()) {
      missing.push_back(n);
    } else if (!it->second.defined() || it->second.shape() != t.shape()) {
      wrong_shape.push_back(fmt::format("{} (expected {}, got {})", n, shape_str(t.shape()),
                                        it->second.defined() ? shape_str(it->second.shape()) : "undefined"));
    }
  }
  for (auto& [n, t] : sd)
    if (!known.count(n)) unexpected.push_back(n);
  // Shape mismatches are always errors (a copy would be impossible); missing and unexpected
  // keys only when strict. Nothing is copied unless every check passes.
  if (!wrong_shape.empty() || (strict && (!missing.empty() || !unexpected.empty()))) {
    std::string msg = describe() + " load_state_dict:";
    if (strict && !missing.empty()) msg += fmt::format(" missing keys [{}];", fmt::join(missing, ", "));
    if (strict && !unexpected.empty()) msg += fmt::format(" unexpected keys [{}];", fmt::join(unexpected, ", "));
    if (!wrong_shape.empty()) msg += fmt::format(" wrong shapes [{}];", fmt::join(wrong_shape, ", "));
    msg.pop_back();
    throw Error(msg);
  }
  NoGradGuard no_grad;
  for (auto& [n, t] : own) {
    auto it = sd.find(n);
    if (it != sd.end()) t.copy_(it->second);
  }
}

namespace {
size_t next_hook_id() {
  static std::atomic<size_t> next{0};
  return ++next;
}
}  // namespace

size_t Module::register_forward_hook(ForwardHook fn) {
  if (!fn) fail("register_forward_hook: the hook is empty");
  return register_forward_hook(ForwardListHook(
      [fn = std::move(fn)](Module& m, const TensorList& inputs, const TensorList& outputs) {
        if (inputs.size() != 1 || outputs.size() != 1)
          m.fail(fmt::format("a forward hook of the one-tensor form (Module&, const Tensor&, const Tensor&) cannot "
                             "see {} inputs and {} outputs; register one taking (Module&, const TensorList&, const "
                             "TensorList&)",
                             inputs.size(), outputs.size()));
        fn(m, inputs[0], outputs[0]);
      }));
}
size_t Module::register_forward_hook(ForwardListHook fn) {
  if (!fn) fail("register_forward_hook: the hook is empty");
  const size_t id = next_hook_id();
  hooks_.emplace_back(id, std::move(fn));
  return id;
}
void Module::remove_forward_hook(size_t id) {
  for (auto it = hooks_.begin(); it != hooks_.end(); ++it)
    if (it->first == id) {
      hooks_.erase(it);
      return;
    }
}

std::string Module::path() const {
  std::string p;
  for (const Module* m = this; m && m->parent_; m = m->parent_)
    p = p.empty() ? m->name_in_parent_ : m->name_in_parent_ + "." + p;
  return p;
}

std::string Module::describe() const {
  std::string p = path();
  return p.empty() ? type_name_ : fmt::format("{} ({})", p, type_name_);
}

void Module::fail(const std::string& what) const { throw Error(describe() + ": " + what); }

namespace detail {
void bad_module_cast(const Module& owner, size_t i, const Module& got, const std::type_info& want) {
  int status = 0;
  char* name = abi::__cxa_demangle(want.name(), nullptr, nullptr, &status);
  std::string wanted = status == 0 && name ? name : want.name();
  std::free(name);
  throw Error(fmt::format("{}: module {} is a {}, not a {}", owner.describe(), i, got.type_name(), wanted));
}
}  // namespace detail

}  // namespace tg::nn
