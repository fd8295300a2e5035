// The tape and the backward engine: recording nodes, walking them in reverse topological order
// (iteratively, so a graph of any depth fits on the stack), accumulating into leaves, freeing
// saved tensors as soon as a node has run.
#include <fmt/format.h>

#include <atomic>
#include <cmath>

#include "autograd.hpp"
#include "node.hpp"
#include "pool.hpp"

namespace tg {

namespace {
thread_local bool grad_mode = true;
thread_local bool anomaly_mode = false;
thread_local bool in_targeted_pass = false;  // the innermost running pass is autograd::grad's
// autograd::queue_callback's list, owned by the outermost pass running on this thread (null when none is).
thread_local std::vector<std::function<void()>>* end_callbacks = nullptr;
}  // namespace

bool is_grad_enabled() { return grad_mode; }
NoGradGuard::NoGradGuard() : prev_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = prev_; }
GradModeGuard::GradModeGuard(bool enabled) : prev_(grad_mode) { grad_mode = enabled; }
GradModeGuard::~GradModeGuard() { grad_mode = prev_; }
DetectAnomalyGuard::DetectAnomalyGuard() : prev_(anomaly_mode) { anomaly_mode = true; }
DetectAnomalyGuard::~DetectAnomalyGuard() { anomaly_mode = prev_; }
bool is_anomaly_enabled() { return anomaly_mode; }

// Destroying the last handle of a long chain would recurse once per node; instead edges are
// moved to a pending list that the outermost destructor drains in a loop.
Node::~Node() {
  thread_local bool draining = false;
  thread_local std::vector<std::shared_ptr<Node>> pending;
  for (auto& e : next)
    if (e) pending.push_back(std::move(e));
  if (draining) return;
  draining = true;
  vjp = nullptr;  // saved tensors go first; their grad_fns are still held by the edges
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    n.reset();
  }
  draining = false;
}

namespace detail {
bool has_non_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return false;
  return dispatch(t.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* p = typed<T>(t);
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(double(p[i]))) return true;
    return false;
  });
}
AnomalyCheckOff::AnomalyCheckOff() : prev_(anomaly_mode) { anomaly_mode = false; }
AnomalyCheckOff::~AnomalyCheckOff() { anomaly_mode = prev_; }
}  // namespace detail

namespace {
using detail::has_non_finite;

Tensor make_record(std::string name, Tensor out, const Tensor* inputs, size_t n_inputs, VjpFn vjp,
                   bool keep_output) {
  if (anomaly_mode && has_non_finite(out))
    throw Error(fmt::format("anomaly: the forward of '{}' produced NaN or Inf (output shape {})", name,
                            shape_str(out.shape())));
  if (!grad_mode) return out;
  bool any = false;
  for (size_t i = 0; i < n_inputs; ++i) any = any || inputs[i].requires_grad();
  if (!any) return out;
  auto node = detail::make_pooled<Node>();
  node->name = std::move(name);
  node->next.reserve(n_inputs);
  for (size_t i = 0; i < n_inputs; ++i) node->next.push_back(detail::gradient_edge(inputs[i]));
  node->vjp = std::move(vjp);
  const Shape& shape = out.shape();
  node->out_ndim = int(shape.size());
  for (size_t i = 0; i < shape.size() && i < size_t(Node::kMetaDims); ++i) node->out_dims[i] = shape[i];
  node->meta_dtype = out.dtype();
  if (keep_output) {
    node->out_storage = out.impl()->storage;
    node->out_shape = out.shape();
    node->out_dtype = out.dtype();
  }
  out.impl()->grad_fn = std::move(node);
  return out;
}

}  // namespace

namespace detail {

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined()) return nullptr;
  TensorImpl* impl = t.impl().get();
  if (impl->grad_fn) return impl->grad_fn;
  if (!impl->requires_grad) return nullptr;
  if (!impl->grad_accumulator) {
    auto acc = detail::make_pooled<Node>();
    acc->name = "AccumulateGrad";
    acc->accumulator = true;
    acc->leaf = t.impl();
    impl->grad_accumulator = std::move(acc);
  }
  return impl->grad_accumulator;
}

