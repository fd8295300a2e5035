// tapegrad-segmentation: a small U-Net that labels every pixel of Fashion-MNIST canvases
// (tg::data::Canvases: a few items pasted at random on a 64 x 64 canvas; each pixel is background
// or 1 + its item's class, 11 classes), trained with a class-weighted per-pixel cross-entropy and
// scored on canvases made from the test split by pixel accuracy and mean IoU.
//
//   tapegrad-segmentation --data /usr/share/datasets/fashion-mnist --out out/segmentation
//
// The network (names as named_parameters() prints them):
//   enc1       conv3x3-BN-ReLU x 2, 1 -> w, 64 x 64          (skip 1)
//   enc2       max-pool 2, conv3x3-BN-ReLU x 2, w -> 2w, 32    (skip 2)
//   bottleneck max-pool 2, conv3x3-BN-ReLU x 2, 2w -> 4w, 16
//   up2        ConvTranspose2d 4w -> 2w, kernel 2, stride 2 ("deconvolution"), 16 -> 32
//   dec2       cat(up2, skip 2), conv3x3-BN-ReLU x 2, 4w -> 2w
//   up1        bilinear x 2 then conv3x3 2w -> w ("upsample + convolution"), 32 -> 64
//   dec1       cat(up1, skip 1), conv3x3-BN-ReLU x 2, 2w -> w
//   head       conv1x1 w -> 11 logits per pixel
// Background is most of every canvas and dominates an unweighted loss (docs/applications.md
// measures what the weights change); --weighting median weighs each class by median
// frequency balancing (Eigen and Fergus 2015): w_c = median_c(f_c) / f_c, f_c the fraction of
// train pixels of class c.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <tapegrad.hpp>

#include "cli_flags.hpp"

namespace {

namespace fs = std::filesystem;
namespace nn = tg::nn;
namespace F = tg::nn::functional;
using tg::Tensor;
using Clock = std::chrono::steady_clock;

constexpr int64_t kClasses = 11;  // background + the 10 Fashion-MNIST classes
const char* const kNames[kClasses] = {"background", "T-shirt/top", "trouser", "pullover", "dress", "coat",
                                      "sandal",     "shirt",       "sneaker", "bag",      "ankle boot"};

const char* const kUsage =
    "usage: tapegrad-segmentation [options]\n"
    "  --data DIR            Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
    "  --out DIR             metrics.csv, segmentation.png, segmentation.safetensors (default out/segmentation)\n"
    "  --train-canvases N    canvases from the train split (default 6000)\n"
    "  --test-canvases N     canvases from the test split (default 1000)\n"
    "  --size N              canvas side in pixels, a multiple of 4 >= 36 (default 64)\n"
    "  --epochs N            passes over the train canvases (default 3)\n"
    "  --steps N             at most N steps per epoch (default: all)\n"
    "  --batch N             canvases per step (default 32)\n"
    "  --lr X                Adam's learning rate (default 0.002)\n"
    "  --width N             channels of the first stage, w (default 16)\n"
    "  --weighting W         class weights of the loss: median (median frequency balancing), sqrt (its\n"
    "                        square root) or none (default median)\n"
    "  --show N              test canvases in segmentation.png (default 8)\n"
    "  --seed N              seed of the canvases, the weights and the order (default 1)\n"
    "  --threads N           threads of the library (default 2)\n"
    "  --help                this text\n";

struct Args {
  std::string data = tg::data::MNIST::kDefaultRoot, out = "out/segmentation", weighting = "median";
  int64_t train_canvases = 6000, test_canvases = 1000, size = 64, epochs = 3, steps = 0, batch = 32, width = 16;
  int64_t show = 8, seed = 1, threads = 2;
  double lr = 2e-3;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// conv3x3-BN-ReLU twice: Sequential runs each BatchNorm + ReLU pair in one pass.
std::shared_ptr<nn::Sequential> double_conv(int64_t in, int64_t out) {
  return std::make_shared<nn::Sequential>(nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1).bias(false)),
                                          nn::BatchNorm2d(nn::BatchNormOptions(out)), nn::ReLU(),
                                          nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)),
                                          nn::BatchNorm2d(nn::BatchNormOptions(out)), nn::ReLU());
}

