#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
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

namespace {

// Predictions int64 of the target's shape, or scores [N, C, *] for a target [N, *]: both
// flattened, the scores' argmax over C (first maximum on ties) taken element by element.
std::vector<int64_t> spatial_predictions(const Tensor& scores, const Tensor& target, int64_t num_classes) {
  if (scores.dtype() == kInt64 && scores.shape() == target.shape()) return scores.to_vector<int64_t>();
  Shape want = target.shape();
  want.insert(want.begin() + 1, num_classes);
  if (is_floating(scores.dtype()) && scores.shape() == want) {
    const int64_t n = scores.size(0), c = num_classes, inner = target.numel() / std::max<int64_t>(1, n);
    const Tensor s64 = scores.detach().to(kFloat64).contiguous();
    const double* s = s64.data_ptr<double>();
    std::vector<int64_t> pred(size_t(target.numel()), 0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = 0; e < inner; ++e) {
        const double* at = s + i * c * inner + e;
        int64_t best = 0;
        for (int64_t j = 1; j < c; ++j)
          if (at[j * inner] > at[best * inner]) best = j;
        pred[size_t(i * inner + e)] = best;
      }
    return pred;
  }
  throw Error(fmt::format("confusion_matrix: for target {} expects scores {} or predictions int64 {}, got {} {}",
                          shape_str(target.shape()), shape_str(want), shape_str(target.shape()),
                          dtype_name(scores.dtype()), shape_str(scores.shape())));
}

Tensor count(const std::vector<int64_t>& pred, const std::vector<int64_t>& t, int64_t num_classes) {
  Tensor cm = zeros({num_classes, num_classes}, kInt64);
  int64_t* m = cm.data_ptr<int64_t>();
  for (size_t i = 0; i < t.size(); ++i) {
    int64_t y = t[i], p = pred[i];
    if (y < 0 || y >= num_classes || p < 0 || p >= num_classes)
      throw Error(fmt::format("confusion_matrix: sample {} has target {} and prediction {}, outside [0, {})", i, y,
                              p, num_classes));
    ++m[y * num_classes + p];
  }
  return cm;
}

// The confusion matrix as doubles, checked to be [C, C] with C >= 1.
std::vector<double> square(const char* op, const Tensor& confusion, int64_t& c) {
  if (!confusion.defined() || confusion.dim() != 2 || confusion.size(0) != confusion.size(1) || confusion.size(0) < 1)
    throw Error(fmt::format("{}: expects a confusion matrix [C, C], got {}", op,
                            confusion.defined() ? shape_str(confusion.shape()) : "undefined"));
  c = confusion.size(0);
  std::vector<double> m = confusion.detach().to_vector<double>();
  for (double v : m)
    if (!(v >= 0)) throw Error(fmt::format("{}: expects counts >= 0, got {}", op, v));
  return m;
}

}  // namespace

Tensor iou(const Tensor& confusion) {
  int64_t c = 0;
  const std::vector<double> m = square("iou", confusion, c);
  std::vector<double> out(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; ++k) {
    double row = 0, col = 0;
    for (int64_t j = 0; j < c; ++j) row += m[size_t(k * c + j)], col += m[size_t(j * c + k)];
    const double inter = m[size_t(k * c + k)], uni = row + col - inter;
    out[size_t(k)] = uni > 0 ? inter / uni : std::numeric_limits<double>::quiet_NaN();
  }
  return tensor(out, {c}, kFloat64);
}

double mean_iou(const Tensor& confusion) {
  double total = 0;
  int64_t n = 0;
  for (double v : iou(confusion).to_vector<double>())
    if (!std::isnan(v)) total += v, ++n;
  if (n == 0) throw Error("mean_iou: no class is in the target or predicted (the confusion matrix is all 0)");
  return total / double(n);
}

double pixel_accuracy(const Tensor& confusion) {
  int64_t c = 0;
  const std::vector<double> m = square("pixel_accuracy", confusion, c);
  double diag = 0, total = 0;
  for (int64_t k = 0; k < c; ++k) diag += m[size_t(k * c + k)];
  for (double v : m) total += v;
  if (total == 0) throw Error("pixel_accuracy: the confusion matrix is all 0");
  return diag / total;
}

Tensor confusion_matrix(const Tensor& scores_or_pred, const Tensor& target, int64_t num_classes) {
  if (scores_or_pred.defined() && target.defined() && target.dtype() == kInt64 && target.dim() >= 2) {
    if (num_classes < 1) throw Error(fmt::format("confusion_matrix: expects num_classes >= 1, got {}", num_classes));
    return count(spatial_predictions(scores_or_pred, target, num_classes), target.to_vector<int64_t>(), num_classes);
  }
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