bool in_targeted_backward() { return in_targeted_pass; }

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor out, std::initializer_list<Tensor> inputs, VjpFn vjp, bool keep_output) {
  return make_record(name, std::move(out), inputs.begin(), inputs.size(), std::move(vjp), keep_output);
}
Tensor record(std::string name, Tensor out, const std::vector<Tensor>& inputs, VjpFn vjp, bool keep_output) {
  return make_record(std::move(name), std::move(out), inputs.data(), inputs.size(), std::move(vjp), keep_output);
}

}  // namespace detail

namespace {

// Sums a gradient into a node's buffer. In place only when the buffer is ours alone (a VJP may
// return the same tensor for two inputs, as add does) and no graph is being built.
Tensor accumulate(Tensor buf, const Tensor& g) {
  if (!buf.defined()) return g;
  if (!is_grad_enabled() && buf.impl().use_count() == 1 && buf.impl()->storage.use_count() == 1 &&
      buf.shape() == g.shape() && buf.dtype() == g.dtype()) {
    buf.add_(g);
    return buf;
  }
  return buf + g;
}

Tensor apply_hooks(const Node& n, Tensor g) {
  for (const auto& [id, hook] : n.hooks) {
    Tensor r = hook(g);
    if (r.defined()) {
      if (r.shape() != g.shape())
        throw Error(fmt::format("hook: expected a gradient of shape {}, the hook returned {}", shape_str(g.shape()),
                                shape_str(r.shape())));
      g = r;
    }
  }
  return g;
}

// True when nobody but the engine holds g: neither another handle (a sibling's gradient, the
// caller's seed, a tensor a hook returned) nor another tensor sharing its storage.
bool exclusively_owned(const Tensor& g) { return g.impl().use_count() == 1 && g.impl()->storage.use_count() == 1; }

// Stores g as a leaf's .grad: steals g's storage when nobody else holds it, copies otherwise,
// so two leaves never share a gradient buffer that an optimizer will update in place.
void accumulate_into(Tensor& slot, const Tensor& g, bool create_graph) {
  if (create_graph) {
    slot = slot.defined() ? slot + g : exclusively_owned(g) ? g : g.clone();
    return;
  }
  if (!slot.defined()) {
    if (exclusively_owned(g))
      slot = detail::make_alias(g.impl()->storage, g.shape(), g.dtype());
    else
      slot = g.detach().clone();
  } else {
    slot.add_(g);
  }
}

struct Engine {
  bool retain_graph;
  bool create_graph;
  const std::vector<std::shared_ptr<Node>>* targets;  // autograd::grad: capture here, don't accumulate
  std::vector<Tensor>* captured;
  std::vector<Node*> all;
  // The scratch of nodes that an enclosing pass owns, set aside while this pass (run from inside
  // one of its VJPs) uses them; reset() gives it back.
  struct SetAside {
    Node* n;
    const void* pass;
    int dependencies;
    bool reaches;
    Tensor grad_buffer;
  };
  std::vector<SetAside> set_aside;

  // Makes n part of this pass; false when it already is.
  bool claim(Node* n) {
    if (n->pass == this) return false;
    if (n->pass) {
      set_aside.push_back({n, n->pass, n->dependencies, n->reaches, std::move(n->grad_buffer)});
      n->dependencies = 0;
      n->reaches = false;
      n->grad_buffer = Tensor();
    }
    n->pass = this;
    all.push_back(n);
    return true;
  }

