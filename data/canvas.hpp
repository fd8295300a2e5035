#pragma once
/// Canvases: several items of a classification dataset (Fashion-MNIST, say) pasted at random
/// places and sizes on an empty image, with what segmentation and detection need to learn from
/// them: a per-pixel label and one box and class per item. Canvas i depends only on the seed and
/// i (not on how many canvases are made), so the same seed gives the same canvases anywhere.
///
///   tg::data::MNIST train;                                         // 28 x 28 items
///   tg::data::Canvases canvases(train, 2000, tg::data::CanvasOptions().size(64).seed(1));
///   auto [image, mask] = canvases.get(0);   // float32 [1, 64, 64], int64 [64, 64]: 0 or class + 1
///   tg::Tensor boxes = canvases.boxes(0);   // float32 [K, 4] (x1, y1, x2, y2), pixel edges
///   tg::Tensor labels = canvases.labels(0); // int64 [K], the items' classes
///
/// Each item is resized (bilinear, align_corners = false) from its h x w to round(h * scale) x
/// round(w * scale), scale uniform in [min_scale, max_scale], and placed at a uniform position
/// inside the canvas; a placement whose box overlaps an earlier item's by more than max_iou is
/// drawn again (up to 100 tries; then the item is left out, so a canvas can hold fewer than
/// min_items when they cannot fit). The image is the pixel-wise maximum of the items. The item's
/// own pixels (value >= threshold after resizing) are its foreground: they set the mask (later
/// items over earlier ones) and the box is their tight bounding box, so every box holds exactly
/// its item's foreground and every labelled pixel lies in a box of its class.
#include <cstdint>
#include <vector>

#include "../autograd/arg.hpp"
#include "dataset.hpp"

namespace tg::data {

class CanvasOptions {
  /// Canvas side in pixels (square canvases).
  TG_ARG(int64_t, size) = 64;
  /// Largest IoU allowed between an item's placement box and an earlier one's (0: no overlap).
  TG_ARG(double, max_iou) = 0.1;
  /// A resized item pixel >= threshold is the item's (mask and box).
  TG_ARG(double, threshold) = 0.2;
  TG_ARG(uint64_t, seed) = 0;

 public:
  /// Items per canvas, uniform in [min_items, max_items].
  CanvasOptions& items(int64_t min_items, int64_t max_items) {
    min_items_ = min_items;
    max_items_ = max_items;
    return *this;
  }
  /// Item scale, uniform in [min_scale, max_scale] (1 keeps the source's 28 x 28).
  CanvasOptions& scale(double min_scale, double max_scale) {
    min_scale_ = min_scale;
    max_scale_ = max_scale;
    return *this;
  }
  int64_t min_items() const { return min_items_; }
  int64_t max_items() const { return max_items_; }
  double min_scale() const { return min_scale_; }
  double max_scale() const { return max_scale_; }

 private:
  int64_t min_items_ = 2, max_items_ = 4;
  double min_scale_ = 1.0, max_scale_ = 1.0;
};

class Canvases : public Dataset {
 public:
  /// Makes `count` canvases from `source`, whose samples must be {float [1, h, w] image in
  /// [0, 1], integer 0-d label} (MNIST's). Throws tg::Error naming what is wrong with the
  /// options or with the source's samples.
  Canvases(const Dataset& source, int64_t count, const CanvasOptions& options = {});

  int64_t size() const override { return count_; }
  /// {image float32 [1, S, S], mask int64 [S, S]: 0 background, 1 + the item's class}.
  Example get(int64_t index) const override;
  Example get_batch(const std::vector<int64_t>& indices) const override;

  /// All canvases: float32 [N, 1, S, S] and int64 [N, S, S].
  const Tensor& images() const { return images_; }
  const Tensor& masks() const { return masks_; }
  /// Canvas i's items: boxes float32 [K, 4] (x1, y1, x2, y2 in pixels, x2/y2 exclusive edges),
  /// labels int64 [K] (the source's labels), sources int64 [K] (the source samples' indices).
  const Tensor& boxes(int64_t index) const;
  const Tensor& labels(int64_t index) const;
  const Tensor& sources(int64_t index) const;
  const CanvasOptions& options() const { return options_; }

 private:
  int64_t check_index(int64_t index) const;

  CanvasOptions options_;
  int64_t count_ = 0;
  Tensor images_, masks_;
  std::vector<Tensor> boxes_, labels_, sources_;
};

}  // namespace tg::data
