#include "canvas.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "random.hpp"

namespace tg::data {

namespace {

struct Box {
  double x1, y1, x2, y2;
};

double iou(const Box& a, const Box& b) {
  double w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1), h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (w <= 0 || h <= 0) return 0.0;
  double inter = w * h;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
}

// Bilinear resize of a [h, w] image to [oh, ow], align_corners = false (PyTorch's interpolate):
// source coordinate (o + 0.5) * in / out - 0.5, clamped at 0, neighbours clamped to the edge.
std::vector<float> resize(const float* src, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  std::vector<float> out(size_t(oh * ow));
  auto axis = [](int64_t o, int64_t in, int64_t out_n, int64_t& i0, int64_t& i1, double& f) {
    double s = std::max((double(o) + 0.5) * double(in) / double(out_n) - 0.5, 0.0);
    i0 = std::min(int64_t(s), in - 1);
    i1 = std::min(i0 + 1, in - 1);
    f = s - double(i0);
  };
  for (int64_t y = 0; y < oh; ++y) {
    int64_t y0, y1;
    double fy;
    axis(y, h, oh, y0, y1, fy);
    for (int64_t x = 0; x < ow; ++x) {
      int64_t x0, x1;
      double fx;
      axis(x, w, ow, x0, x1, fx);
      double top = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx;
      double bottom = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx;
      out[size_t(y * ow + x)] = float(top * (1 - fy) + bottom * fy);
    }
  }
  return out;
}

void check_options(const CanvasOptions& o, int64_t count) {
  auto fail = [](const std::string& what) { throw Error("Canvases: " + what); };
  if (count < 0) fail(fmt::format("count must be >= 0, got {}", count));
  if (o.size() < 1) fail(fmt::format("size must be >= 1, got {}", o.size()));
  if (o.min_items() < 0 || o.max_items() < o.min_items())
    fail(fmt::format("items must satisfy 0 <= min_items <= max_items, got [{}, {}]", o.min_items(), o.max_items()));
  if (!(o.min_scale() > 0) || !(o.max_scale() >= o.min_scale()))
    fail(fmt::format("scale must satisfy 0 < min_scale <= max_scale, got [{}, {}]", o.min_scale(), o.max_scale()));
  if (!(o.max_iou() >= 0 && o.max_iou() <= 1)) fail(fmt::format("max_iou must be in [0, 1], got {}", o.max_iou()));
  if (!(o.threshold() > 0 && o.threshold() <= 1))
    fail(fmt::format("threshold must be in (0, 1], got {}", o.threshold()));
}

}  // namespace

