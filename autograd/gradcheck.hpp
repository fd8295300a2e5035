#pragma once
/// Numerical gradient checking for any function of tensors, in float64.
///
///   auto r = tg::gradcheck([](const std::vector<tg::Tensor>& in) { return (in[0] * in[1]).sum(); },
///                          {x, w}, tg::GradcheckOptions().atol(1e-6));
///   if (!r.ok) std::cerr << r.message;
#include <functional>
#include <string>
#include <vector>

#include "arg.hpp"
#include "tensor.hpp"

namespace tg {

class GradcheckOptions {
  TG_ARG(double, eps) = 1e-6;
  TG_ARG(double, atol) = 1e-5;
  TG_ARG(double, rtol) = 1e-3;
  /// Inputs with more elements than this are checked along random directions instead of per element.
  TG_ARG(int64_t, max_elements) = 4096;
  /// Number of random directions (output side and, for large inputs, input side).
  TG_ARG(int, projections) = 4;
  TG_ARG(uint64_t, seed) = 0x5eed;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  ///< on failure: the input, the element, analytic vs numeric
  explicit operator bool() const { return ok; }
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Compares the analytic Jacobian of fn at `inputs` (promoted to float64; int64 inputs are passed
/// through as constants) with central differences. For each output direction v (the basis when
/// the output has at most `projections` elements... else random), v^T J from backward is compared
/// with the numeric v^T J, per element for inputs of up to max_elements, else along random input
/// directions.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o = {});

/// Checks second derivatives: gradcheck of (inputs, v) -> the VJP of fn with create_graph.
GradcheckResult gradgradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o = {});

}  // namespace tg
