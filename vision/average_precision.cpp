// PASCAL VOC average precision (the VOC2010+ devkit's VOCevaldet.m and VOCap.m), in double
// precision over plain vectors: matching is a sequential greedy loop, not a tensor computation.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "vision.hpp"

namespace tg::vision {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string describe(const Tensor& t) {
  return t.defined() ? fmt::format("{} {}", dtype_name(t.dtype()), shape_str(t.shape())) : "undefined";
}

struct Box {
  double x1, y1, x2, y2;
};

double iou(const Box& a, const Box& b) {
  const double w = std::max(0.0, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const double h = std::max(0.0, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const double inter = w * h;
  const double uni = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return uni > 0 ? inter / uni : 0.0;
}

// One image's boxes, scores and labels as vectors, validated.
struct Image {
  std::vector<Box> boxes;
  std::vector<double> scores;  // empty for ground truth
  std::vector<int64_t> labels;
};

std::vector<Box> read_boxes(const char* what, size_t image, const Tensor& t) {
  if (!t.defined() || t.dim() != 2 || t.size(1) != 4 || !is_floating(t.dtype()))
    throw Error(fmt::format("average_precision: expected the {} boxes of image {} as a floating [N, 4] tensor, got {}",
                            what, image, describe(t)));
  const std::vector<double> v = t.contiguous().to_vector<double>();
  std::vector<Box> out;
  for (size_t i = 0; i + 3 < v.size(); i += 4) {
    if (!std::isfinite(v[i] + v[i + 1] + v[i + 2] + v[i + 3]))
      throw Error(fmt::format("average_precision: {} box {} of image {} has a non-finite coordinate", what, i / 4, image));
    out.push_back({v[i], v[i + 1], v[i + 2], v[i + 3]});
  }
  return out;
}

std::vector<int64_t> read_labels(const char* what, size_t image, const Tensor& t, int64_t n) {
  if (!t.defined() || t.dim() != 1 || t.size(0) != n || t.dtype() != kInt64)
    throw Error(fmt::format("average_precision: expected the {} labels of image {} as int64 [{}], got {}", what, image,
                            n, describe(t)));
  return t.contiguous().to_vector<int64_t>();
}

std::vector<Image> read_detections(const std::vector<Detections>& d) {
  std::vector<Image> out(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    out[i].boxes = read_boxes("detected", i, d[i].boxes);
    const int64_t n = int64_t(out[i].boxes.size());
    if (!d[i].scores.defined() || d[i].scores.dim() != 1 || d[i].scores.size(0) != n ||
        !is_floating(d[i].scores.dtype()))
      throw Error(fmt::format("average_precision: expected the scores of image {} as floating [{}], got {}", i, n,
                              describe(d[i].scores)));
    out[i].scores = d[i].scores.contiguous().to_vector<double>();
    for (size_t k = 0; k < out[i].scores.size(); ++k)
      if (std::isnan(out[i].scores[k]))
        throw Error(fmt::format("average_precision: the score of detection {} of image {} is NaN", k, i));
    out[i].labels = read_labels("detected", i, d[i].labels, n);
  }
  return out;
}

std::vector<Image> read_truth(const std::vector<GroundTruth>& g) {
  std::vector<Image> out(g.size());
  for (size_t i = 0; i < g.size(); ++i) {
    out[i].boxes = read_boxes("ground-truth", i, g[i].boxes);
    out[i].labels = read_labels("ground-truth", i, g[i].labels, int64_t(out[i].boxes.size()));
  }
  return out;
}

void check_common(size_t n_det, size_t n_truth, double iou_threshold) {
  if (n_det != n_truth)
    throw Error(fmt::format("average_precision: expected detections and ground truth for the same images, got {} and {}",
                            n_det, n_truth));
  if (!(iou_threshold > 0 && iou_threshold <= 1))
    throw Error(fmt::format("average_precision: expected an IoU threshold in (0, 1], got {}", iou_threshold));
}

// AP of one label over validated images; NaN without ground truth of that label.
double ap_of(const std::vector<Image>& det, const std::vector<Image>& truth, int64_t label, double threshold,
             int64_t* num_truth, int64_t* num_det) {
  std::vector<std::vector<Box>> gt(truth.size());
  int64_t npos = 0;
  for (size_t i = 0; i < truth.size(); ++i)
    for (size_t k = 0; k < truth[i].boxes.size(); ++k)
      if (truth[i].labels[k] == label) gt[i].push_back(truth[i].boxes[k]), ++npos;
  struct Det {
    size_t image;
    Box box;
    double score;
  };
  std::vector<Det> ds;
  for (size_t i = 0; i < det.size(); ++i)
    for (size_t k = 0; k < det[i].boxes.size(); ++k)
      if (det[i].labels[k] == label) ds.push_back({i, det[i].boxes[k], det[i].scores[k]});
  if (num_truth) *num_truth = npos;
  if (num_det) *num_det = int64_t(ds.size());
  if (npos == 0) return kNaN;
  std::stable_sort(ds.begin(), ds.end(), [](const Det& a, const Det& b) { return a.score > b.score; });

  std::vector<std::vector<char>> matched(gt.size());
  for (size_t i = 0; i < gt.size(); ++i) matched[i].assign(gt[i].size(), 0);
  std::vector<double> recall, precision;
  double tp = 0, fp = 0;
  for (const Det& d : ds) {
    double best = -1;
    size_t best_k = 0;
    for (size_t k = 0; k < gt[d.image].size(); ++k) {
      const double o = iou(d.box, gt[d.image][k]);
      if (o > best) best = o, best_k = k;
    }
    if (best >= threshold && !matched[d.image][best_k]) {
      matched[d.image][best_k] = 1;
      tp += 1;
    } else {
      fp += 1;
    }
    recall.push_back(tp / double(npos));
    precision.push_back(tp / (tp + fp));
  }
  // VOCap.m: mrec = [0, rec, 1], mpre = [0, prec, 0]; precision made non-increasing from the
  // right; the sum of (recall step) x (precision after it).
  std::vector<double> mrec{0.0}, mpre{0.0};
  mrec.insert(mrec.end(), recall.begin(), recall.end());
  mpre.insert(mpre.end(), precision.begin(), precision.end());
  mrec.push_back(1.0);
  mpre.push_back(0.0);
  for (size_t i = mpre.size() - 1; i > 0; --i) mpre[i - 1] = std::max(mpre[i - 1], mpre[i]);
  double ap = 0;
  for (size_t i = 1; i < mrec.size(); ++i)
    if (mrec[i] != mrec[i - 1]) ap += (mrec[i] - mrec[i - 1]) * mpre[i];
  return ap;
}

}  // namespace

double average_precision(const std::vector<Detections>& detections, const std::vector<GroundTruth>& truth,
                         int64_t label, double iou_threshold) {
  check_common(detections.size(), truth.size(), iou_threshold);
  return ap_of(read_detections(detections), read_truth(truth), label, iou_threshold, nullptr, nullptr);
}

MeanAveragePrecision mean_average_precision(const std::vector<Detections>& detections,
                                            const std::vector<GroundTruth>& truth, int64_t num_classes,
                                            double iou_threshold) {
  check_common(detections.size(), truth.size(), iou_threshold);
  if (num_classes < 1)
    throw Error(fmt::format("mean_average_precision: expected a positive number of classes, got {}", num_classes));
  const std::vector<Image> det = read_detections(detections), gt = read_truth(truth);
  for (const auto* set : {&det, &gt})
    for (size_t i = 0; i < set->size(); ++i)
      for (int64_t l : (*set)[i].labels)
        if (l < 0 || l >= num_classes)
          throw Error(fmt::format("mean_average_precision: {} label {} in image {}, expected one in [0, {})",
                                  set == &det ? "detected" : "ground-truth", l, i, num_classes));
  MeanAveragePrecision m;
  m.ap.resize(size_t(num_classes));
  m.num_truth.resize(size_t(num_classes));
  m.num_detections.resize(size_t(num_classes));
  double sum = 0;
  int64_t counted = 0;
  for (int64_t c = 0; c < num_classes; ++c) {
    m.ap[size_t(c)] = ap_of(det, gt, c, iou_threshold, &m.num_truth[size_t(c)], &m.num_detections[size_t(c)]);
    if (!std::isnan(m.ap[size_t(c)])) sum += m.ap[size_t(c)], ++counted;
  }
  m.map = counted > 0 ? sum / double(counted) : kNaN;
  return m;
}

}  // namespace tg::vision
