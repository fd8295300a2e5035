#pragma once
/// Classification metrics. Scores are logits (or probabilities) [N, C]; targets int64 [N].
///
///   double top1 = tg::metrics::accuracy(logits, target);       // fraction in [0, 1]
///   double top5 = tg::metrics::accuracy(logits, target, 5);
///   tg::Tensor cm = tg::metrics::confusion_matrix(logits, target, 10);  // int64 [10, 10]
///
/// Ties rank as argmax does: among equal scores the lower class index comes first.
#include <cstdint>

#include "autograd/tensor.hpp"

namespace tg::metrics {

/// Number of samples whose target is among the topk highest scores. `scores` may also be
/// predicted classes, int64 [N], with topk = 1.
int64_t correct(const Tensor& scores, const Tensor& target, int64_t topk = 1);

/// correct(...) / N: the top-k accuracy, a fraction in [0, 1].
double accuracy(const Tensor& scores, const Tensor& target, int64_t topk = 1);

/// Counts [num_classes, num_classes], int64: row = true class, column = predicted class (the
/// argmax of scores [N, C], or predictions int64 [N]).
Tensor confusion_matrix(const Tensor& scores_or_pred, const Tensor& target, int64_t num_classes);

}  // namespace tg::metrics
