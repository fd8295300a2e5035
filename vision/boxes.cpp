// box_iou (a composite of tensor ops, so it is differentiable) and nms (a greedy loop over the
// boxes sorted by score, in the boxes' dtype, as torchvision's CPU kernel).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "vision.hpp"

namespace tg::vision {

namespace {

std::string describe(const Tensor& t) {
  return t.defined() ? fmt::format("{} {}", dtype_name(t.dtype()), shape_str(t.shape())) : "undefined";
}

void check_boxes(const char* op, const char* which, const Tensor& b) {
  if (!b.defined() || b.dim() != 2 || b.size(1) != 4 || !is_floating(b.dtype()))
    throw Error(fmt::format("{}: expected {} as a floating [N, 4] tensor of (x1, y1, x2, y2) rows, got {}", op, which,
                            describe(b)));
}

}  // namespace

Tensor box_iou(const Tensor& a, const Tensor& b) {
  check_boxes("box_iou", "the first boxes", a);
  check_boxes("box_iou", "the second boxes", b);
  auto area = [](const Tensor& t) {
    return (slice(t, 1, 2, 3) - slice(t, 1, 0, 1)) * (slice(t, 1, 3, 4) - slice(t, 1, 1, 2));  // [n, 1]
  };
  Tensor lt = maximum(slice(a, 1, 0, 2).unsqueeze(1), slice(b, 1, 0, 2).unsqueeze(0));  // [N, M, 2]
  Tensor rb = minimum(slice(a, 1, 2, 4).unsqueeze(1), slice(b, 1, 2, 4).unsqueeze(0));
  Tensor wh = clamp(rb - lt, 0.0, std::numeric_limits<double>::infinity());
  Tensor inter = (slice(wh, 2, 0, 1) * slice(wh, 2, 1, 2)).squeeze(2);  // [N, M]
  Tensor uni = area(a) + area(b).reshape({1, b.size(0)}) - inter;
  return inter / uni;
}

Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold) {
  check_boxes("nms", "boxes", boxes);
  if (!scores.defined() || scores.dim() != 1 || scores.size(0) != boxes.size(0) || !is_floating(scores.dtype()))
    throw Error(fmt::format("nms: expected floating scores [{}] (one per box), got {}", boxes.size(0),
                            describe(scores)));
  if (std::isnan(iou_threshold)) throw Error("nms: iou_threshold is NaN");
  const int64_t n = boxes.size(0);
  const std::vector<double> s = scores.to_vector<double>();
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(s[size_t(i)])) throw Error(fmt::format("nms: the score of box {} is NaN", i));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return s[size_t(i)] > s[size_t(j)]; });

  std::vector<int64_t> keep;
  dispatch_floating(boxes.dtype(), "nms", [&](auto z) {
    using T = decltype(z);
    const T* b = typed<T>(boxes);
    for (int64_t i = 0; i < 4 * n; ++i)
      if (!std::isfinite(b[i]))
        throw Error(fmt::format("nms: box {} has a non-finite coordinate ({})", i / 4, double(b[i])));
    std::vector<T> area(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) area[size_t(i)] = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
    std::vector<char> suppressed(size_t(n), 0);
    for (int64_t oi = 0; oi < n; ++oi) {
      const int64_t i = order[size_t(oi)];
      if (suppressed[size_t(i)]) continue;
      keep.push_back(i);
      const T* bi = b + 4 * i;
      for (int64_t oj = oi + 1; oj < n; ++oj) {
        const int64_t j = order[size_t(oj)];
        if (suppressed[size_t(j)]) continue;
        const T* bj = b + 4 * j;
        const T w = std::max(T(0), std::min(bi[2], bj[2]) - std::max(bi[0], bj[0]));
        const T h = std::max(T(0), std::min(bi[3], bj[3]) - std::max(bi[1], bj[1]));
        const T inter = w * h;
        const T iou = inter / (area[size_t(i)] + area[size_t(j)] - inter);
        if (double(iou) > iou_threshold) suppressed[size_t(j)] = 1;
      }
    }
  });
  Tensor out = empty({int64_t(keep.size())}, kInt64);
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}

}  // namespace tg::vision
