// tapegrad-gradcam: Grad-CAM heat maps of a model trained by tapegrad-train on Fashion-MNIST.
//
//   tapegrad-train --model cnn-bn --epochs 3 --out out
//   tapegrad-gradcam --model cnn-bn --weights out/model.safetensors --out gradcam.png
//
// Writes a PNG montage (each test image beside its heat map for the predicted class, overlaid in
// a colour map, with the true and predicted class names), and checks the maps rather than only
// drawing them, over the first --limit test images:
//   - localisation: the fraction of each map's mass that lies on the item's own pixels, beside the
//     fraction a uniform map would put there (the item's share of the image);
//   - the model-randomisation sanity check of Adebayo et al. (2018): the maps of the same model
//     with freshly initialised weights must differ from the trained model's (Spearman rank
//     correlation of the two maps, per image, averaged); a method whose maps survive
//     randomisation shows the input, not what the model learned.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <tapegrad.hpp>

#include "cli_flags.hpp"
#include "models.hpp"
#include "text.hpp"

namespace {

namespace nn = tg::nn;
using tg::Tensor;

const char* kUsage = R"(usage: tapegrad-gradcam --weights FILE [options]
  --model NAME      the architecture the weights are for (default cnn-bn): mlp has no conv layer
  --weights FILE    model.safetensors written by tapegrad-train (required)
  --data DIR        Fashion-MNIST (default /usr/share/datasets/fashion-mnist)
  --limit N         test images the checks run over (default 10000: the whole test set)
  --count N         images in the montage (default 16)
  --out FILE        the montage PNG (default gradcam.png)
  --layer NAME      the module whose output the maps are made from, by its name in
                    named_modules() (default: the last module called with a spatial output
                    that is not a pooling layer: the last convolutional stage's activation)
  --font FILE       a TrueType font for the labels (default DejaVu Sans)
  --seed N          seed of the randomised model (default 1)
)";

struct Args {
  std::string model = "cnn-bn", weights, data = tg::data::MNIST::kDefaultRoot, out = "gradcam.png", layer;
  std::string font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
  int64_t limit = 10000, count = 16;
  uint64_t seed = 1;
};

Args parse(int argc, char** argv) {
  Args a;
  CLI::App app("tapegrad-gradcam");
  app.add_option("--model", a.model);
  app.add_option("--weights", a.weights)->required();
  app.add_option("--data", a.data);
  app.add_option("--out", a.out);
  app.add_option("--font", a.font);
  app.add_option("--layer", a.layer);
  app.add_option("--limit", a.limit)->check(cli_flags::positive_integer("--limit"));
  app.add_option("--count", a.count)->check(cli_flags::positive_integer("--count"));
  app.add_option("--seed", a.seed)->check(cli_flags::positive_integer("--seed"));
  cli_flags::parse_or_exit(app, argc, argv, "tapegrad-gradcam", kUsage);
  return a;
}

// The module Grad-CAM looks at: `name` when given, else the last one called in a forward pass
// whose output is still a spatial map [N, K, h, w] with h, w > 1 and which is not a pooling
// layer (the last convolutional stage, after its activation, as the Grad-CAM paper uses).
nn::Module& target_layer(nn::Module& model, const Tensor& probe, const std::string& wanted) {
  std::vector<std::pair<std::string, nn::Module*>> called;
  std::vector<std::pair<nn::Module*, size_t>> hooks;
  for (auto& nm : model.named_modules()) {
    nn::Module* m = nm.second.get();
    if (m == &model) continue;
    const std::string name = nm.first;
    hooks.emplace_back(m, m->register_forward_hook([&called, name, &wanted](nn::Module& mod, const Tensor&,
                                                                           const Tensor& y) {
      const bool pooling = mod.type_name().find("Pool") != std::string::npos;
      if (wanted.empty() ? y.dim() == 4 && y.size(2) > 1 && y.size(3) > 1 && !pooling : name == wanted) {
        if (y.dim() != 4) throw tg::Error(fmt::format("--layer '{}' gives {}, not a spatial map [N, K, h, w]", name,
                                                      tg::shape_str(y.shape())));
        called.emplace_back(name, &mod);
      }
    }));
  }
  {
    tg::NoGradGuard no_grad;
    model(probe);
  }
  for (auto& h : hooks) h.first->remove_forward_hook(h.second);
  if (called.empty())
    throw tg::Error(wanted.empty() ? "the model has no layer with a spatial output (use a conv model)"
                                   : fmt::format("no module named '{}' was called in the forward pass", wanted));
  std::cout << "target layer: '" << called.back().first << "' (" << called.back().second->type_name() << ")\n";
  return *called.back().second;
}

// Heat maps [N, H, W] for each image's own class (Grad-CAM takes one class per call: the images
// are grouped by class).
Tensor maps_for(nn::Module& model, nn::Module& layer, const Tensor& x, const std::vector<int64_t>& cls) {
  const int64_t n = x.size(0), plane = x.size(2) * x.size(3);
  std::vector<double> out(size_t(n * plane), 0.0);
  for (int64_t c = 0; c < 10; ++c) {
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < n; ++i)
      if (cls[size_t(i)] == c) idx.push_back(i);
    if (idx.empty()) continue;
    Tensor sel = tg::tensor(std::vector<double>(idx.begin(), idx.end()), {int64_t(idx.size())}, tg::kInt64);
    const std::vector<double> m = tg::vision::grad_cam(model, layer, x.index_select(0, sel), c).to_vector<double>();
    for (size_t j = 0; j < idx.size(); ++j)
      std::copy(m.begin() + long(j) * plane, m.begin() + long(j + 1) * plane, out.begin() + idx[j] * plane);
  }
  return tg::tensor(out, {n, x.size(2), x.size(3)}, tg::kFloat32);
}

