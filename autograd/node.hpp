#pragma once
// Internal: a node of the tape. One per recorded op; it keeps the gradient edges to the nodes
// that made its inputs and a VJP closure holding only what the VJP needs.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor_impl.hpp"

namespace tg {

using Grads = std::vector<Tensor>;

/// Which inputs of a node need a gradient (an edge exists).
class Needs {
 public:
  explicit Needs(const Node* n) : n_(n) {}
  bool operator[](size_t i) const;

 private:
  const Node* n_;
};

/// VJP of a primitive: given the output's gradient g and the output itself (defined only when
/// the node keeps its output), returns one gradient per input (undefined = none).
using VjpFn = std::function<Grads(const Tensor& g, const Tensor& out, Needs needs)>;

struct Node : std::enable_shared_from_this<Node> {
  std::string name;
  std::vector<std::shared_ptr<Node>> next;  // one per input; null where no gradient is needed
  VjpFn vjp;                                // empty for AccumulateGrad nodes
  bool released = false;                    // saved tensors freed after a backward
  bool accumulator = false;                 // AccumulateGrad: the sink of a leaf

  // The output's data, kept only for ops whose VJP uses it (exp, tanh, ...). Stored without a
  // grad_fn, so the node does not own itself through its output.
  std::shared_ptr<Storage> out_storage;
  Shape out_shape;
  Dtype out_dtype = kFloat32;

  // The output's shape and dtype for autograd::to_dot, inline (no allocation on the tape):
  // out_ndim > kMetaDims keeps only the number of dims.
  static constexpr int kMetaDims = 8;
  int out_ndim = -1;  // -1: not recorded (AccumulateGrad)
  int64_t out_dims[kMetaDims] = {};
  Dtype meta_dtype = kFloat32;

  std::weak_ptr<TensorImpl> leaf;      // AccumulateGrad: the leaf that receives the gradient
  std::weak_ptr<TensorImpl> retained;  // retain_grad() on the output of this node
  std::vector<std::pair<size_t, Hook>> hooks;

  // Scratch of the backward pass that owns the node (`pass`, null when none does). A pass run
  // inside a VJP (checkpoint's recomputation) sets aside the scratch of nodes an enclosing pass
  // owns and gives it back when it ends (engine.cpp).
  const void* pass = nullptr;
  int dependencies = 0;
  bool reaches = false;
  Tensor grad_buffer;

  ~Node();
};

inline bool Needs::operator[](size_t i) const { return i < n_->next.size() && n_->next[i] != nullptr; }

namespace detail {
/// The node a gradient for t flows into: its grad_fn, its leaf accumulator, or null.
std::shared_ptr<Node> gradient_edge(const Tensor& t);
/// Puts `out` on the tape as the result of op `name` applied to `inputs`, when grad mode is on
/// and an input requires grad. keep_output: the VJP receives the output (it needs it).
/// Also runs the anomaly check on the forward result.
Tensor record(const char* name, Tensor out, std::initializer_list<Tensor> inputs, VjpFn vjp,
              bool keep_output = false);
Tensor record(std::string name, Tensor out, const std::vector<Tensor>& inputs, VjpFn vjp,
              bool keep_output = false);
bool any_requires_grad(std::initializer_list<Tensor> inputs);
/// True when a floating tensor holds a NaN or an Inf (the anomaly check).
bool has_non_finite(const Tensor& t);
/// Turns the anomaly check of each op's forward off for its scope: a non-finite value made
/// inside (a VJP, a custom op's forward) is reported under the enclosing op's name instead.
class AnomalyCheckOff {
 public:
  AnomalyCheckOff();
  ~AnomalyCheckOff();
  AnomalyCheckOff(const AnomalyCheckOff&) = delete;
  AnomalyCheckOff& operator=(const AnomalyCheckOff&) = delete;

 private:
  bool prev_;
};
/// True while the innermost backward pass on this thread is autograd::grad's (it captures
/// gradients at given inputs instead of accumulating into leaves).
bool in_targeted_backward();
}  // namespace detail

}  // namespace tg
