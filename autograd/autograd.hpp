#pragma once
/// Autograd controls: grad mode, anomaly detection, autograd::grad and user-defined ops.
#include <functional>
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

namespace autograd {

/// Gradients of `outputs` with respect to `inputs`, without touching any .grad().
/// grad_outputs: one per output (empty: ones, outputs must then be scalars).
/// retain_graph defaults to create_graph, as in PyTorch. An input the outputs do not depend on
/// gets an undefined tensor when allow_unused, and throws otherwise.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, int retain_graph = -1,
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

}  // namespace autograd
}  // namespace tg
