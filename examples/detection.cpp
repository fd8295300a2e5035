// tapegrad-detection: object detection on canvases of Fashion-MNIST items, the lecture's
// pipeline in its Fast R-CNN form (Girshick 2015): object proposals, one convnet pass per image,
// each proposal's features pooled from the shared feature map (roi_align), a classification head
// (10 classes + background) and a class-specific box-regression head, per-class non-maximum
// suppression, and the PASCAL VOC mAP at IoU 0.5 on test canvases.
//
//   tapegrad-detection --data /usr/share/datasets/fashion-mnist --out out/detection
//
// Proposals are sliding windows: five sizes (0.19 to 0.75 of the canvas side, a factor sqrt(2)
// apart) times three aspect ratios (w / h = 1/2, 1, 2), at a stride of a quarter of the size,
// the same for every canvas. Training samples are proposals (and the true boxes themselves)
// labelled by their best IoU with a true box: >= --fg-iou its class, < --bg-iou background, in
// between unused; each canvas contributes --rois of them, at most --fg-fraction foreground (as
// R-CNN and Fast R-CNN sample). Loss: cross-entropy over 11 classes plus smooth L1 (beta 1/9) on
// the foreground rows' deltas for their true class (tg::vision::encode_boxes, weights 10, 10, 5,
// 5), summed and divided by the sampled rows, as torchvision's fastrcnn_loss. At test time every
// proposal is scored, its box decoded for each class, boxes below --score-threshold dropped,
// tg::vision::nms per class at --nms, and the --max-detections best kept per canvas.
//
// Writes metrics.csv (the training log), ap.csv (AP per class), detection.safetensors and
// detection.png (true boxes green, detections with --draw-score or more red with class and score).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <tapegrad.hpp>

#include "text.hpp"

