// tapegrad-style: neural style transfer (Gatys, Ecker and Bethge 2016). The image itself is the
// tensor being optimised, by L-BFGS (strong-Wolfe line search) or Adam: a content loss on one
// layer's features, a style loss on the Gram matrices of several layers' features, and total
// variation for smoothness.
//
//   bash tools/style_images.sh data/style          # ImageMagick's built-in images as PNGs
//   tapegrad-style --content data/style/content.png --style data/style/style.png --out out/style
//
// The feature network is a VGG-style stack with *random* weights (seeded): no pretrained ImageNet
// weights can be downloaded here, and random shallow convolutional filters are known to carry
// texture statistics well (Ustyuzhaninov et al. 2017, "What does it take to generate natural
// textures?"); see docs/applications.md for what that gives and what it does not.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <tapegrad.hpp>

#include "cli_flags.hpp"
#include "style_loss.hpp"

namespace {

namespace nn = tg::nn;
namespace F = tg::nn::functional;
using tg::Tensor;

const char* kUsage = R"(usage: tapegrad-style --content PNG --style PNG [options]
  --content FILE      the image whose layout is kept (resized to --size)
  --style FILE        the image whose textures and colours are taken (resized to --size)
  --size N            side of the square result (default 256)
  --optimizer NAME    lbfgs (default; strong-Wolfe line search) or adam
  --steps N           L-BFGS: optimizer steps of 20 iterations (default 10); adam: iterations (default 300)
  --lr X              Adam's learning rate (default 0.02)
  --style-weight X    weight of the style loss against the content loss (default 10)
  --tv-weight X       weight of total variation (default 1)
  --seed N            seed of the random feature network (default 1)
  --out DIR           content.png, style.png, result.png, loss.csv, loss.svg (default out/style)
)";

struct Args {
  std::string content, style, optimizer = "lbfgs", out = "out/style";
  int64_t size = 256, steps = -1, seed = 1;
  double lr = 0.02, style_weight = 10, tv_weight = 1;
};

Args parse(int argc, char** argv) {
  Args a;
  CLI::App app("tapegrad-style");
  app.add_option("--content", a.content)->required();
  app.add_option("--style", a.style)->required();
  app.add_option("--out", a.out);
  app.add_option("--optimizer", a.optimizer);
  app.add_option("--size", a.size)->check(cli_flags::positive_integer("--size"));
  app.add_option("--steps", a.steps)->check(cli_flags::positive_integer("--steps"));
  app.add_option("--seed", a.seed)->check(cli_flags::positive_integer("--seed"));
  app.add_option("--lr", a.lr)->check(cli_flags::positive_number("--lr"));
  app.add_option("--style-weight", a.style_weight)->check(cli_flags::positive_number("--style-weight"));
  app.add_option("--tv-weight", a.tv_weight)->check(cli_flags::positive_number("--tv-weight"));
  cli_flags::parse_or_exit(app, argc, argv, "tapegrad-style", kUsage);
  if (a.optimizer != "lbfgs" && a.optimizer != "adam")
    cli_flags::usage_error("tapegrad-style", fmt::format("--optimizer expects lbfgs or adam, got '{}'", a.optimizer), kUsage);
  if (a.size < 16) cli_flags::usage_error("tapegrad-style", fmt::format("--size must be at least 16, got {}", a.size), kUsage);
  if (a.steps < 0) a.steps = a.optimizer == "lbfgs" ? 10 : 300;
  return a;
}

// An RGB image [1, 3, size, size] in [0, 1] from a PNG of any channel count (grey is repeated,
// alpha dropped), resized with bilinear interpolation.
Tensor load_rgb(const std::string& path, int64_t size) {
  Tensor img = tg::vision::read_png(path);
  if (img.size(0) <= 2) img = img.narrow(0, 0, 1).expand({3, img.size(1), img.size(2)});
  else img = img.narrow(0, 0, 3);
  Tensor x = img.reshape({1, 3, img.size(1), img.size(2)}).contiguous();
  return F::interpolate(x, F::InterpolateOptions().size({size, size}).mode(tg::kBilinear).align_corners(false));
}

// The feature network: five 3 x 3 convolutions with ReLU and two average poolings (VGG's shape
// at a tenth of its width), random weights; the activations after each ReLU.
struct Features {
  std::vector<std::shared_ptr<nn::Conv2d>> convs;
  explicit Features(int64_t seed) {
    tg::manual_seed(uint64_t(seed));
    const int64_t widths[][2] = {{3, 32}, {32, 32}, {32, 64}, {64, 64}, {64, 128}};
    for (const auto& w : widths) convs.push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(w[0], w[1], 3).padding(1)));
    for (auto& c : convs)
      for (Tensor p : c->parameters()) p.requires_grad_(false);  // fixed: only the image learns
  }
  std::vector<Tensor> operator()(const Tensor& img) const {
    std::vector<Tensor> out;
    Tensor h = (img - 0.5) / 0.25;  // centred, about unit scale
    for (size_t i = 0; i < convs.size(); ++i) {
      if (i == 2 || i == 4) h = F::avg_pool2d(h, F::PoolOptions(F::IntList{2}).stride(F::IntList{2}));
      h = tg::relu(convs[i]->forward(h));
      out.push_back(h);
    }
    return out;
  }
};