struct UNet : nn::Module {
  std::shared_ptr<nn::Sequential> enc1, enc2, bottleneck, dec2, dec1;
  std::shared_ptr<nn::ConvTranspose2d> up2;
  std::shared_ptr<nn::Conv2d> up1, head;

  explicit UNet(int64_t w) : nn::Module("UNet") {
    enc1 = register_module("enc1", double_conv(1, w));
    enc2 = register_module("enc2", double_conv(w, 2 * w));
    bottleneck = register_module("bottleneck", double_conv(2 * w, 4 * w));
    up2 = register_module("up2", std::make_shared<nn::ConvTranspose2d>(
                                     nn::ConvTranspose2dOptions(4 * w, 2 * w, 2).stride(2)));
    dec2 = register_module("dec2", double_conv(4 * w, 2 * w));
    up1 = register_module("up1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2 * w, w, 3).padding(1)));
    dec1 = register_module("dec1", double_conv(2 * w, w));
    head = register_module("head", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(w, kClasses, 1)));
  }

  /// x [N, 1, S, S] -> logits [N, 11, S, S].
  Tensor forward(const Tensor& x) override {
    Tensor s1 = enc1->forward(x);
    Tensor s2 = enc2->forward(F::max_pool2d(s1, 2));
    Tensor b = bottleneck->forward(F::max_pool2d(s2, 2));
    Tensor d2 = dec2->forward(tg::cat({up2->forward(b), s2}, 1));
    Tensor u1 = up1->forward(F::interpolate(d2, F::InterpolateOptions().scale_factor(2).mode(tg::kBilinear)));
    return head->forward(dec1->forward(tg::cat({u1, s1}, 1)));
  }
};

// Median frequency balancing over the classes present in the train masks (absent ones get 0),
// or its square root (a milder correction), or none.
std::vector<double> class_weights(const Tensor& masks, const std::string& weighting, std::vector<int64_t>& counts) {
  counts.assign(kClasses, 0);
  const int64_t* m = masks.data_ptr<int64_t>();
  for (int64_t i = 0; i < masks.numel(); ++i) ++counts[size_t(m[i])];
  std::vector<double> w(kClasses, 1.0);
  if (weighting == "none") return w;
  std::vector<double> freq;
  for (int64_t c : counts)
    if (c > 0) freq.push_back(double(c) / double(masks.numel()));
  std::sort(freq.begin(), freq.end());
  const double median = freq.size() % 2 ? freq[freq.size() / 2] : 0.5 * (freq[freq.size() / 2 - 1] + freq[freq.size() / 2]);
  for (int64_t c = 0; c < kClasses; ++c) {
    const double mf = counts[size_t(c)] > 0 ? median / (double(counts[size_t(c)]) / double(masks.numel())) : 0.0;
    w[size_t(c)] = weighting == "sqrt" ? std::sqrt(mf) : mf;
  }
  return w;
}

// The confusion matrix [11, 11] of the model on every canvas of `set`, in batches, eval mode.
Tensor evaluate(UNet& net, const tg::data::Canvases& set, int64_t batch) {
  tg::NoGradGuard no_grad;
  net.eval();
  Tensor cm = tg::zeros({kClasses, kClasses}, tg::kInt64);
  for (int64_t b = 0; b < set.size(); b += batch) {
    const int64_t n = std::min(batch, set.size() - b);
    const Tensor logits = net.forward(set.images().narrow(0, b, n));
    cm = cm + tg::metrics::confusion_matrix(logits, set.masks().narrow(0, b, n), kClasses);
  }
  net.train();
  return cm;
}