namespace {

namespace fs = std::filesystem;
namespace F = tg::nn::functional;
namespace V = tg::vision;
namespace nn = tg::nn;
using tg::Tensor;
using Clock = std::chrono::steady_clock;

constexpr int64_t kClasses = 10;  // Fashion-MNIST's; label 0 of the classifier is background
constexpr int64_t kPool = 4;      // roi_align bins per side
constexpr double kStride = 4;     // the feature map's stride (two 2 x 2 max pools)
constexpr double kBeta = 1.0 / 9;  // smooth L1's beta (torchvision's Fast R-CNN head)

struct Args {
  std::string data = tg::data::MNIST::kDefaultRoot, out = "out/detection";
  std::string font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
  int64_t train_canvases = 2000, test_canvases = 500, size = 64, min_items = 1, max_items = 4;
  double min_scale = 0.7, max_scale = 1.6;
  int64_t epochs = 3, batch = 8, rois = 64, max_steps = 0, threads = 2, seed = 1, log_every = 25;
  int64_t draw = 8, max_detections = 20;
  double lr = 1e-3, fg_fraction = 0.25, fg_iou = 0.5, bg_iou = 0.3, nms = 0.3, score_threshold = 0.05;
  double draw_score = 0.5;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const V::BoxCoderOptions& coder() {
  static const V::BoxCoderOptions o(10, 10, 5, 5);
  return o;
}

// Sliding windows [P, 4] over an S x S canvas, (x1, y1, x2, y2) inside it.
Tensor sliding_windows(int64_t side) {
  const double s_side = double(side);
  std::vector<double> v;
  for (double rel : {0.1875, 0.265, 0.375, 0.53, 0.75})
    for (double aspect : {0.5, 1.0, 2.0}) {
      const double size = rel * s_side, w = size * std::sqrt(aspect), h = size / std::sqrt(aspect);
      if (w > s_side || h > s_side) continue;
      const double step = std::max(2.0, size / 4);
      for (double y = 0; y + h <= s_side + 1e-9; y += step)
        for (double x = 0; x + w <= s_side + 1e-9; x += step) v.insert(v.end(), {x, y, x + w, y + h});
    }
  return tg::tensor(v, {int64_t(v.size() / 4), 4}, tg::kFloat32);
}

// The detector: a shared conv feature map (stride 4), roi_align of each proposal, two fully
// connected layers, and the two heads.
struct FastRCNN : nn::Module {
  std::shared_ptr<nn::Sequential> backbone, head;
  std::shared_ptr<nn::Linear> cls, box;
  FastRCNN() : nn::Module("FastRCNN") {
    backbone = register_module(
        "backbone",
        nn::Sequential{nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::BatchNorm2d(32), nn::ReLU(),
                       nn::MaxPool2d(2),  //
                       nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::BatchNorm2d(64), nn::ReLU(),
                       nn::MaxPool2d(2),  //
                       nn::Conv2d(nn::Conv2dOptions(64, 64, 3).padding(1)), nn::BatchNorm2d(64), nn::ReLU()});
    head = register_module("head", nn::Sequential{nn::Flatten(), nn::Linear(64 * kPool * kPool, 256), nn::ReLU(),
                                                  nn::Linear(256, 256), nn::ReLU()});
    cls = register_module("cls", nn::Linear(256, kClasses + 1));
    box = register_module("box", nn::Linear(256, 4 * kClasses));
  }
  // {images [N, 1, S, S], rois [K, 5] (image, x1, y1, x2, y2)} -> {logits [K, 11], deltas [K, 40]}
  std::vector<Tensor> forward_list(const std::vector<Tensor>& in) override {
    if (in.size() != 2)
      throw tg::Error(fmt::format("FastRCNN: expected {{images, rois}}, got {} inputs", in.size()));
    const Tensor features = (*backbone)(in[0]);
    const Tensor pooled = V::roi_align(
        features, in[1], V::RoiAlignOptions({kPool, kPool}).spatial_scale(1.0 / kStride).sampling_ratio(2).aligned(true));
    const Tensor h = (*head)(pooled);
    return {(*cls)(h), (*box)(h)};
  }
};

// One training canvas's candidate rows (the proposals, then its true boxes): foreground rows
// with their matched true box, and background rows.
struct Assignment {
  std::vector<int64_t> fg, fg_match, bg;
};

Assignment assign(const Tensor& proposals, const Tensor& truth, double fg_iou, double bg_iou) {
  Assignment a;
  const int64_t p = proposals.size(0), k = truth.size(0);
  if (k == 0) {
    a.bg.resize(size_t(p));
    std::iota(a.bg.begin(), a.bg.end(), int64_t(0));
    return a;
  }
  const std::vector<float> iou = V::box_iou(tg::cat({proposals, truth}, 0), truth).to_vector<float>();
  for (int64_t r = 0; r < p + k; ++r) {
    const float* row = iou.data() + r * k;
    const int64_t best = int64_t(std::max_element(row, row + k) - row);
    if (row[best] >= fg_iou) {
      a.fg.push_back(r);
      a.fg_match.push_back(best);
    } else if (row[best] < bg_iou && r < p) {
      a.bg.push_back(r);
    }
  }
  return a;
}

// n distinct draws from [0, size) (all of them when n >= size).
std::vector<int64_t> sample(int64_t size, int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> idx(static_cast<size_t>(size));
  std::iota(idx.begin(), idx.end(), int64_t(0));
  n = std::min(n, size);
  for (int64_t i = 0; i < n; ++i)
    std::swap(idx[size_t(i)], idx[size_t(std::uniform_int_distribution<int64_t>(i, size - 1)(rng))]);
  idx.resize(size_t(n));
  return idx;
}

// Per-class thresholding and NMS of one canvas's scored proposals, the best `keep` overall.
V::Detections postprocess(const std::vector<float>& probs, const Tensor& deltas, const Tensor& proposals,
                          bool regress, const Args& a) {
  const int64_t p = proposals.size(0);
  std::vector<double> boxes, scores, labels;
  for (int64_t c = 0; c < kClasses; ++c) {
    std::vector<double> idx;
    for (int64_t r = 0; r < p; ++r)
      if (probs[size_t(r * (kClasses + 1) + c + 1)] > a.score_threshold) idx.push_back(double(r));
    if (idx.empty()) continue;
    const Tensor sel = tg::tensor(idx, {int64_t(idx.size())}, tg::kInt64);
    const Tensor ref = tg::index_select(proposals, 0, sel);
    Tensor b = ref;
    if (regress)
      b = V::clip_boxes(V::decode_boxes(tg::index_select(tg::slice(deltas, 1, 4 * c, 4 * c + 4), 0, sel), ref, coder()),
                        double(a.size), double(a.size));
    std::vector<double> s(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) s[i] = probs[size_t(int64_t(idx[i]) * (kClasses + 1) + c + 1)];
    const Tensor st = tg::tensor(s, {int64_t(s.size())}, tg::kFloat32);
    const std::vector<int64_t> keep = V::nms(b, st, a.nms).to_vector<int64_t>();
    const std::vector<float> bv = b.contiguous().to_vector<float>();
    for (int64_t k : keep) {
      boxes.insert(boxes.end(), bv.begin() + 4 * k, bv.begin() + 4 * k + 4);
      scores.push_back(s[size_t(k)]);
      labels.push_back(double(c));
    }
  }
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return scores[i] > scores[j]; });
  order.resize(std::min(order.size(), size_t(a.max_detections)));
  std::vector<double> ob, os, ol;
  for (size_t i : order) {
    ob.insert(ob.end(), boxes.begin() + long(4 * i), boxes.begin() + long(4 * i + 4));
    os.push_back(scores[i]);
    ol.push_back(labels[i]);
  }
  const int64_t n = int64_t(order.size());
  return {tg::tensor(ob, {n, 4}, tg::kFloat32), tg::tensor(os, {n}, tg::kFloat32), tg::tensor(ol, {n}, tg::kInt64)};
}