  // Marks every node reachable from the roots, counts dependencies, and works out which
  // nodes lead to a target (only those run).
  void discover(const std::vector<Node*>& roots) {
    struct Frame {
      Node* n;
      size_t edge;
    };
    std::vector<Frame> stack;
    for (Node* r : roots) {
      if (!claim(r)) continue;
      stack.push_back({r, 0});
      while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.edge < f.n->next.size()) {
          Node* c = f.n->next[f.edge++].get();
          if (!c) continue;
          const bool fresh = claim(c);
          c->dependencies++;
          if (fresh) stack.push_back({c, 0});
          continue;
        }
        Node* n = f.n;
        stack.pop_back();
        n->reaches = is_target(n);
        for (auto& c : n->next)
          if (c && c->reaches) n->reaches = true;
      }
    }
  }

  bool is_target(Node* n) const {
    if (!targets) return n->accumulator;
    for (auto& t : *targets)
      if (t.get() == n) return true;
    return false;
  }

  void run(const std::vector<Node*>& roots) {
    std::vector<Node*> ready;
    for (Node* r : roots)
      if (r->dependencies == 0) ready.push_back(r);
    while (!ready.empty()) {
      Node* n = ready.back();
      ready.pop_back();
      Tensor g = std::move(n->grad_buffer);
      n->grad_buffer = Tensor();
      std::vector<Tensor> grads;
      if (g.defined() && n->reaches) {
        g = apply_hooks(*n, g);
        if (auto kept = n->retained.lock()) accumulate_into(kept->grad, create_graph ? g : g.detach(), create_graph);
        if (targets) {
          for (size_t i = 0; i < targets->size(); ++i)
            if ((*targets)[i].get() == n) (*captured)[i] = g;
        } else if (n->accumulator) {
          if (auto leaf = n->leaf.lock()) accumulate_into(leaf->grad, g, create_graph);
        }
        bool child_reaches = false;
        for (auto& c : n->next) child_reaches = child_reaches || (c && c->reaches);
        if (child_reaches) grads = call_vjp(n, g);
      }
      for (size_t i = 0; i < n->next.size(); ++i) {
        Node* c = n->next[i].get();
        if (!c) continue;
        if (i < grads.size() && grads[i].defined()) c->grad_buffer = accumulate(std::move(c->grad_buffer), grads[i]);
        if (--c->dependencies == 0) ready.push_back(c);
      }
    }
  }

  std::vector<Tensor> call_vjp(Node* n, const Tensor& g) {
    if (n->released || !n->vjp)
      throw Error(fmt::format(
          "backward: trying to backward through the graph a second time (op '{}'); its saved tensors were freed "
          "after the first backward. Pass retain_graph=true to the first backward if you need to.",
          n->name));
    Tensor out;
    if (n->out_storage) {
      out = detail::make_alias(n->out_storage, n->out_shape, n->out_dtype);
      if (create_graph) out.impl()->grad_fn = n->shared_from_this();
    }
    std::vector<Tensor> grads;
    {
      // A non-finite value made inside the VJP is reported below under this node's name, not
      // as the forward of whichever op the VJP happens to be built from.
      detail::AnomalyCheckOff off;
      grads = n->vjp(g, out, Needs(n));
    }
    if (anomaly_mode)
      for (size_t i = 0; i < grads.size(); ++i)
        if (has_non_finite(grads[i]))
          throw Error(fmt::format("anomaly: the backward of '{}' produced NaN or Inf in the gradient of input {}",
                                  n->name, i));
    if (!retain_graph) {
      n->vjp = nullptr;
      n->out_storage.reset();
      n->released = true;
    }
    return grads;
  }

  void reset() {
    for (Node* n : all) {
      n->pass = nullptr;
      n->dependencies = 0;
      n->reaches = false;
      n->grad_buffer = Tensor();
    }
    for (auto it = set_aside.rbegin(); it != set_aside.rend(); ++it) {
      it->n->pass = it->pass;
      it->n->dependencies = it->dependencies;
      it->n->reaches = it->reaches;
      it->n->grad_buffer = std::move(it->grad_buffer);
    }
  }
};

Tensor seed_grad(const Tensor& root, const Tensor& given, const char* what) {
  if (given.defined()) {
    if (given.shape() != root.shape())
      throw Error(fmt::format("{}: expected a gradient of shape {} for the output, got {}", what,
                              shape_str(root.shape()), shape_str(given.shape())));
    return given.dtype() == root.dtype() ? given : given.to(root.dtype());
  }
  if (root.numel() != 1)
    throw Error(fmt::format("{}: the gradient can be implicitly created only for scalar outputs, got shape {}", what,
                            shape_str(root.shape())));
  return ones(root.shape(), root.dtype());
}

