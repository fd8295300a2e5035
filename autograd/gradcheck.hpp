#pragma once
/// Numerical gradient checking for any function of tensors, in float64.
///
///   auto r = tg::gradcheck([](const std::vector<tg::Tensor>& in) { return (in[0] * in[1]).sum(); },
///                          {x, w}, tg::GradcheckOptions().atol(1e-6));
///   if (!r.ok) std::cerr << r.message;
#include <functional>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace tg {

class GradcheckOptions {
 public:
  GradcheckOptions& eps(double v) { eps_ = v; return *this; }
  GradcheckOptions& atol(double v) { atol_ = v; return *this; }
  GradcheckOptions& rtol(double v) { rtol_ = v; return *this; }
  /// Inputs with more elements than this are checked along random directions instead of per element.
  GradcheckOptions& max_elements(int64_t v) { max_elements_ = v; return *this; }
  /// Number of random directions (output side and, for large inputs, input side).
  GradcheckOptions& projections(int v) { projections_ = v; return *this; }
  GradcheckOptions& seed(uint64_t v) { seed_ = v; return *this; }
  double eps() const { return eps_; }
  double atol() const { return atol_; }
  double rtol() const { return rtol_; }
  int64_t max_elements() const { return max_elements_; }
  int projections() const { return projections_; }
  uint64_t seed() const { return seed_; }

 private:
  double eps_ = 1e-6, atol_ = 1e-5, rtol_ = 1e-3;
  int64_t max_elements_ = 4096;
  int projections_ = 4;
  uint64_t seed_ = 0x5eed;
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
