#pragma once
/// Label-preserving augmentations of one image [C, H, W] (float32 or float64), as torchvision's.
/// Each is a callable `(image, generator) -> image` that returns a new tensor (the input is
/// never modified) and draws its randomness only from the generator it is given, so that the
/// DataLoader can make augmentation deterministic (see docs/data.md).
///
///   auto augment = tg::data::Compose({tg::data::RandomCrop(28, 2), tg::data::RandomHorizontalFlip(),
///                                     tg::data::Normalize(0.2860, 0.3530)});
///   std::mt19937_64 gen(7);
///   tg::Tensor out = augment(image, gen);
///
/// Any callable with the same signature is a Transform; use uniform01 / uniform_int from
/// data/random.hpp in your own for numbers that do not depend on the standard library. The
/// DataLoader calls a transform from its worker threads, several at once when num_workers > 1:
/// keep it free of shared mutable state, and draw from `gen`, never from tg::rand / tg::randn
/// (the global generator is neither thread-safe nor part of the loader's determinism).
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "autograd/tensor.hpp"
#include "dataset.hpp"
#include "random.hpp"

namespace tg::data {

using Transform = std::function<Tensor(const Tensor& image, std::mt19937_64& gen)>;
/// A transform of a whole batch, {data [B, ...], target [B, ...]} -> a new batch (the
/// DataLoader's batch_transform).
using BatchTransform = std::function<Example(Example batch, std::mt19937_64& gen)>;

/// (x - mean[c]) / std[c] per channel; one value applies to every channel.
class Normalize {
 public:
  Normalize(double mean, double std);
  Normalize(std::vector<double> mean, std::vector<double> std);
  Tensor operator()(const Tensor& image, std::mt19937_64& gen) const;

 private:
  std::vector<double> mean_, std_;
};

/// Mirrors the image left-right (along W) with probability p.
class RandomHorizontalFlip {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  Tensor operator()(const Tensor& image, std::mt19937_64& gen) const;

 private:
  double p_;
};

/// Pads every side with `padding` zeros, then cuts a size x size (or height x width) window at a
/// uniformly drawn position: RandomCrop(28, 4) shifts a 28x28 image by up to 4 pixels.
class RandomCrop {
 public:
  explicit RandomCrop(int64_t size, int64_t padding = 0);
  RandomCrop(int64_t height, int64_t width, int64_t padding);
  Tensor operator()(const Tensor& image, std::mt19937_64& gen) const;

 private:
  int64_t height_, width_, padding_;
};

/// Shifts the image by a whole number of pixels, dx uniform in [-max_dx, max_dx] (right is
/// positive) and dy in [-max_dy, max_dy] (down is positive), filling the uncovered border with 0.
/// The shape is unchanged.
class RandomTranslate {
 public:
  RandomTranslate(int64_t max_dx, int64_t max_dy);
  Tensor operator()(const Tensor& image, std::mt19937_64& gen) const;

 private:
  int64_t max_dx_, max_dy_;
};

/// torchvision's ColorJitter for brightness and contrast, on images in [0, 1] (apply it before
/// Normalize). Brightness multiplies by b ~ U[max(0, 1 - brightness), 1 + brightness]; contrast
/// blends with the mean grey level, x' = c x + (1 - c) mean, c ~ U[max(0, 1 - contrast), 1 +
/// contrast]; the result is clamped to [0, 1]. Brightness first, then contrast; 0 disables one.
/// The grey level of a 3-channel image uses ITU-R 601 weights (0.299, 0.587, 0.114).
class ColorJitter {
 public:
  explicit ColorJitter(double brightness = 0.0, double contrast = 0.0);
  Tensor operator()(const Tensor& image, std::mt19937_64& gen) const;

 private:
  double brightness_, contrast_;
};

/// Applies transforms in order, all drawing from the same generator.
class Compose {
 public:
  Compose(std::vector<Transform> transforms);  // NOLINT: Compose({...}) reads as a list
  Tensor operator()(const Tensor& image, std::mt19937_64& gen) const;

 private:
  std::vector<Transform> transforms_;
};

}  // namespace tg::data
