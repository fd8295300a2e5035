#pragma once
/// Autograd controls: grad mode, anomaly detection, autograd::grad and user-defined ops.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace tg {

/// True unless a NoGradGuard is active on this thread.
bool is_grad_enabled();

/// No op inside the guard's scope records a node (inference, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// Sets grad mode to `enabled` for the guard's scope.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled);
  ~GradModeGuard();
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};

/// While alive, a NaN or Inf produced by any op's forward or VJP throws tg::Error naming the op.
class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard();
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool prev_;
};
bool is_anomaly_enabled();

namespace detail {
class CustomOp;
}

namespace autograd {

/// Gradients of `outputs` with respect to `inputs`, without touching any .grad().
/// grad_outputs: one per output (empty: ones, outputs must then be scalars).
/// retain_graph: unset (the default) means create_graph, as in PyTorch. An input the outputs do
/// not depend on gets an undefined tensor when allow_unused, and throws otherwise.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, std::optional<bool> retain_graph = std::nullopt,
                         bool create_graph = false, bool allow_unused = false);

/// Runs backward from several roots at once (Tensor::backward is the one-root case).
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots = {},
              bool retain_graph = false, bool create_graph = false);

/// Queues fn to run once the backward pass now running on this thread has finished, after every
/// leaf's .grad() is written, as PyTorch's Engine::queue_callback. Called from a hook (or a VJP);
/// when passes nest (checkpoint's recomputation runs one inside a VJP) it goes to the outermost
/// pass, whose end is the end of the user's backward(). Callbacks run in the order queued; a pass
/// that throws drops its callbacks. DistributedDataParallel waits for its all-reduces this way.
/// Outside a backward pass it throws tg::Error.
void queue_callback(std::function<void()> fn);

using CustomForward = std::function<Tensor(const std::vector<Tensor>&)>;
using CustomVjp =
    std::function<std::vector<Tensor>(const std::vector<Tensor>& in, const Tensor& out, const Tensor& g)>;

/// A user-defined differentiable op: forward runs off the tape; vjp(in, out, g) returns one
/// gradient per input (undefined = zero) and may use differentiable ops on `in` and `out`,
/// so double backward through it works.
Tensor custom(const std::string& name, const std::vector<Tensor>& inputs, CustomForward forward,
              CustomVjp vjp);

/// What the forward of a custom op keeps for its backward (PyTorch's `ctx`).
class CustomContext {
 public:
  /// Keeps tensors for the backward (ctx.save_for_backward). A saved input or output comes back
  /// in the backward with its graph, so double backward differentiates through it; any other
  /// tensor (a value computed in the forward) comes back as a constant.
  void save_for_backward(std::vector<Tensor> tensors);
  /// In the backward: the saved tensors, in the order they were saved (ctx.saved_tensors).
  const std::vector<Tensor>& saved_tensors() const;
  /// In the backward: whether input i gets a gradient (ctx.needs_input_grad[i]); the backward
  /// may return an undefined tensor for the others.
  bool needs_input_grad(size_t i) const;

 private:
  friend class detail::CustomOp;
  std::vector<Tensor> saved_;
  std::vector<Tensor> resolved_;  // during the backward
  std::vector<bool> needs_;
  bool in_backward_ = false;
};

/// forward(ctx, in) -> outputs, off the tape; backward(ctx, grad_outputs) -> one gradient per input.
using CustomFunctionForward = std::function<std::vector<Tensor>(CustomContext& ctx, const std::vector<Tensor>& in)>;
using CustomFunctionBackward =
    std::function<std::vector<Tensor>(CustomContext& ctx, const std::vector<Tensor>& grad_outputs)>;

/// A user-defined op with a context and any number of outputs (torch.autograd.Function):
///
///   auto out = tg::autograd::custom("sincos", {x},
///       [](tg::autograd::CustomContext& ctx, const std::vector<tg::Tensor>& in) {
///         tg::Tensor s = tg::sin(in[0]), c = tg::cos(in[0]);
///         ctx.save_for_backward({s, c});                     // computed once, used by the backward
///         return std::vector<tg::Tensor>{s, c};
///       },
///       [](tg::autograd::CustomContext& ctx, const std::vector<tg::Tensor>& g) {
///         const auto& s = ctx.saved_tensors();               // the outputs, with their graph
///         return std::vector<tg::Tensor>{g[0] * s[1] - g[1] * s[0]};
///       });
///
/// grad_outputs has one gradient per output: zeros for a floating output the loss does not use,
/// undefined for an integer output (never differentiable). The floating outputs share one
/// dtype. Under DetectAnomalyGuard a NaN or Inf in an output, or in a gradient the backward
/// returns, throws tg::Error naming the op `name`, not an op used inside it.
std::vector<Tensor> custom(const std::string& name, const std::vector<Tensor>& inputs, CustomFunctionForward forward,
                           CustomFunctionBackward backward);

}  // namespace autograd
}  // namespace tg