std::vector<int64_t> argmax_rows(const Tensor& logits) { return logits.argmax(1).to_vector<int64_t>(); }

// Spearman's rank correlation of two equally long vectors (average ranks for ties).
double spearman(const std::vector<float>& a, const std::vector<float>& b) {
  auto ranks = [](const std::vector<float>& v) {
    std::vector<size_t> order(v.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::sort(order.begin(), order.end(), [&v](size_t i, size_t j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < order.size();) {
      size_t j = i;
      while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
      for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * double(i + j);
      i = j + 1;
    }
    return r;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = double(ra.size()), mean = (n - 1) / 2;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

// ---- the montage ----

struct Canvas {
  int64_t w, h;
  std::vector<float> rgb;  // [3][h][w]
  Canvas(int64_t w_, int64_t h_) : w(w_), h(h_), rgb(size_t(3 * w_ * h_), 1.0f) {}
  void set(int64_t x, int64_t y, float r, float g, float b, float alpha = 1.0f) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    float* p[3] = {&rgb[size_t(y * w + x)], &rgb[size_t((h + y) * w + x)], &rgb[size_t((2 * h + y) * w + x)]};
    const float c[3] = {r, g, b};
    for (int k = 0; k < 3; ++k) *p[k] = (1 - alpha) * *p[k] + alpha * c[k];
  }
  Tensor tensor() const {
    return tg::tensor(std::vector<double>(rgb.begin(), rgb.end()), {3, h, w}, tg::kFloat32);
  }
};

// The "jet" colour map on [0, 1].
void jet(float v, float* r, float* g, float* b) {
  auto ramp = [](float x) { return std::clamp(1.5f - std::fabs(x), 0.0f, 1.0f); };
  *r = ramp(4 * v - 3);
  *g = ramp(4 * v - 2);
  *b = ramp(4 * v - 1);
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  auto model = models::make_model(a.model);
  tg::load(*model, a.weights);
  model->eval();
  tg::manual_seed(a.seed);
  auto random_model = models::make_model(a.model);  // the same architecture, freshly initialised
  random_model->eval();

  tg::data::MNIST test(a.data, tg::data::Split::Test);
  const int64_t n = std::min(a.limit, test.size());
  // The trainer's input normalisation (Fashion-MNIST's pixel mean and standard deviation).
  auto normalize = [](const tg::data::Example& e) { return (e.data - 0.2860) / 0.3530; };
  std::vector<int64_t> first(size_t(std::min<int64_t>(8, n)));
  std::iota(first.begin(), first.end(), int64_t(0));
  nn::Module& layer = target_layer(*model, normalize(test.get_batch(first)), a.layer);
  nn::Module& random_layer = target_layer(*random_model, normalize(test.get_batch(first)), a.layer);

  // The checks over the first n test images, in batches.
  double mass_on_item = 0, item_share = 0, rho_sum = 0;
  int64_t counted = 0, zero_maps = 0, correct = 0;
  Tensor montage_maps, montage_images;
  std::vector<int64_t> montage_true, montage_pred;
  for (int64_t b0 = 0; b0 < n; b0 += 250) {
    std::vector<int64_t> idx(size_t(std::min<int64_t>(250, n - b0)));
    std::iota(idx.begin(), idx.end(), b0);
    tg::data::Example raw = test.get_batch(idx);
    Tensor x = normalize(raw);
    std::vector<int64_t> pred;
    {
      tg::NoGradGuard no_grad;
      pred = argmax_rows((*model)(x));
    }
    const std::vector<int64_t> truth = raw.target.to_vector<int64_t>();
    Tensor maps = maps_for(*model, layer, x, pred);
    Tensor random_maps = maps_for(*random_model, random_layer, x, pred);
    const std::vector<float> pix = raw.data.to_vector<float>(), mv = maps.to_vector<float>(),
                             rv = random_maps.to_vector<float>();
    const size_t plane = size_t(x.size(2) * x.size(3));
    for (size_t i = 0; i < idx.size(); ++i) {
      correct += pred[i] == truth[i];
      double total = 0, on = 0, item = 0;
      for (size_t p = 0; p < plane; ++p) {
        const bool is_item = pix[i * plane + p] > 0.05f;  // the item's own pixels (the background is 0)
        total += mv[i * plane + p];
        on += is_item ? mv[i * plane + p] : 0.0;
        item += is_item;
      }
      if (total <= 0) {
        ++zero_maps;
        continue;
      }
      mass_on_item += on / total;
      item_share += item / double(plane);
      rho_sum += spearman(std::vector<float>(mv.begin() + long(i * plane), mv.begin() + long((i + 1) * plane)),
                          std::vector<float>(rv.begin() + long(i * plane), rv.begin() + long((i + 1) * plane)));
      ++counted;
    }
    if (b0 == 0) {
      const int64_t k = std::min<int64_t>(a.count, int64_t(idx.size()));
      montage_maps = maps.narrow(0, 0, k);
      montage_images = raw.data.narrow(0, 0, k);
      montage_true.assign(truth.begin(), truth.begin() + k);
      montage_pred.assign(pred.begin(), pred.begin() + k);
    }
  }
  std::cout << fmt::format("{} test images, accuracy {:.4f}; {} maps all zero (left out)\n", n, double(correct) / double(n),
                           zero_maps);
  if (counted > 0) {
    std::cout << fmt::format("localisation: {:.3f} of the heat-map mass lies on the item's pixels "
                             "(a uniform map: {:.3f}, the item's share of the image)\n",
                             mass_on_item / double(counted), item_share / double(counted));
    std::cout << fmt::format("sanity check: Spearman correlation of the trained and a randomised model's maps "
                             "{:.3f} (near 0: the maps depend on what the model learned)\n",
                             rho_sum / double(counted));
  }

  // The montage: columns of (image, overlay) pairs, labels below each pair.
  const std::vector<std::string>& names = tg::data::fashion_mnist_classes();
  const int64_t k = montage_maps.size(0), cols = std::min<int64_t>(4, k), rows = (k + cols - 1) / cols;
  const int64_t zoom = 4, side = 28 * zoom, cell_w = 2 * side + 12, cell_h = side + 34;
  Canvas canvas(cols * cell_w + 8, rows * cell_h + 8);
  const examples::Font font(a.font, "tapegrad-gradcam");
  const std::vector<float> img = montage_images.to_vector<float>(), cam = montage_maps.to_vector<float>();
  for (int64_t i = 0; i < k; ++i) {
    const int64_t ox = 8 + (i % cols) * cell_w, oy = 8 + (i / cols) * cell_h;
    for (int64_t y = 0; y < side; ++y)
      for (int64_t x = 0; x < side; ++x) {
        const size_t p = size_t(i * 784 + (y / zoom) * 28 + x / zoom);
        const float v = img[p];
        canvas.set(ox + x, oy + y, v, v, v);
        float r, g, b;
        jet(cam[p], &r, &g, &b);
        canvas.set(ox + side + 4 + x, oy + y, v, v, v);
        canvas.set(ox + side + 4 + x, oy + y, r, g, b, 0.5f);
      }
    const bool ok = montage_true[size_t(i)] == montage_pred[size_t(i)];
    const float black[3] = {0, 0, 0}, green[3] = {0.0f, 0.5f, 0.0f}, red[3] = {0.8f, 0.0f, 0.0f};
    auto label = [&](const std::string& text, int64_t y, const float* rgb) {
      font.draw(text, int(ox), int(y), 12, [&](int64_t X, int64_t Y, float alpha) {
        canvas.set(X, Y, rgb[0], rgb[1], rgb[2], alpha);
      });
    };
    label("true: " + names[size_t(montage_true[size_t(i)])], oy + side + 13, black);
    label("pred: " + names[size_t(montage_pred[size_t(i)])], oy + side + 27, ok ? green : red);
  }
  tg::vision::write_png(a.out, canvas.tensor());
  std::cout << "wrote " << a.out << " (" << k << " test images, heat maps for the predicted class)\n";
  return 0;
} catch (const tg::Error& e) {
  std::cerr << "tapegrad-gradcam: " << e.what() << "\n";
  return 1;
}
