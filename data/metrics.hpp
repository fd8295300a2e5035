#pragma once
/// Classification and segmentation metrics. Scores are logits (or probabilities) [N, C];
/// targets int64 [N]. For segmentation, scores [N, C, H, W] and targets [N, H, W].
///
///   double top1 = tg::metrics::accuracy(logits, target);       // fraction in [0, 1]
///   double top5 = tg::metrics::accuracy(logits, target, 5);
///   tg::Tensor cm = tg::metrics::confusion_matrix(logits, target, 10);  // int64 [10, 10]
///   double miou = tg::metrics::mean_iou(cm);                     // from the summed confusion
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
/// argmax of scores [N, C], or predictions int64 [N]). Per-element (pixel-wise) too: scores
/// [N, C, *] with target [N, *] (the argmax over dim 1), or predictions int64 of target's shape.
Tensor confusion_matrix(const Tensor& scores_or_pred, const Tensor& target, int64_t num_classes);

/// Per-class intersection over union from a confusion matrix [C, C] (rows true, columns
/// predicted): cm[c][c] / (row c + column c - cm[c][c]), float64 [C]; NaN for a class that is
/// neither in the target nor predicted (0 / 0).
Tensor iou(const Tensor& confusion);

/// The mean of iou(confusion) over the classes whose IoU is defined (not NaN): a class that is
/// predicted but absent from the target counts, with IoU 0. Throws when no class is defined.
double mean_iou(const Tensor& confusion);

/// The diagonal's share of all counts: the fraction of samples (pixels) predicted right.
double pixel_accuracy(const Tensor& confusion);

}  // namespace tg::metrics
