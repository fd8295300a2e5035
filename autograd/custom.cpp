// User-defined ops (torch.autograd.Function): the forward runs off the tape, its floating
// outputs become one node named after the op, and the user's backward is its VJP. Several
// outputs are packed into one flat tensor on the tape and each output is a narrow of it, so the
// engine's one-output nodes serve them and unused outputs get zero gradients.
#include <fmt/format.h>

#include "autograd.hpp"
#include "node.hpp"

namespace tg {
namespace autograd {

void CustomContext::save_for_backward(std::vector<Tensor> tensors) {
  if (in_backward_) throw Error("custom op: save_for_backward was called in the backward; call it in the forward");
  saved_ = std::move(tensors);
}

const std::vector<Tensor>& CustomContext::saved_tensors() const { return in_backward_ ? resolved_ : saved_; }

bool CustomContext::needs_input_grad(size_t i) const { return i < needs_.size() && needs_[i]; }

}  // namespace autograd

namespace detail {
using autograd::CustomContext;
using autograd::CustomFunctionBackward;
using autograd::CustomFunctionForward;

class CustomOp {
 public:
  // Where a saved tensor comes from, so the backward gets it back with its graph.
  struct Slot {
    enum Kind { kConstant, kInput, kOutput } kind = kConstant;
    size_t index = 0;
  };
  // A differentiable output: its place in the packed tensor.
  struct Part {
    size_t output;
    int64_t offset, numel;
    Shape shape;
  };

  static std::vector<Tensor> run(const std::string& name, const std::vector<Tensor>& inputs,
                                 const CustomFunctionForward& forward, CustomFunctionBackward backward) {
    std::vector<Tensor> detached;
    detached.reserve(inputs.size());
    for (const Tensor& t : inputs) detached.push_back(t.defined() ? t.detach() : t);
    auto ctx = std::make_shared<CustomContext>();
    std::vector<Tensor> outs;
    {
      NoGradGuard no_grad;
      detail::AnomalyCheckOff inner;  // checked below, under this op's name
      outs = forward(*ctx, detached);
    }
    if (outs.empty()) throw Error(fmt::format("custom op '{}': the forward returned no outputs", name));
    for (size_t j = 0; j < outs.size(); ++j) {
      if (!outs[j].defined())
        throw Error(fmt::format("custom op '{}': the forward returned an undefined tensor (output {})", name, j));
      if (is_anomaly_enabled() && detail::has_non_finite(outs[j]))
        throw Error(fmt::format("anomaly: the forward of custom op '{}' produced NaN or Inf in output {} (shape {})",
                                name, j, shape_str(outs[j].shape())));
    }

    // The floating outputs are differentiable; they share one dtype so that they pack.
    std::vector<Part> parts;
    int64_t total = 0;
    for (size_t j = 0; j < outs.size(); ++j) {
      if (!is_floating(outs[j].dtype())) continue;
      if (!parts.empty() && outs[j].dtype() != outs[parts[0].output].dtype())
        throw Error(fmt::format("custom op '{}': the floating outputs must share one dtype, got {} (output {}) and {} "
                                "(output {})",
                                name, dtype_name(outs[parts[0].output].dtype()), parts[0].output,
                                dtype_name(outs[j].dtype()), j));
      parts.push_back({j, total, outs[j].numel(), outs[j].shape()});
      total += outs[j].numel();
    }

    std::vector<Slot> slots(ctx->saved_.size());
    std::vector<Tensor> constants(slots.size());
    bool keep_output = false;
    for (size_t k = 0; k < slots.size(); ++k) {
      const TensorImpl* s = ctx->saved_[k].defined() ? ctx->saved_[k].impl().get() : nullptr;
      for (size_t i = 0; s && i < detached.size() && slots[k].kind == Slot::kConstant; ++i)
        if (detached[i].defined() && detached[i].impl().get() == s) slots[k] = {Slot::kInput, i};
      for (size_t p = 0; s && p < parts.size() && slots[k].kind == Slot::kConstant; ++p)
        if (outs[parts[p].output].impl().get() == s) slots[k] = {Slot::kOutput, p};
      if (slots[k].kind == Slot::kConstant && s) constants[k] = ctx->saved_[k].detach();
      keep_output = keep_output || slots[k].kind == Slot::kOutput;
    }
    ctx->saved_.clear();  // the backward rebuilds them from the slots
    for (Tensor& o : outs) o = o.detach();

    bool any = false;
    for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
    if (parts.empty() || !any || !is_grad_enabled()) return outs;

    // The inputs the backward gets back: only the saved ones are kept.
    std::vector<Tensor> kept(inputs.size());
    std::vector<Shape> shapes;
    for (size_t k = 0; k < slots.size(); ++k)
      if (slots[k].kind == Slot::kInput) kept[slots[k].index] = inputs[slots[k].index];
    for (const Tensor& t : inputs) shapes.push_back(t.defined() ? t.shape() : Shape{});

    Tensor packed;
    if (parts.size() == 1) {
      packed = outs[parts[0].output];
    } else {
      NoGradGuard no_grad;
      std::vector<Tensor> flat;
      for (const Part& p : parts) flat.push_back(outs[p.output].reshape({p.numel}));
      packed = tg::cat(flat, 0);
    }

    const size_t n_outputs = outs.size();
    VjpFn vjp = [name, ctx, slots, constants, kept, parts, shapes, n_outputs, backward = std::move(backward)](
                    const Tensor& g, const Tensor& o, Needs needs) {
      std::vector<Tensor> grad_outputs(n_outputs);  // undefined for the integer outputs
      for (const Part& p : parts) grad_outputs[p.output] = unpack(g, p, parts.size());
      ctx->resolved_.assign(slots.size(), Tensor());
      for (size_t k = 0; k < slots.size(); ++k) {
        switch (slots[k].kind) {
          case Slot::kConstant: ctx->resolved_[k] = constants[k]; break;
          case Slot::kInput: ctx->resolved_[k] = kept[slots[k].index]; break;
          case Slot::kOutput: ctx->resolved_[k] = unpack(o, parts[slots[k].index], parts.size()); break;
        }
      }
      ctx->needs_.assign(shapes.size(), false);
      for (size_t i = 0; i < shapes.size(); ++i) ctx->needs_[i] = needs[i];
      // The resolved outputs hold this node (with create_graph): drop them on every path out,
      // or the node would own itself.
      struct Done {
        CustomContext& c;
        ~Done() {
          c.resolved_.clear();
          c.in_backward_ = false;
        }
      } done{*ctx};
      ctx->in_backward_ = true;
      std::vector<Tensor> gs = backward(*ctx, grad_outputs);
      if (gs.size() != shapes.size())
        throw Error(fmt::format("custom op '{}': the VJP returned {} gradients for {} inputs", name, gs.size(),
                                shapes.size()));
      for (size_t i = 0; i < gs.size(); ++i)
        if (gs[i].defined() && gs[i].shape() != shapes[i])
          throw Error(fmt::format("custom op '{}': the VJP returned a gradient of shape {} for input {} of shape {}",
                                  name, shape_str(gs[i].shape()), i, shape_str(shapes[i])));
      return gs;
    };
    Tensor y = detail::record(name, packed, inputs, std::move(vjp), keep_output);
    for (const Part& p : parts) outs[p.output] = unpack(y, p, parts.size());
    return outs;
  }

