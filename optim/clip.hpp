#pragma once
/// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_. Parameters whose
/// gradient is undefined are skipped; the gradients are changed in place.
///   loss.backward();
///   double norm = tg::nn::utils::clip_grad_norm_(model->parameters(), /*max_norm=*/1.0);
///   opt.step();
#include <vector>

#include "../autograd/tensor.hpp"

namespace tg::nn::utils {

/// Scales all gradients by max_norm / (total + 1e-6) when that is below 1, where total is the
/// norm_type-norm of all gradients taken together (norm_type > 0, or INFINITY for the max
/// |g|). Returns total (before clipping). error_if_nonfinite: a NaN or infinite total throws
/// tg::Error instead of scaling.
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
double clip_grad_norm_(const Tensor& parameter, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);
void clip_grad_value_(const Tensor& parameter, double clip_value);

}  // namespace tg::nn::utils