constexpr size_t kContentLayer = 3;  // the fourth ReLU (half resolution): layout, not texture

void write_svg(const std::string& path, const std::vector<double>& loss) {
  std::ofstream f(path);
  const double w = 640, h = 360, pad = 40;
  double lo = loss[0], hi = loss[0];
  for (double v : loss) {
    lo = std::min(lo, std::log10(v));
    hi = std::max(hi, std::log10(v));
  }
  if (hi - lo < 1e-9) hi = lo + 1;
  lo = std::log10(loss.back()) < lo ? std::log10(loss.back()) : lo;
  f << fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)", w, h)
    << "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  f << fmt::format(R"(<text x="{}" y="20">loss (log10) over {} evaluations: {:.4g} to {:.4g}</text>)", pad, loss.size(),
                   loss.front(), loss.back())
    << "\n<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
  for (size_t i = 0; i < loss.size(); ++i) {
    const double x = pad + (w - 2 * pad) * double(i) / double(std::max<size_t>(1, loss.size() - 1));
    const double y = h - pad - (h - 2 * pad) * (std::log10(loss[i]) - lo) / (hi - lo);
    f << fmt::format("{:.1f},{:.1f} ", x, y);
  }
  f << "\"/>\n</svg>\n";
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  std::filesystem::create_directories(a.out);
  std::cout << tg::config_string() << "\n";
  const Tensor content = load_rgb(a.content, a.size), style_img = load_rgb(a.style, a.size);
  const Features net(a.seed);
  std::vector<Tensor> style_grams;
  Tensor content_target;
  double c0 = 1, s0 = 1;
  {
    tg::NoGradGuard no_grad;
    for (const Tensor& f : net(style_img)) style_grams.push_back(style::gram(f));
    content_target = net(content)[kContentLayer];
    // The two losses of a noise image: the weights are relative to them, so they mean the same
    // whatever the network's scale.
    tg::manual_seed(uint64_t(a.seed) + 1);
    const std::vector<Tensor> noise = net(tg::rand({1, 3, a.size, a.size}));
    c0 = style::content_loss(noise[kContentLayer], content_target).item<double>();
    s0 = style::style_loss(noise, style_grams).item<double>();
  }
  Tensor img = content.clone().requires_grad_(true);  // start from the content image
  std::vector<double> curve;
  auto loss_of = [&]() {
    const std::vector<Tensor> f = net(img);
    Tensor l = style::content_loss(f[kContentLayer], content_target) / c0 +
               style::style_loss(f, style_grams) * (a.style_weight / s0) + style::total_variation(img) * a.tv_weight;
    return l;
  };
  const auto t0 = std::chrono::steady_clock::now();
  int64_t evaluations = 0;
  if (a.optimizer == "lbfgs") {
    tg::optim::LBFGS opt({img}, tg::optim::LBFGSOptions(1.0).max_iter(20).history_size(10).line_search_fn("strong_wolfe"));
    for (int64_t s = 0; s < a.steps; ++s) {
      opt.step([&]() -> Tensor {
        opt.zero_grad();
        Tensor l = loss_of();
        l.backward();
        curve.push_back(l.item<double>());
        ++evaluations;
        return l;
      });
      std::cout << fmt::format("step {}/{}: loss {:.5g} ({} evaluations)\n", s + 1, a.steps, curve.back(), evaluations);
    }
  } else {
    tg::optim::Adam opt({img}, tg::optim::AdamOptions(a.lr));
    for (int64_t s = 0; s < a.steps; ++s) {
      opt.zero_grad();
      Tensor l = loss_of();
      l.backward();
      opt.step();
      curve.push_back(l.item<double>());
      ++evaluations;
      if ((s + 1) % 50 == 0 || s + 1 == a.steps)
        std::cout << fmt::format("iteration {}/{}: loss {:.5g}\n", s + 1, a.steps, curve.back());
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << fmt::format("{} loss evaluations (forward + backward) in {:.1f} s: {:.3f} s each, {}x{}\n", evaluations,
                           secs, secs / double(std::max<int64_t>(1, evaluations)), a.size, a.size);
  auto save = [&](const std::string& name, const Tensor& t) {
    tg::vision::write_png(a.out + "/" + name, tg::clamp(t.detach(), 0.0, 1.0).reshape({3, a.size, a.size}));
  };
  save("content.png", content);
  save("style.png", style_img);
  save("result.png", img);
  std::ofstream csv(a.out + "/loss.csv");
  csv << "evaluation,loss\n";
  for (size_t i = 0; i < curve.size(); ++i) csv << i + 1 << "," << fmt::format("{:.8g}", curve[i]) << "\n";
  write_svg(a.out + "/loss.svg", curve);
  std::cout << fmt::format("loss {:.5g} -> {:.5g}; wrote {}/result.png, content.png, style.png, loss.csv, loss.svg\n",
                           curve.front(), curve.back(), a.out);
  return curve.back() < curve.front() ? 0 : 1;
} catch (const tg::Error& e) {
  std::cerr << "tapegrad-style: " << e.what() << "\n";
  return 1;
}
