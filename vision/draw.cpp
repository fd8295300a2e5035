// draw_boxes: outlines of boxes painted into a copy of an image (for pictures of detections).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "vision.hpp"

namespace tg::vision {

Tensor draw_boxes(const Tensor& image, const Tensor& boxes, const std::vector<double>& color, int64_t width) {
  auto describe = [](const Tensor& t) {
    return t.defined() ? fmt::format("{} {}", dtype_name(t.dtype()), shape_str(t.shape())) : "undefined";
  };
  if (!image.defined() || image.dim() != 3 || !is_floating(image.dtype()))
    throw Error(fmt::format("draw_boxes: expected a floating image [C, H, W], got {}", describe(image)));
  if (!boxes.defined() || boxes.dim() != 2 || boxes.size(1) != 4 || !is_floating(boxes.dtype()))
    throw Error(fmt::format("draw_boxes: expected floating boxes [K, 4] of (x1, y1, x2, y2) rows, got {}",
                            describe(boxes)));
  const int64_t c_n = image.size(0), h = image.size(1), w = image.size(2);
  if (int64_t(color.size()) != c_n)
    throw Error(fmt::format("draw_boxes: expected a colour of {} values (one per channel of the image {}), got {}", c_n,
                            shape_str(image.shape()), color.size()));
  if (width < 1) throw Error(fmt::format("draw_boxes: expected a line width >= 1, got {}", width));
  const std::vector<double> b = boxes.contiguous().to_vector<double>();
  for (size_t i = 0; i < b.size(); ++i)
    if (!std::isfinite(b[i])) throw Error(fmt::format("draw_boxes: box {} has a non-finite coordinate", i / 4));

  Tensor out = image.detach().contiguous().clone();
  dispatch_floating(out.dtype(), "draw_boxes", [&](auto z) {
    using T = decltype(z);
    T* p = out.data_ptr<T>();
    for (size_t k = 0; k + 3 < b.size(); k += 4) {
      // The box's pixels: columns l..r, rows t..btm (inclusive).
      auto pixel = [](double v) { return int64_t(std::llround(std::clamp(v, -1e9, 1e9))); };
      const int64_t l = pixel(b[k]), t = pixel(b[k + 1]), r = pixel(b[k + 2]) - 1, btm = pixel(b[k + 3]) - 1;
      for (int64_t y = std::max<int64_t>(t, 0); y <= std::min(btm, h - 1); ++y)
        for (int64_t x = std::max<int64_t>(l, 0); x <= std::min(r, w - 1); ++x) {
          if (x >= l + width && x <= r - width && y >= t + width && y <= btm - width) continue;  // inside
          for (int64_t c = 0; c < c_n; ++c) p[(c * h + y) * w + x] = T(color[size_t(c)]);
        }
    }
  });
  return out;
}

}  // namespace tg::vision