// The first canvases 4x enlarged, true boxes in green, detections with score >= draw_score in
// red with "class score" above them; 4 columns.
void write_picture(const std::string& path, const tg::data::Canvases& canvases, const std::vector<V::Detections>& det,
                   const Args& a) {
  const int64_t n = std::min<int64_t>(a.draw, int64_t(det.size())), zoom = 4, cell = a.size * zoom, gap = 6;
  const int64_t cols = std::min<int64_t>(4, n), rows = (n + cols - 1) / cols;
  const int64_t mw = cols * cell + (cols + 1) * gap, mh = rows * cell + (rows + 1) * gap;
  Tensor montage = tg::full({3, mh, mw}, 0.25);
  float* m = montage.data_ptr<float>();
  const examples::Font font(a.font, "tapegrad-detection");
  const auto& names = tg::data::fashion_mnist_classes();
  const float red[3] = {1.0f, 0.25f, 0.25f};
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> src = canvases.images().narrow(0, i, 1).contiguous().to_vector<float>();
    std::vector<double> big(size_t(3 * cell * cell));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < cell; ++y)
        for (int64_t x = 0; x < cell; ++x)
          big[size_t((c * cell + y) * cell + x)] = src[size_t((y / zoom) * a.size + x / zoom)];
    Tensor img = tg::tensor(big, {3, cell, cell}, tg::kFloat32);
    img = V::draw_boxes(img, canvases.boxes(i) * double(zoom), {0.2, 0.9, 0.2}, 2);
    const std::vector<float> sc = det[size_t(i)].scores.to_vector<float>();
    std::vector<int64_t> shown;
    for (size_t k = 0; k < sc.size(); ++k)
      if (sc[k] >= a.draw_score) shown.push_back(int64_t(k));
    const Tensor idx = tg::tensor(std::vector<double>(shown.begin(), shown.end()), {int64_t(shown.size())}, tg::kInt64);
    const Tensor shown_boxes = tg::index_select(det[size_t(i)].boxes, 0, idx) * double(zoom);
    img = V::draw_boxes(img, shown_boxes, {red[0], red[1], red[2]}, 2);
    const std::vector<float> bv = shown_boxes.contiguous().to_vector<float>();
    const std::vector<int64_t> lv = det[size_t(i)].labels.to_vector<int64_t>();
    for (size_t k = 0; k < shown.size(); ++k) {
      const int y_text = std::max(10, int(bv[4 * k + 1]) - 2);
      font.draw(img, fmt::format("{} {:.2f}", names[size_t(lv[size_t(shown[k])])], sc[size_t(shown[k])]),
                int(bv[4 * k]), y_text, 11, red);
    }
    const int64_t ox = gap + (i % cols) * (cell + gap), oy = gap + (i / cols) * (cell + gap);
    const float* p = img.data_ptr<float>();
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < cell; ++y)
        std::copy_n(p + (c * cell + y) * cell, cell, m + (c * mh + oy + y) * mw + ox);
  }
  V::write_png(path, montage);
}