Canvases::Canvases(const Dataset& source, int64_t count, const CanvasOptions& options)
    : options_(options), count_(count) {
  check_options(options, count);
  const int64_t S = options.size();
  if (count > 0 && options.max_items() > 0 && source.size() == 0)
    throw Error("Canvases: the source dataset is empty");
  images_ = zeros({count, 1, S, S});
  masks_ = zeros({count, S, S}, TensorOptions(kInt64));
  float* img_all = images_.data_ptr<float>();
  int64_t* mask_all = masks_.data_ptr<int64_t>();
  boxes_.reserve(size_t(count));
  labels_.reserve(size_t(count));
  sources_.reserve(size_t(count));

  for (int64_t i = 0; i < count; ++i) {
    std::mt19937_64 gen(mix_seed(options.seed(), uint64_t(i)));
    float* img = img_all + i * S * S;
    int64_t* mask = mask_all + i * S * S;
    std::vector<Box> placed;
    std::vector<double> box_values, label_values, source_values;
    int64_t items = uniform_int(gen, options.min_items(), options.max_items());
    for (int64_t k = 0; k < items; ++k) {
      int64_t index = uniform_int(gen, 0, source.size() - 1);
      double scale = uniform_real(gen, options.min_scale(), options.max_scale());
      Example item = source.get(index);
      if (item.data.dim() != 3 || item.data.size(0) != 1 || !is_floating(item.data.dtype()))
        throw Error(fmt::format("Canvases: source sample {} must be a floating [1, h, w] image, got {} {}", index,
                                dtype_name(item.data.dtype()), shape_str(item.data.shape())));
      if (item.target.numel() != 1 || is_floating(item.target.dtype()))
        throw Error(fmt::format("Canvases: source sample {} must have one integer label, got {} {}", index,
                                dtype_name(item.target.dtype()), shape_str(item.target.shape())));
      int64_t label = item.target.to(kInt64).data_ptr<int64_t>()[0];
      int64_t h = item.data.size(1), w = item.data.size(2);
      int64_t oh = std::max<int64_t>(1, std::llround(double(h) * scale));
      int64_t ow = std::max<int64_t>(1, std::llround(double(w) * scale));
      if (oh > S || ow > S)
        throw Error(fmt::format("Canvases: an item scaled by {} is {}x{}, larger than the {}x{} canvas", scale, oh, ow,
                                S, S));
      // Draw a placement that does not overlap an earlier one by more than max_iou.
      bool found = false;
      int64_t px = 0, py = 0;
      for (int attempt = 0; attempt < 100 && !found; ++attempt) {
        px = uniform_int(gen, 0, S - ow);
        py = uniform_int(gen, 0, S - oh);
        Box b{double(px), double(py), double(px + ow), double(py + oh)};
        found = std::all_of(placed.begin(), placed.end(),
                            [&](const Box& p) { return iou(b, p) <= options.max_iou(); });
      }
      if (!found) continue;
      placed.push_back({double(px), double(py), double(px + ow), double(py + oh)});
      Tensor pixels = item.data.to(kFloat32);
      std::vector<float> r = resize(pixels.data_ptr<float>(), h, w, oh, ow);
      int64_t x1 = S, y1 = S, x2 = -1, y2 = -1;
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t x = 0; x < ow; ++x) {
          float v = std::clamp(r[size_t(y * ow + x)], 0.0f, 1.0f);
          int64_t at = (py + y) * S + (px + x);
          img[at] = std::max(img[at], v);
          if (v >= options.threshold()) {
            mask[at] = label + 1;
            x1 = std::min(x1, px + x), y1 = std::min(y1, py + y);
            x2 = std::max(x2, px + x), y2 = std::max(y2, py + y);
          }
        }
      if (x2 < 0) continue;  // nothing of the item reached the threshold: no box (and no mask pixel)
      box_values.insert(box_values.end(), {double(x1), double(y1), double(x2 + 1), double(y2 + 1)});
      label_values.push_back(double(label));
      source_values.push_back(double(index));
    }
    int64_t n = int64_t(label_values.size());
    boxes_.push_back(tensor(box_values, {n, 4}, kFloat32));
    labels_.push_back(tensor(label_values, {n}, kInt64));
    sources_.push_back(tensor(source_values, {n}, kInt64));
  }
}

int64_t Canvases::check_index(int64_t index) const {
  if (index < 0 || index >= count_)
    throw Error(fmt::format("Canvases: index {} is out of range for {} canvases", index, count_));
  return index;
}

Example Canvases::get(int64_t index) const {
  Tensor i = scalar_tensor(double(check_index(index)), kInt64).reshape({1});
  return {images_.index_select(0, i).reshape({1, options_.size(), options_.size()}),
          masks_.index_select(0, i).reshape({options_.size(), options_.size()})};
}

Example Canvases::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<double> values;
  values.reserve(indices.size());
  for (int64_t i : indices) values.push_back(double(check_index(i)));
  Tensor idx = tensor(values, {int64_t(values.size())}, kInt64);
  return {images_.index_select(0, idx), masks_.index_select(0, idx)};
}

const Tensor& Canvases::boxes(int64_t index) const { return boxes_[size_t(check_index(index))]; }
const Tensor& Canvases::labels(int64_t index) const { return labels_[size_t(check_index(index))]; }
const Tensor& Canvases::sources(int64_t index) const { return sources_[size_t(check_index(index))]; }

}  // namespace tg::data
