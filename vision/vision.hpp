#pragma once
/// tg::vision: image files, bounding boxes, region pooling and saliency maps, after
/// torchvision.io and torchvision.ops. Everything takes and returns ordinary tensors:
///
///   tg::Tensor img = tg::vision::read_png("cat.png");              // [C, H, W] float32 in [0, 1]
///   tg::Tensor keep = tg::vision::nms(boxes, scores, 0.5);          // int64 indices
///   tg::Tensor crops = tg::vision::roi_align(features, rois, {7, 7}, 1.0 / 16, 2, true);
///   tg::Tensor cam = tg::vision::grad_cam(*net, *net->layer4, batch, 281);  // [N, H, W] in [0, 1]
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../autograd/arg.hpp"
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

/// Options of encode_boxes / decode_boxes: the weights (wx, wy, ww, wh) that scale the deltas
/// (torchvision's BoxCoder weights; Faster R-CNN's box head uses 10, 10, 5, 5) and the largest
/// dw, dh that decode_boxes exponentiates (torchvision's bbox_xform_clip, log(1000 / 16)).
class BoxCoderOptions {
  TG_ARG(double, clip) = std::log(1000.0 / 16.0);

 public:
  BoxCoderOptions() = default;
  BoxCoderOptions(double wx, double wy, double ww, double wh) : weights_{wx, wy, ww, wh} {}
  BoxCoderOptions& weights(double wx, double wy, double ww, double wh) {
    weights_ = {wx, wy, ww, wh};
    return *this;
  }
  const std::vector<double>& weights() const { return weights_; }

 private:
  std::vector<double> weights_{1.0, 1.0, 1.0, 1.0};
};

/// The R-CNN box-regression targets (Girshick et al. 2014, appendix C) of boxes [N, 4] relative
/// to reference boxes [N, 4] (proposals or anchors), row by row, both (x1, y1, x2, y2): with
/// widths w = x2 - x1, heights h = y2 - y1 and centres x1 + w / 2, y1 + h / 2,
///   dx = wx (gx - px) / pw,  dy = wy (gy - py) / ph,  dw = ww log(gw / pw),  dh = wh log(gh / ph).
/// Returns [N, 4] (dx, dy, dw, dh), as torchvision's BoxCoder.encode_single(boxes, reference).
/// A composite of slice, sub, div and log: differentiable in both arguments. Boxes of zero or
/// negative width or height give inf or NaN, as torchvision's.
Tensor encode_boxes(const Tensor& boxes, const Tensor& reference, const BoxCoderOptions& o = {});

/// The inverse of encode_boxes: deltas [N, 4] (dx, dy, dw, dh) applied to reference [N, 4] ->
/// boxes [N, 4] (x1, y1, x2, y2), with dw / ww and dh / wh clamped to at most o.clip() before exp,
/// as torchvision's BoxCoder.decode_single. Differentiable in the deltas (and the reference).
Tensor decode_boxes(const Tensor& deltas, const Tensor& reference, const BoxCoderOptions& o = {});

/// Boxes [N, 4] with x clamped to [0, width] and y to [0, height] (torchvision.ops.clip_boxes_to_image).
Tensor clip_boxes(const Tensor& boxes, double width, double height);

// ---- detection metrics ----

/// One image's detections: boxes [D, 4] (x1, y1, x2, y2), floating scores [D], int64 labels [D].
struct Detections {
  Tensor boxes, scores, labels;
};
/// One image's ground truth: boxes [G, 4], int64 labels [G].
struct GroundTruth {
  Tensor boxes, labels;
};

/// Average precision of one class over a set of images, the PASCAL VOC definition (the VOC2010+
/// devkit, VOCevaldet.m): every detection of that label, in all images, sorted by decreasing
/// score (a stable sort: ties keep image order, then the order within the image); each in turn
/// is compared with the image's ground-truth boxes of that label; the one of highest IoU (the
/// first on ties) is its match if the IoU is >= iou_threshold and that box is not yet matched
/// (a true positive, which marks it), otherwise the detection is a false positive (a duplicate
/// of a matched box is one). With recall and precision after each detection, precision is made
/// monotone (each value raised to the largest at any higher recall) and AP is the area under
/// that curve over every recall step: the all-points interpolation of VOC2010 onward, not the
/// 11-point one of VOC2007. IoU is that of box_iou (continuous coordinates: no "+ 1" pixel).
/// Returns NaN when the class has no ground truth, 0 when it has ground truth but no detection.
/// detections and truth hold one entry per image, in the same order. Throws tg::Error on
/// unequal lengths, bad shapes or dtypes, NaN scores or a threshold outside (0, 1].
double average_precision(const std::vector<Detections>& detections, const std::vector<GroundTruth>& truth,
                         int64_t label, double iou_threshold = 0.5);

/// Per-class VOC average precision and their mean (mAP).
struct MeanAveragePrecision {
  double map = 0;                       ///< mean of ap over the classes with ground truth (NaN if none has)
  std::vector<double> ap;               ///< per class; NaN for a class with no ground truth (skipped)
  std::vector<int64_t> num_truth;       ///< ground-truth boxes per class
  std::vector<int64_t> num_detections;  ///< detections per class
};

/// average_precision of every class 0 .. num_classes - 1 and their mean over the classes that
/// have ground truth (the VOC mAP; mAP@0.5 at the default threshold). Labels outside
/// [0, num_classes) throw tg::Error.
///
///   auto m = tg::vision::mean_average_precision(dets, truth, 10);   // m.map, m.ap[c]
MeanAveragePrecision mean_average_precision(const std::vector<Detections>& detections,
                                            const std::vector<GroundTruth>& truth, int64_t num_classes,
                                            double iou_threshold = 0.5);

/// A copy of image [C, H, W] (floating) with the outlines of boxes [K, 4] (x1, y1, x2, y2 in
/// pixels, x2 and y2 exclusive edges, as tg::data::Canvases gives) drawn in color (C values), each
/// `width` pixels thick inside its box. The box covers columns round(x1) .. round(x2) - 1 and rows
/// round(y1) .. round(y2) - 1; parts outside the image are not drawn (an edge outside it is not
/// moved in). Off the tape (the result takes no gradient). Bad shapes, a colour of the wrong
/// length, non-finite coordinates or width < 1 throw tg::Error.
Tensor draw_boxes(const Tensor& image, const Tensor& boxes, const std::vector<double>& color, int64_t width = 1);

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
