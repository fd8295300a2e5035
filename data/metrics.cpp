#include "metrics.hpp"

#include <vector>

#include <fmt/format.h>

namespace tg::metrics {
namespace {

// Checks target int64 [N] against scores [N, C] or predictions int64 [N]; returns N.
int64_t check(const char* op, const Tensor& scores, const Tensor& target) {
  if (!scores.defined() || !target.defined()) throw Error(fmt::format("{}: undefined tensor", op));
  if (target.dtype() != kInt64 || target.dim() != 1)
    throw Error(fmt::format("{}: expects target int64 [N], got {} {}", op, dtype_name(target.dtype()),
                            shape_str(target.shape())));
  bool preds = scores.dim() == 1 && scores.dtype() == kInt64;
  if (!preds && scores.dim() != 2)
    throw Error(fmt::format("{}: expects scores [N, C] or predictions int64 [N], got {} {}", op,
                            dtype_name(scores.dtype()), shape_str(scores.shape())));
  if (scores.size(0) != target.size(0))
    throw Error(fmt::format("{}: scores {} and target {} disagree on N", op, shape_str(scores.shape()),
                            shape_str(target.shape())));
  return target.size(0);
}

// Predicted class per row: argmax, first maximum on ties; or the predictions themselves.
std::vector<int64_t> predictions(const Tensor& scores) {
  if (scores.dim() == 1) return scores.to_vector<int64_t>();
  const int64_t n = scores.size(0), c = scores.size(1);
  std::vector<double> s = scores.to_vector<double>();
  std::vector<int64_t> pred(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    const double* row = s.data() + i * c;
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (row[j] > row[best]) best = j;
    pred[size_t(i)] = best;
  }
  return pred;
}

}  // namespace

int64_t correct(const Tensor& scores, const Tensor& target, int64_t topk) {
  const int64_t n = check("accuracy", scores, target);
  if (topk < 1) throw Error(fmt::format("accuracy: expects topk >= 1, got {}", topk));
  std::vector<int64_t> t = target.to_vector<int64_t>();
  if (scores.dim() == 1) {
    if (topk != 1) throw Error(fmt::format("accuracy: top-{} needs scores [N, C], got predictions [N]", topk));
    std::vector<int64_t> p = scores.to_vector<int64_t>();
    int64_t hits = 0;
    for (int64_t i = 0; i < n; ++i) hits += p[size_t(i)] == t[size_t(i)];
    return hits;
  }
  const int64_t c = scores.size(1);
  if (topk > c) throw Error(fmt::format("accuracy: topk {} exceeds the {} classes of scores {}", topk, c,
                                        shape_str(scores.shape())));
  std::vector<double> s = scores.to_vector<double>();
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t y = t[size_t(i)];
    if (y < 0 || y >= c)
      throw Error(fmt::format("accuracy: target[{}] = {} is outside [0, {}) for scores {}", i, y, c,
                              shape_str(scores.shape())));
    // Rank of the target: classes scoring higher, or equal with a lower index.
    const double* row = s.data() + i * c;
    int64_t rank = 0;
    for (int64_t j = 0; j < c && rank < topk; ++j) rank += row[j] > row[y] || (row[j] == row[y] && j < y);
    hits += rank < topk;
  }
  return hits;
}

double accuracy(const Tensor& scores, const Tensor& target, int64_t topk) {
  int64_t hits = correct(scores, target, topk);
  if (target.size(0) == 0) throw Error("accuracy: empty batch (N = 0)");
  return double(hits) / double(target.size(0));
}

Tensor confusion_matrix(const Tensor& scores_or_pred, const Tensor& target, int64_t num_classes) {
  const int64_t n = check("confusion_matrix", scores_or_pred, target);
  if (num_classes < 1) throw Error(fmt::format("confusion_matrix: expects num_classes >= 1, got {}", num_classes));
  if (scores_or_pred.dim() == 2 && scores_or_pred.size(1) != num_classes)
    throw Error(fmt::format("confusion_matrix: scores {} have {} classes, num_classes is {}",
                            shape_str(scores_or_pred.shape()), scores_or_pred.size(1), num_classes));
  std::vector<int64_t> pred = predictions(scores_or_pred), t = target.to_vector<int64_t>();
  Tensor cm = zeros({num_classes, num_classes}, kInt64);
  int64_t* m = cm.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t y = t[size_t(i)], p = pred[size_t(i)];
    if (y < 0 || y >= num_classes || p < 0 || p >= num_classes)
      throw Error(fmt::format("confusion_matrix: sample {} has target {} and prediction {}, outside [0, {})", i, y,
                              p, num_classes));
    ++m[y * num_classes + p];
  }
  return cm;
}

}  // namespace tg::metrics