// Colours of the 11 labels: black background, then matplotlib's tab10.
const float kPalette[kClasses][3] = {{0, 0, 0},       {31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                     {214, 39, 40},   {148, 103, 189}, {140, 86, 75}, {227, 119, 194},
                                     {127, 127, 127}, {188, 189, 34},  {23, 190, 207}};

// Rows: input, prediction, ground truth; one column per canvas, 2-pixel grey gaps.
void write_montage(const std::string& path, UNet& net, const tg::data::Canvases& set, int64_t count) {
  count = std::min(count, set.size());
  const int64_t s = set.options().size(), gap = 2, H = 3 * s + 4 * gap, W = count * s + (count + 1) * gap;
  Tensor pred;
  {
    tg::NoGradGuard no_grad;
    net.eval();
    pred = tg::argmax(net.forward(set.images().narrow(0, 0, count)), 1).contiguous();
    net.train();
  }
  Tensor img = tg::full({3, H, W}, 0.5);
  float* out = img.data_ptr<float>();
  const Tensor images = set.images().narrow(0, 0, count).contiguous();
  const Tensor truth = set.masks().narrow(0, 0, count).contiguous();
  const float* x = images.data_ptr<float>();
  const int64_t* p = pred.data_ptr<int64_t>();
  const int64_t* t = truth.data_ptr<int64_t>();
  for (int64_t k = 0; k < count; ++k)
    for (int64_t y = 0; y < s; ++y)
      for (int64_t c = 0; c < s; ++c) {
        const int64_t at = (k * s + y) * s + c, col = gap + k * (s + gap) + c;
        for (int64_t ch = 0; ch < 3; ++ch) {
          out[(ch * H + gap + y) * W + col] = x[at];
          out[(ch * H + 2 * gap + s + y) * W + col] = kPalette[p[at]][ch] / 255.0f;
          out[(ch * H + 3 * gap + 2 * s + y) * W + col] = kPalette[t[at]][ch] / 255.0f;
        }
      }
  tg::vision::write_png(path, img);
}

int run(const Args& a) {
  tg::set_num_threads(int(a.threads));
  tg::manual_seed(uint64_t(a.seed));
  const auto t_data = Clock::now();
  const tg::data::MNIST train_items(a.data, tg::data::Split::Train), test_items(a.data, tg::data::Split::Test);
  auto opts = tg::data::CanvasOptions().size(a.size).items(2, 4).scale(0.8, 1.25);
  const tg::data::Canvases train(train_items, a.train_canvases, opts.seed(uint64_t(a.seed)));
  const tg::data::Canvases test(test_items, a.test_canvases, opts.seed(uint64_t(a.seed) + 1000003));
  fmt::print("data: {} train canvases (from {} train items), {} test canvases (from {} test items), {}x{}, "
             "2-4 items at scale 0.8-1.25, made in {:.1f} s\n",
             train.size(), train_items.size(), test.size(), test_items.size(), a.size, a.size, seconds_since(t_data));

  std::vector<int64_t> counts;
  const std::vector<double> w = class_weights(train.masks(), a.weighting, counts);
  fmt::print("class weights ({}):\n", a.weighting == "none"     ? "none, every class 1"
                                       : a.weighting == "sqrt" ? "square root of median frequency balancing"
                                                               : "median frequency balancing");
  for (int64_t c = 0; c < kClasses; ++c)
    fmt::print("  {:2d} {:<12} {:6.2f}% of train pixels  weight {:.3f}\n", c, kNames[c],
               100.0 * double(counts[size_t(c)]) / double(train.masks().numel()), w[size_t(c)]);
  const Tensor weight = tg::tensor(w, {kClasses});

  auto net = std::make_shared<UNet>(a.width);
  int64_t params = 0;
  for (const Tensor& p : net->parameters()) params += p.numel();
  fmt::print("model: U-Net, width {} (stages {}, {}, {}), {} parameters\n", a.width, a.width, 2 * a.width,
             4 * a.width, params);
  tg::optim::Adam opt(net->parameters(), tg::optim::AdamOptions(a.lr));
  fs::create_directories(a.out);
  std::ofstream csv(fs::path(a.out) / "metrics.csv");
  csv << "epoch,steps,train_loss,test_pixel_accuracy,test_mean_iou,train_seconds\n";

  std::mt19937_64 rng(uint64_t(a.seed));
  std::vector<int64_t> order(size_t(train.size()));
  std::iota(order.begin(), order.end(), 0);
  const int64_t per_epoch = (train.size() + a.batch - 1) / a.batch;
  const int64_t steps = a.steps > 0 ? std::min(a.steps, per_epoch) : per_epoch;
  Tensor cm;
  for (int64_t epoch = 1; epoch <= a.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    const auto t_epoch = Clock::now();
    double total = 0;
    for (int64_t step = 0; step < steps; ++step) {
      const auto first = order.begin() + step * a.batch;
      const std::vector<int64_t> idx(first, first + std::min<int64_t>(a.batch, train.size() - step * a.batch));
      const tg::data::Example b = train.get_batch(idx);
      const Tensor loss = F::cross_entropy(net->forward(b.data), b.target, F::CrossEntropyOptions().weight(weight));
      opt.zero_grad();
      loss.backward();
      opt.step();
      total += loss.item<double>();
    }
    const double train_seconds = seconds_since(t_epoch);
    cm = evaluate(*net, test, 64);
    const double pix = tg::metrics::pixel_accuracy(cm), miou = tg::metrics::mean_iou(cm);
    fmt::print("epoch {}  {} steps  train loss {:.4f}  {:.1f} s ({:.3f} s/step)  test pixel accuracy {:.4f}  "
               "mean IoU {:.4f}\n",
               epoch, steps, total / double(steps), train_seconds, train_seconds / double(steps), pix, miou);
    csv << fmt::format("{},{},{:.6f},{:.6f},{:.6f},{:.2f}\n", epoch, steps, total / double(steps), pix, miou,
                       train_seconds);
    csv.flush();
    std::fflush(stdout);  // progress shows when stdout is a file
  }

  if (cm.defined()) {
    const std::vector<double> iou = tg::metrics::iou(cm).to_vector<double>();
    const std::vector<int64_t> m = cm.to_vector<int64_t>();
    fmt::print("test per class: IoU, pixels, recall (the true class's pixels predicted as it)\n");
    for (int64_t c = 0; c < kClasses; ++c) {
      int64_t row = 0;
      for (int64_t j = 0; j < kClasses; ++j) row += m[size_t(c * kClasses + j)];
      fmt::print("  {:2d} {:<12} IoU {:.4f}  {:8d} px  recall {:.4f}\n", c, kNames[c], iou[size_t(c)], row,
                 row > 0 ? double(m[size_t(c * kClasses + c)]) / double(row) : 0.0);
    }
    double items = 0;  // the mean of the item classes' IoU above (background left out)
    int64_t defined = 0;
    for (int64_t c = 1; c < kClasses; ++c)
      if (!std::isnan(iou[size_t(c)])) items += iou[size_t(c)], ++defined;
    fmt::print("test: pixel accuracy {:.4f}, mean IoU {:.4f} (over the classes present), mean IoU of the 10 item "
               "classes {:.4f}\n",
               tg::metrics::pixel_accuracy(cm), tg::metrics::mean_iou(cm), items / double(std::max<int64_t>(1, defined)));
  }
  const std::string png = (fs::path(a.out) / "segmentation.png").string();
  write_montage(png, *net, test, a.show);
  tg::save(*net, (fs::path(a.out) / "segmentation.safetensors").string());
  fmt::print("wrote {} (rows: input, prediction, ground truth), metrics.csv, segmentation.safetensors\n", png);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app("tapegrad-segmentation");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  app.add_option("--data", a.data);
  app.add_option("--out", a.out);
  app.add_option("--train-canvases", a.train_canvases)->check(cli_flags::positive_integer("--train-canvases"));
  app.add_option("--test-canvases", a.test_canvases)->check(cli_flags::positive_integer("--test-canvases"));
  app.add_option("--size", a.size)->check(cli_flags::positive_integer("--size"));
  app.add_option("--epochs", a.epochs)->check(cli_flags::positive_integer("--epochs"));
  app.add_option("--steps", a.steps)->check(cli_flags::positive_integer("--steps"));
  app.add_option("--batch", a.batch)->check(cli_flags::positive_integer("--batch"));
  app.add_option("--lr", a.lr)->check(cli_flags::positive_number("--lr"));
  app.add_option("--width", a.width)->check(cli_flags::positive_integer("--width"));
  app.add_option("--weighting", a.weighting)->check(CLI::IsMember({"median", "sqrt", "none"}));
  app.add_option("--show", a.show)->check(cli_flags::positive_integer("--show"));
  app.add_option("--seed", a.seed);
  app.add_option("--threads", a.threads)->check(cli_flags::positive_integer("--threads"));
  cli_flags::parse_or_exit(app, argc, argv, "tapegrad-segmentation", kUsage);
  if (a.size < 36 || a.size % 4 != 0)
    cli_flags::usage_error("tapegrad-segmentation", fmt::format("--size expects a multiple of 4 >= 36, got {}", a.size),
                           kUsage);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::cerr << "tapegrad-segmentation: " << e.what() << "\n";
    return 1;
  }
}