void run_engine(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots, bool retain_graph,
                bool create_graph, const std::vector<std::shared_ptr<Node>>* targets, std::vector<Tensor>* captured,
                const char* what) {
  if (!grad_roots.empty() && grad_roots.size() != roots.size())
    throw Error(fmt::format("{}: got {} outputs and {} gradients", what, roots.size(), grad_roots.size()));
  std::vector<std::shared_ptr<Node>> root_nodes;  // hold the nodes alive during the pass
  std::vector<Tensor> seeds;
  for (size_t i = 0; i < roots.size(); ++i) {
    if (!roots[i].defined()) throw Error(fmt::format("{}: output {} is undefined", what, i));
    auto edge = detail::gradient_edge(roots[i]);
    if (!edge)
      throw Error(fmt::format("{}: output {} does not require grad and has no grad_fn", what, i));
    root_nodes.push_back(edge);
    seeds.push_back(seed_grad(roots[i], grad_roots.empty() ? Tensor() : grad_roots[i], what));
  }
  GradModeGuard mode(create_graph);
  struct Targeted {
    bool prev = in_targeted_pass;
    explicit Targeted(bool on) { in_targeted_pass = on; }
    ~Targeted() { in_targeted_pass = prev; }
  } targeted(targets != nullptr);
  Engine e{retain_graph, create_graph, targets, captured, {}, {}};
  std::vector<Node*> raw;
  for (auto& n : root_nodes) raw.push_back(n.get());
  struct Reset {
    Engine& e;
    ~Reset() { e.reset(); }
  } reset{e};
  // The outermost pass owns the callback list; a nested one (checkpoint) adds to it.
  std::vector<std::function<void()>> callbacks;
  struct OwnCallbacks {
    std::vector<std::function<void()>>* prev = end_callbacks;
    explicit OwnCallbacks(std::vector<std::function<void()>>* mine) {
      if (!end_callbacks) end_callbacks = mine;
    }
    ~OwnCallbacks() { end_callbacks = prev; }
    bool outermost() const { return prev == nullptr; }
  } own{&callbacks};
  e.discover(raw);
  for (size_t i = 0; i < raw.size(); ++i) raw[i]->grad_buffer = accumulate(std::move(raw[i]->grad_buffer), seeds[i]);
  e.run(raw);
  if (own.outermost())
    for (size_t i = 0; i < callbacks.size(); ++i) {  // by index: a callback may queue another
      auto fn = std::move(callbacks[i]);
      fn();
    }
}

}  // namespace

void Tensor::backward(const Tensor& grad, bool retain_graph, bool create_graph) const {
  run_engine({*this}, grad.defined() ? std::vector<Tensor>{grad} : std::vector<Tensor>{}, retain_graph || create_graph,
             create_graph, nullptr, nullptr, "backward");
}

void Tensor::retain_grad() const {
  if (!defined()) throw Error("retain_grad: the tensor is undefined");
  if (impl_->grad_fn) impl_->grad_fn->retained = impl_;
  else if (!impl_->requires_grad)
    throw Error("retain_grad: the tensor does not require grad");
}

size_t Tensor::register_hook(Hook fn) const {
  static std::atomic<size_t> next_id{0};  // graphs may be built on several threads at once
  auto edge = detail::gradient_edge(*this);
  if (!edge) throw Error("register_hook: cannot register a hook on a tensor that does not require grad");
  const size_t id = ++next_id;
  edge->hooks.emplace_back(id, std::move(fn));
  return id;
}
void Tensor::remove_hook(size_t id) const {
  auto edge = detail::gradient_edge(*this);
  if (!edge) return;
  auto& h = edge->hooks;
  for (auto it = h.begin(); it != h.end(); ++it)
    if (it->first == id) {
      h.erase(it);
      return;
    }
}

namespace autograd {

void queue_callback(std::function<void()> fn) {
  if (!fn) throw Error("autograd::queue_callback: the callback is empty");
  if (!end_callbacks)
    throw Error("autograd::queue_callback: no backward pass is running on this thread (call it from a hook)");
  end_callbacks->push_back(std::move(fn));
}

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots, bool retain_graph,
              bool create_graph) {
  run_engine(roots, grad_roots, retain_graph || create_graph, create_graph, nullptr, nullptr, "backward");
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, std::optional<bool> retain_graph,
                         bool create_graph, bool allow_unused) {
  std::vector<std::shared_ptr<Node>> targets;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto edge = detail::gradient_edge(inputs[i]);
    if (!edge) throw Error(fmt::format("autograd::grad: input {} does not require grad", i));
    targets.push_back(edge);
  }
  std::vector<Tensor> captured(inputs.size());
  const bool retain = retain_graph.value_or(create_graph);
  run_engine(outputs, grad_outputs, retain, create_graph, &targets, &captured, "autograd::grad");
  for (size_t i = 0; i < captured.size(); ++i)
    if (!captured[i].defined() && !allow_unused)
      throw Error(fmt::format(
          "autograd::grad: input {} (shape {}) was not used in the graph of the outputs; pass allow_unused=true", i,
          shape_str(inputs[i].shape())));
  if (!create_graph)
    for (auto& c : captured)
      if (c.defined()) c = c.detach();
  return captured;
}

}  // namespace autograd
}  // namespace tg