 private:
  // Output p of the packed tensor t (all of it when there is one), with differentiable ops.
  static Tensor unpack(const Tensor& t, const Part& p, size_t n_parts) {
    if (n_parts == 1) return t;
    return t.narrow(0, p.offset, p.numel).reshape(p.shape);
  }
};

}  // namespace detail

namespace autograd {

std::vector<Tensor> custom(const std::string& name, const std::vector<Tensor>& inputs, CustomFunctionForward forward,
                           CustomFunctionBackward backward) {
  if (!forward || !backward) throw Error(fmt::format("custom op '{}': the forward or the backward is empty", name));
  return detail::CustomOp::run(name, inputs, forward, std::move(backward));
}

// The one-output form: the inputs and the output are saved, and come back as vjp's `in` and `out`.
Tensor custom(const std::string& name, const std::vector<Tensor>& inputs, CustomForward forward, CustomVjp vjp) {
  if (!forward || !vjp) throw Error(fmt::format("custom op '{}': the forward or the VJP is empty", name));
  const size_t n = inputs.size();
  return custom(
      name, inputs,
      [forward = std::move(forward)](CustomContext& ctx, const std::vector<Tensor>& in) {
        Tensor out = forward(in);
        std::vector<Tensor> saved = in;
        saved.push_back(out);
        ctx.save_for_backward(std::move(saved));
        return std::vector<Tensor>{out};
      },
      [vjp = std::move(vjp), n](CustomContext& ctx, const std::vector<Tensor>& g) {
        const std::vector<Tensor>& s = ctx.saved_tensors();
        return vjp(std::vector<Tensor>(s.begin(), s.begin() + std::ptrdiff_t(n)), s[n], g[0]);
      })[0];
}

}  // namespace autograd
}  // namespace tg
