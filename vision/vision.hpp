#pragma once
/// tg::vision: image files, bounding boxes, region pooling and saliency maps, after
/// torchvision.io and torchvision.ops. Everything takes and returns ordinary tensors:
///
///   tg::Tensor img = tg::vision::read_png("cat.png");              // [C, H, W] float32 in [0, 1]
///   tg::Tensor keep = tg::vision::nms(boxes, scores, 0.5);          // int64 indices
///   tg::Tensor crops = tg::vision::roi_align(features, rois, {7, 7}, 1.0 / 16, 2, true);
///   tg::Tensor cam = tg::vision::grad_cam(*net, *net->layer4, batch, 281);  // [N, H, W] in [0, 1]
#include <cstdint>
#include <string>
#include <vector>

#include "../autograd/tensor.hpp"
#include "../nn/functional.hpp"

namespace tg::nn {
class Module;
}

namespace tg::vision {

using nn::functional::IntList;

// ---- image files (libpng) ----

/// Reads a PNG file into [C, H, W] float32 in [0, 1]: C = 1 (gray), 2 (gray + alpha), 3 (RGB)
/// or 4 (RGBA), as the file stores it; palettes become RGB (RGBA with a transparency chunk),
/// bit depths below 8 are expanded, 16-bit samples are divided by 65535. A missing, truncated
/// or corrupt file throws tg::Error naming the path and libpng's complaint.
Tensor read_png(const std::string& path);

/// Writes img [C, H, W] (C = 1, 3 or 4; 2 = gray + alpha also works), floating, as an 8-bit PNG:
/// each value is clamped to [0, 1] and rounded to v * 255 (so read_png(write_png(x)) is exact
/// for multiples of 1/255). NaN, or a file that cannot be written, throws tg::Error.
void write_png(const std::string& path, const Tensor& img);

// ---- boxes (x1, y1, x2, y2), as torchvision.ops ----

/// Intersection over union of every pair: a [N, 4], b [M, 4] -> [N, M], as
/// torchvision.ops.box_iou. Differentiable (built from slice, maximum, minimum, clamp, mul, div).
Tensor box_iou(const Tensor& a, const Tensor& b);

/// Greedy non-maximum suppression, as torchvision.ops.nms: boxes [N, 4], scores [N] ->
/// int64 indices of the boxes kept, by decreasing score (ties: the lower index first). A box is
/// dropped when its IoU with a kept, higher-scoring box is greater than iou_threshold.
Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold);

// ---- region of interest pooling ----

/// Options of roi_align (torchvision.ops.roi_align's arguments and defaults).
class RoiAlignOptions {
 public:
  /// Output bins per box: {h, w}, or one value for both.
  explicit RoiAlignOptions(IntList output_size) : output_size_(std::move(output_size)) {}
  /// Box coordinates times spatial_scale are feature-map coordinates (1/16 for a stride-16 map).
  RoiAlignOptions& spatial_scale(double v) { spatial_scale_ = v; return *this; }
  /// Samples per bin along each axis; <= 0: adaptive, ceil(box size / output size).
  RoiAlignOptions& sampling_ratio(int64_t v) { sampling_ratio_ = v; return *this; }
  /// true: pixel centres at half-integers (shift boxes by -0.5), as Detectron2; false: the
  /// original Mask R-CNN behaviour (boxes at least 1 pixel wide).
  RoiAlignOptions& aligned(bool v) { aligned_ = v; return *this; }
  const IntList& output_size() const { return output_size_; }
  double spatial_scale() const { return spatial_scale_; }
  int64_t sampling_ratio() const { return sampling_ratio_; }
  bool aligned() const { return aligned_; }

 private:
  IntList output_size_;
  double spatial_scale_ = 1.0;
  int64_t sampling_ratio_ = -1;
  bool aligned_ = false;
};

/// Bilinearly sampled, averaged bins of each box: input [N, C, H, W], boxes [K, 5] rows
/// (image index, x1, y1, x2, y2) -> [K, C, out_h, out_w], as torchvision.ops.roi_align.
/// A composite of index_select, mul and add (no hand-written backward): differentiable in the
/// input, twice; boxes take no gradient (as in torchvision). The K * out_h * out_w * C samples of
/// each of the 4 * grid_h * grid_w taps per bin are materialised (and, under grad mode, kept
/// for backward).
Tensor roi_align(const Tensor& input, const Tensor& boxes, const RoiAlignOptions& o);
/// boxes as one [L_i, 4] tensor per image (torchvision's list form).
Tensor roi_align(const Tensor& input, const std::vector<Tensor>& boxes, const RoiAlignOptions& o);
/// torchvision's positional form: roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned).
Tensor roi_align(const Tensor& input, const Tensor& boxes, IntList output_size, double spatial_scale = 1.0,
                 int64_t sampling_ratio = -1, bool aligned = false);
Tensor roi_align(const Tensor& input, const std::vector<Tensor>& boxes, IntList output_size,
                 double spatial_scale = 1.0, int64_t sampling_ratio = -1, bool aligned = false);

// ---- saliency ----

/// Grad-CAM (Selvaraju et al. 2017): where in each input image the evidence for class_index is.
/// A forward hook on target_layer (which must be called through operator(), as Sequential does)
/// captures its output A [N, K, h, w]; with g = d(sum over the batch of scores[:, class_index]) / dA
/// (autograd::grad: no parameter's .grad() is touched), the map is relu(sum_k mean_hw(g_k) A_k),
/// bilinearly resized to the input's H x W (align_corners = false) and divided by its maximum per
/// image (an all-zero map stays zero). input [N, C, H, W]; model(input) must return [N, classes].
/// Returns [N, H, W] in [0, 1], off the tape. The hook is removed before returning (also on
/// error). The model runs in whatever mode it is in: call eval() first, as for any inference.
Tensor grad_cam(nn::Module& model, nn::Module& target_layer, const Tensor& input, int64_t class_index);

}  // namespace tg::vision