// The flags that must agree with each other: "" or what is wrong.
std::string check_flags(const Args& a) {
  if (a.min_items > a.max_items) return fmt::format("--min-items ({}) is above --max-items ({})", a.min_items, a.max_items);
  if (a.min_scale > a.max_scale) return fmt::format("--min-scale ({}) is above --max-scale ({})", a.min_scale, a.max_scale);
  if (a.bg_iou > a.fg_iou) return fmt::format("--bg-iou ({}) is above --fg-iou ({})", a.bg_iou, a.fg_iou);
  return "";
}

int run(const Args& a) {
  tg::set_num_threads(int(a.threads));
  tg::manual_seed(uint64_t(a.seed));
  const auto t_start = Clock::now();

  // ---- data ----
  const tg::data::MNIST train_items(a.data, tg::data::Split::Train), test_items(a.data, tg::data::Split::Test);
  auto options = [&](uint64_t seed) {
    return tg::data::CanvasOptions()
        .size(a.size)
        .items(a.min_items, a.max_items)
        .scale(a.min_scale, a.max_scale)
        .seed(seed);
  };
  const tg::data::Canvases train(train_items, a.train_canvases, options(uint64_t(a.seed)));
  const tg::data::Canvases test(test_items, a.test_canvases, options(uint64_t(a.seed) + 1000003));
  int64_t train_objects = 0, test_objects = 0;
  for (int64_t i = 0; i < train.size(); ++i) train_objects += train.boxes(i).size(0);
  for (int64_t i = 0; i < test.size(); ++i) test_objects += test.boxes(i).size(0);
  fmt::print("data: {} train canvases ({} objects), {} test canvases ({} objects), {} x {}, items x{}-{}\n",
             train.size(), train_objects, test.size(), test_objects, a.size, a.size, a.min_scale, a.max_scale);

  const Tensor proposals = sliding_windows(a.size);
  const int64_t n_prop = proposals.size(0);
  {
    int64_t covered = 0;
    for (int64_t i = 0; i < test.size(); ++i) {
      if (test.boxes(i).size(0) == 0) continue;
      const std::vector<float> best = tg::max(V::box_iou(test.boxes(i), proposals), {1}).to_vector<float>();
      for (float b : best) covered += b >= 0.5f;
    }
    fmt::print("proposals: {} sliding windows per canvas (5 sizes x 3 aspect ratios); {:.3f} of the test objects "
               "have one at IoU >= 0.5\n",
               n_prop, double(covered) / double(std::max<int64_t>(1, test_objects)));
  }
  std::vector<Assignment> assignments;
  int64_t fg_total = 0;
  for (int64_t i = 0; i < train.size(); ++i) {
    assignments.push_back(assign(proposals, train.boxes(i), a.fg_iou, a.bg_iou));
    fg_total += int64_t(assignments.back().fg.size());
  }
  fmt::print("training rows: {:.1f} foreground candidates per canvas (IoU >= {}), background below IoU {}\n",
             double(fg_total) / double(std::max<int64_t>(1, train.size())), a.fg_iou, a.bg_iou);

  // ---- model ----
  auto model = std::make_shared<FastRCNN>();
  int64_t params = 0;
  for (const Tensor& p : model->parameters()) params += p.numel();
  fmt::print("model: conv 32-64-64 (stride 4) -> roi_align {}x{} -> fc 256-256 -> cls {} + box {}; {} parameters\n",
             kPool, kPool, kClasses + 1, 4 * kClasses, params);

  // ---- training ----
  tg::optim::Adam opt(model->parameters(), tg::optim::AdamOptions(a.lr));
  fs::create_directories(a.out);
  std::ofstream log(fs::path(a.out) / "metrics.csv");
  log << "step,epoch,loss,cls_loss,box_loss,fg_accuracy,seconds\n";
  std::mt19937_64 rng(uint64_t(a.seed));
  const std::vector<float> pv = proposals.to_vector<float>();
  const auto t_train = Clock::now();
  int64_t step = 0;
  double r_loss = 0, r_cls = 0, r_box = 0;
  int64_t r_n = 0, r_fg = 0, r_fg_right = 0;
  bool done = false;
  const int64_t fg_per_canvas = int64_t(std::lround(a.fg_fraction * double(a.rois)));
  for (int64_t epoch = 1; epoch <= a.epochs && !done; ++epoch) {
    model->train();
    std::vector<int64_t> order = sample(train.size(), train.size(), rng);
    for (size_t start = 0; start < order.size() && !done; start += size_t(a.batch)) {
      const std::vector<int64_t> batch(order.begin() + long(start),
                                       order.begin() + long(std::min(order.size(), start + size_t(a.batch))));
      std::vector<double> rois, labels, fg_rows, fg_index, fg_ref, fg_truth;
      for (size_t j = 0; j < batch.size(); ++j) {
        const Assignment& as = assignments[size_t(batch[j])];
        const std::vector<float> tb = train.boxes(batch[j]).to_vector<float>();
        const std::vector<int64_t> tl = train.labels(batch[j]).to_vector<int64_t>();
        auto row_box = [&](int64_t r) {
          const float* b = r < n_prop ? pv.data() + 4 * r : tb.data() + 4 * (r - n_prop);
          return std::vector<double>(b, b + 4);
        };
        const std::vector<int64_t> f = sample(int64_t(as.fg.size()), fg_per_canvas, rng);
        const std::vector<int64_t> b = sample(int64_t(as.bg.size()), a.rois - int64_t(f.size()), rng);
        for (int64_t k : f) {
          const std::vector<double> box = row_box(as.fg[size_t(k)]);
          const int64_t m = as.fg_match[size_t(k)];
          fg_rows.push_back(double(labels.size()));
          rois.push_back(double(j));
          rois.insert(rois.end(), box.begin(), box.end());
          fg_ref.insert(fg_ref.end(), box.begin(), box.end());
          fg_truth.insert(fg_truth.end(), tb.begin() + 4 * m, tb.begin() + 4 * m + 4);
          labels.push_back(double(tl[size_t(m)] + 1));
          for (int q = 0; q < 4; ++q) fg_index.push_back(double(tl[size_t(m)]));
        }
        for (int64_t k : b) {
          const std::vector<double> box = row_box(as.bg[size_t(k)]);
          rois.push_back(double(j));
          rois.insert(rois.end(), box.begin(), box.end());
          labels.push_back(0);
        }
      }
      const int64_t n_rows = int64_t(labels.size()), n_fg = int64_t(fg_rows.size());
      std::vector<int64_t> batch_idx(batch.begin(), batch.end());
      const Tensor images = train.get_batch(batch_idx).data;
      const Tensor target = tg::tensor(labels, {n_rows}, tg::kInt64);
      const std::vector<Tensor> out = model->forward_list({images, tg::tensor(rois, {n_rows, 5}, tg::kFloat32)});
      const Tensor cls_loss = F::cross_entropy(out[0], target);
      Tensor loss = cls_loss;
      double box_value = 0;
      if (n_fg > 0) {
        const Tensor per_class = tg::index_select(out[1], 0, tg::tensor(fg_rows, {n_fg}, tg::kInt64)).reshape({n_fg, kClasses, 4});
        const Tensor pred = tg::gather(per_class, 1, tg::tensor(fg_index, {n_fg, 1, 4}, tg::kInt64)).reshape({n_fg, 4});
        const Tensor goal = V::encode_boxes(tg::tensor(fg_truth, {n_fg, 4}, tg::kFloat32),
                                            tg::tensor(fg_ref, {n_fg, 4}, tg::kFloat32), coder());
        const Tensor diff = tg::abs(pred - goal);
        const Tensor box_loss = tg::sum(tg::where(diff < kBeta, 0.5 * diff * diff / kBeta, diff - 0.5 * kBeta)) / double(n_rows);
        loss = cls_loss + box_loss;
        box_value = box_loss.item<double>();
        const std::vector<int64_t> guess = tg::argmax(tg::index_select(out[0], 0, tg::tensor(fg_rows, {n_fg}, tg::kInt64)), 1)
                                               .to_vector<int64_t>();
        for (int64_t k = 0; k < n_fg; ++k) r_fg_right += guess[size_t(k)] == int64_t(labels[size_t(fg_rows[size_t(k)])]);
        r_fg += n_fg;
      }
      opt.zero_grad();
      loss.backward();
      opt.step();
      ++step;
      r_loss += loss.item<double>();
      r_cls += cls_loss.item<double>();
      r_box += box_value;
      ++r_n;
      done = a.max_steps > 0 && step >= a.max_steps;
      const bool last = done || (epoch == a.epochs && start + size_t(a.batch) >= order.size());
      if (step % a.log_every == 0 || last) {
        const double fg_acc = r_fg > 0 ? double(r_fg_right) / double(r_fg) : 0.0;
        fmt::print("step {:5d}  epoch {}  loss {:.4f} (cls {:.4f}, box {:.4f})  foreground accuracy {:.3f}  {:.1f} s\n",
                   step, epoch, r_loss / double(r_n), r_cls / double(r_n), r_box / double(r_n), fg_acc,
                   seconds_since(t_train));
        log << fmt::format("{},{},{:.5f},{:.5f},{:.5f},{:.4f},{:.1f}\n", step, epoch, r_loss / double(r_n),
                           r_cls / double(r_n), r_box / double(r_n), fg_acc, seconds_since(t_train));
        r_loss = r_cls = r_box = 0;
        r_n = r_fg = r_fg_right = 0;
      }
    }
  }
  const double train_seconds = seconds_since(t_train);
  fmt::print("trained {} steps of {} canvases x {} rois in {:.1f} s ({:.3f} s/step)\n", step, a.batch, a.rois,
             train_seconds, train_seconds / double(std::max<int64_t>(1, step)));
  tg::save(*model, (fs::path(a.out) / "detection.safetensors").string());

  // ---- detection on the test canvases ----
  model->eval();
  const auto t_eval = Clock::now();
  std::vector<V::Detections> det, det_plain;
  std::vector<V::GroundTruth> truth;
  {
    tg::NoGradGuard no_grad;
    const Tensor rois = tg::cat({tg::zeros({n_prop, 1}), proposals}, 1);
    for (int64_t i = 0; i < test.size(); ++i) {
      const std::vector<Tensor> out = model->forward_list({test.images().narrow(0, i, 1), rois});
      const std::vector<float> probs = F::softmax(out[0], 1).to_vector<float>();
      det.push_back(postprocess(probs, out[1], proposals, true, a));
      det_plain.push_back(postprocess(probs, out[1], proposals, false, a));
      truth.push_back({test.boxes(i), test.labels(i)});
    }
  }
  const double eval_seconds = seconds_since(t_eval);
  const V::MeanAveragePrecision m = V::mean_average_precision(det, truth, kClasses, 0.5);
  const V::MeanAveragePrecision m_plain = V::mean_average_precision(det_plain, truth, kClasses, 0.5);
  fmt::print("detected {} test canvases in {:.1f} s ({:.1f} ms each: {} proposals, NMS at {}, score > {}, best {})\n",
             test.size(), eval_seconds, 1000 * eval_seconds / double(std::max<int64_t>(1, test.size())), n_prop, a.nms,
             a.score_threshold, a.max_detections);
  const auto& names = tg::data::fashion_mnist_classes();
  std::ofstream ap_csv(fs::path(a.out) / "ap.csv");
  ap_csv << "class,name,truth,detections,ap,ap_without_regression\n";
  fmt::print("{:<12} {:>6} {:>10} {:>8} {:>16}\n", "class", "truth", "detections", "AP@0.5", "no regression");
  for (int64_t c = 0; c < kClasses; ++c) {
    const size_t k = size_t(c);
    fmt::print("{:<12} {:>6} {:>10} {:>8.3f} {:>16.3f}\n", names[k], m.num_truth[k], m.num_detections[k], m.ap[k],
               m_plain.ap[k]);
    ap_csv << fmt::format("{},{},{},{},{:.5f},{:.5f}\n", c, names[k], m.num_truth[k], m.num_detections[k], m.ap[k],
                          m_plain.ap[k]);
  }
  fmt::print("mAP@0.5 (VOC, all-points): {:.4f}\n", m.map);
  fmt::print("mAP@0.5 without box regression (the proposals' own boxes, same scores and NMS): {:.4f}\n", m_plain.map);
  ap_csv << fmt::format("-1,mAP,{},{},{:.5f},{:.5f}\n", test_objects,
                        std::accumulate(m.num_detections.begin(), m.num_detections.end(), int64_t(0)), m.map,
                        m_plain.map);

  if (a.draw > 0 && !det.empty()) {
    const std::string path = (fs::path(a.out) / "detection.png").string();
    write_picture(path, test, det, a);
    fmt::print("picture of {} test canvases -> {}\n", std::min<int64_t>(a.draw, int64_t(det.size())), path);
  }
  fmt::print("total {:.1f} s\n", seconds_since(t_start));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"tapegrad-detection: Fast R-CNN on canvases of Fashion-MNIST items, scored by VOC mAP@0.5"};
  app.add_option("--data", a.data, "Fashion-MNIST directory (the four IDX files)")->capture_default_str();
  app.add_option("--out", a.out, "metrics.csv, ap.csv, detection.safetensors, detection.png")->capture_default_str();
  app.add_option("--train-canvases", a.train_canvases, "training canvases")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--test-canvases", a.test_canvases, "test canvases (scored)")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--size", a.size, "canvas side in pixels")->check(CLI::Range(16, 512))->capture_default_str();
  app.add_option("--min-items", a.min_items, "items per canvas, at least")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--max-items", a.max_items, "items per canvas, at most")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--min-scale", a.min_scale, "item scale, at least (1: 28 x 28)")->check(CLI::Range(0.1, 8.0))->capture_default_str();
  app.add_option("--max-scale", a.max_scale, "item scale, at most")->check(CLI::Range(0.1, 8.0))->capture_default_str();
  app.add_option("--epochs", a.epochs, "passes over the training canvases")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", a.batch, "canvases per step")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--rois", a.rois, "sampled proposals per canvas and step")->check(CLI::Range(2, 4096))->capture_default_str();
  app.add_option("--fg-fraction", a.fg_fraction, "foreground share of the sampled proposals, at most")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--fg-iou", a.fg_iou, "IoU with a true box from which a proposal is that class")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  app.add_option("--bg-iou", a.bg_iou, "IoU below which a proposal is background")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--max-steps", a.max_steps, "stop after this many steps (0: all epochs)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--lr", a.lr, "Adam's learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--nms", a.nms, "IoU above which NMS drops a lower-scoring box of the same class")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--score-threshold", a.score_threshold, "class probability a detection needs")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--max-detections", a.max_detections, "detections kept per canvas")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--draw", a.draw, "test canvases in detection.png (0: no picture)")->check(CLI::Range(0, 64))->capture_default_str();
  app.add_option("--draw-score", a.draw_score, "score from which a detection is drawn")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--font", a.font, "TrueType font of the picture's labels")->capture_default_str();
  app.add_option("--threads", a.threads, "threads of the library")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seed", a.seed, "seed of the canvases, the weights and the sampling")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--log-every", a.log_every, "steps between log lines")->check(CLI::PositiveNumber)->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "tapegrad-detection: " << e.what() << "\nRun with --help for the options.\n";
    return 2;
  }
  if (const std::string bad = check_flags(a); !bad.empty()) {
    std::cerr << "tapegrad-detection: " << bad << "\nRun with --help for the options.\n";
    return 2;
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::cerr << "tapegrad-detection: " << e.what() << "\n";
    return 1;
  }
}
