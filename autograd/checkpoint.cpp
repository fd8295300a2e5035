// Gradient checkpointing: the forward runs off the tape; the recorded node's VJP runs the
// function again with recording and backpropagates that graph in a nested pass (the engine lets
// a pass run inside a VJP), as torch.utils.checkpoint's reentrant variant does.
#include "checkpoint.hpp"

#include <fmt/format.h>

#include <string>
#include <utility>

#include "autograd.hpp"
#include "node.hpp"

namespace tg {
namespace {

thread_local int recomputing = 0;

// During a recomputation: the flag up, and the generator at the state the forward started
// from; afterwards the generator continues from where it was before the recomputation.
class RecomputeScope {
 public:
  explicit RecomputeScope(const std::string& forward_state) : before_(get_rng_state()) {
    set_rng_state(forward_state);
    ++recomputing;
  }
  ~RecomputeScope() {
    --recomputing;
    set_rng_state(before_);
  }
  RecomputeScope(const RecomputeScope&) = delete;
  RecomputeScope& operator=(const RecomputeScope&) = delete;

 private:
  std::string before_;
};

Tensor defined_result(Tensor out) {
  if (!out.defined()) throw Error("checkpoint: fn returned an undefined tensor");
  return out;
}

}  // namespace

bool autograd::in_checkpoint_recompute() { return recomputing > 0; }

Tensor checkpoint(CheckpointFn fn, const std::vector<Tensor>& inputs) {
  if (!fn) throw Error("checkpoint: fn is empty");
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i].defined()) throw Error(fmt::format("checkpoint: input {} is undefined", i));
  if (!is_grad_enabled()) return defined_result(fn(inputs));

  std::string rng = get_rng_state();
  std::vector<Tensor> saved;  // the inputs' data, off the tape
  std::vector<bool> wants;    // which inputs take a gradient
  bool any = false;
  for (const Tensor& t : inputs) {
    saved.push_back(t.detach());
    wants.push_back(t.requires_grad());
    any = any || t.requires_grad();
  }
  Tensor out;
  {
    NoGradGuard off;
    out = defined_result(fn(saved)).detach();  // a handle of its own: fn may return an input
  }
  // When no input requires grad, fn may still use parameters that do, and which ones is known
  // only once it runs recorded. An edge to a throwaway leaf puts the node on the tape anyway, so
  // the parameters get their gradients (PyTorch's reentrant checkpoint gives them none here).
  std::vector<Tensor> edges = inputs;
  if (!any) edges.push_back(tg::zeros({}).requires_grad_());
  const Shape shape = out.shape();

  VjpFn vjp = [fn = std::move(fn), saved = std::move(saved), wants = std::move(wants), rng = std::move(rng),
               shape](const Tensor& g, const Tensor&, Needs) {
    if (is_grad_enabled())
      throw Error(
          "checkpoint: backward with create_graph=true (double backward) through a checkpoint is not supported; "
          "call the function without checkpoint where second derivatives are needed");
    if (detail::in_targeted_backward())
      throw Error(
          "checkpoint: not compatible with autograd::grad (the gradients of the parameters fn uses would go to "
          "their .grad()); use backward()");
    std::vector<Tensor> in;
    for (size_t i = 0; i < saved.size(); ++i) {
      Tensor t = saved[i].detach();  // a fresh leaf: the nested pass stops here
      if (wants[i]) t.requires_grad_(true);
      in.push_back(t);
    }
    Tensor y;
    {
      GradModeGuard on(true);
      RecomputeScope scope(rng);
      y = fn(in);
    }
    if (!y.defined() || y.shape() != shape)
      throw Error(fmt::format("checkpoint: the recomputation returned {}, the forward returned {} (fn must compute "
                              "the same thing both times)",
                              y.defined() ? shape_str(y.shape()) : "an undefined tensor", shape_str(shape)));
    // retain_graph: a node the recomputed graph shares with the outer pass (the graph of a
    // tensor fn captures that is used outside too) must still be there when the outer pass runs
    // it. The recomputed part is freed anyway when y goes, at the end of this VJP.
    if (y.requires_grad()) autograd::backward({y}, {g}, /*retain_graph=*/true);
    Grads grads(saved.size());
    for (size_t i = 0; i < saved.size(); ++i)
      if (wants[i]) grads[i] = in[i].grad();
    return grads;
  };
  return detail::record("checkpoint", out, edges, std::move(vjp));
}

}  // namespace tg
