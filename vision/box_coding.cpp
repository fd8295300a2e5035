// R-CNN box deltas (encode_boxes, decode_boxes) and clip_boxes: composites of slice, arithmetic,
// log, exp and clamp, so they are differentiable without a backward of their own. The arithmetic
// follows torchvision's BoxCoder (encode_single, decode_single) line by line.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "vision.hpp"

namespace tg::vision {

namespace {

std::string describe(const Tensor& t) {
  return t.defined() ? fmt::format("{} {}", dtype_name(t.dtype()), shape_str(t.shape())) : "undefined";
}

void check_rows(const char* op, const char* which, const Tensor& t) {
  if (!t.defined() || t.dim() != 2 || t.size(1) != 4 || !is_floating(t.dtype()))
    throw Error(fmt::format("{}: expected {} as a floating [N, 4] tensor, got {}", op, which, describe(t)));
}

void check_pair(const char* op, const char* first, const Tensor& a, const Tensor& reference,
                const BoxCoderOptions& o) {
  check_rows(op, first, a);
  check_rows(op, "the reference boxes (x1, y1, x2, y2)", reference);
  if (a.size(0) != reference.size(0))
    throw Error(fmt::format("{}: expected one reference box per row, got {} rows and {} reference boxes", op,
                            a.size(0), reference.size(0)));
  if (a.dtype() != reference.dtype())
    throw Error(fmt::format("{}: expected the same dtype on both sides, got {} and {}", op, describe(a),
                            describe(reference)));
  const std::vector<double>& w = o.weights();
  if (w.size() != 4 || !(w[0] > 0 && w[1] > 0 && w[2] > 0 && w[3] > 0) || !std::isfinite(w[0] + w[1] + w[2] + w[3]))
    throw Error(fmt::format("{}: expected four positive finite weights (wx, wy, ww, wh), got [{}]", op,
                            fmt::join(w, ", ")));
  if (std::isnan(o.clip())) throw Error(fmt::format("{}: the clip of dw and dh is NaN", op));
}

Tensor col(const Tensor& t, int64_t i) { return slice(t, 1, i, i + 1); }  // [N, 1]

}  // namespace

Tensor encode_boxes(const Tensor& boxes, const Tensor& reference, const BoxCoderOptions& o) {
  check_pair("encode_boxes", "the boxes to encode (x1, y1, x2, y2)", boxes, reference, o);
  const std::vector<double>& wt = o.weights();
  const Tensor pw = col(reference, 2) - col(reference, 0), ph = col(reference, 3) - col(reference, 1);
  const Tensor px = col(reference, 0) + 0.5 * pw, py = col(reference, 1) + 0.5 * ph;
  const Tensor gw = col(boxes, 2) - col(boxes, 0), gh = col(boxes, 3) - col(boxes, 1);
  const Tensor gx = col(boxes, 0) + 0.5 * gw, gy = col(boxes, 1) + 0.5 * gh;
  return cat({wt[0] * (gx - px) / pw, wt[1] * (gy - py) / ph, wt[2] * log(gw / pw), wt[3] * log(gh / ph)}, 1);
}

Tensor decode_boxes(const Tensor& deltas, const Tensor& reference, const BoxCoderOptions& o) {
  check_pair("decode_boxes", "the deltas (dx, dy, dw, dh)", deltas, reference, o);
  const std::vector<double>& wt = o.weights();
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor w = col(reference, 2) - col(reference, 0), h = col(reference, 3) - col(reference, 1);
  const Tensor cx = col(reference, 0) + 0.5 * w, cy = col(reference, 1) + 0.5 * h;
  const Tensor dx = col(deltas, 0) / wt[0], dy = col(deltas, 1) / wt[1];
  const Tensor dw = clamp(col(deltas, 2) / wt[2], -inf, o.clip()), dh = clamp(col(deltas, 3) / wt[3], -inf, o.clip());
  const Tensor x = dx * w + cx, y = dy * h + cy;
  const Tensor half_w = 0.5 * (exp(dw) * w), half_h = 0.5 * (exp(dh) * h);
  return cat({x - half_w, y - half_h, x + half_w, y + half_h}, 1);
}

Tensor clip_boxes(const Tensor& boxes, double width, double height) {
  check_rows("clip_boxes", "boxes (x1, y1, x2, y2)", boxes);
  if (!(width >= 0 && height >= 0) || !std::isfinite(width) || !std::isfinite(height))
    throw Error(fmt::format("clip_boxes: expected a finite, non-negative width and height, got {} x {}", width, height));
  return cat({clamp(col(boxes, 0), 0, width), clamp(col(boxes, 1), 0, height), clamp(col(boxes, 2), 0, width),
              clamp(col(boxes, 3), 0, height)},
             1);
}

}  // namespace tg::vision
