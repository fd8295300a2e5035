// The augmentations work on raw buffers: an image is a few hundred pixels, so tensor ops (and
// their allocations and tape checks) would cost more than the arithmetic.
#include "transforms.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace tg::data {
namespace {

struct Image {
  int64_t c, h, w;
};

Image check_image(const Tensor& image, const char* op) {
  if (!image.defined()) throw Error(fmt::format("{}: the image is undefined", op));
  if (image.dim() != 3)
    throw Error(fmt::format("{}: expects an image [C, H, W], got shape {}", op, shape_str(image.shape())));
  if (!is_floating(image.dtype()))
    throw Error(fmt::format("{}: expects a float32 or float64 image, got {}", op, dtype_name(image.dtype())));
  return {image.size(0), image.size(1), image.size(2)};
}

// out[c][y][x] = in[c][y - dy][x - dx] where that is inside the input, else 0: a shifted copy.
// out may have a different size than in (RandomCrop uses this with the window's offset).
template <typename T>
void shifted_copy(const T* in, Image ii, T* out, Image oi, int64_t dy, int64_t dx) {
  std::fill(out, out + oi.c * oi.h * oi.w, T(0));
  int64_t x0 = std::max<int64_t>(0, dx), x1 = std::min(oi.w, ii.w + dx);
  if (x1 <= x0) return;
  for (int64_t c = 0; c < oi.c; ++c)
    for (int64_t y = std::max<int64_t>(0, dy); y < std::min(oi.h, ii.h + dy); ++y)
      std::copy(in + (c * ii.h + y - dy) * ii.w + (x0 - dx), in + (c * ii.h + y - dy) * ii.w + (x1 - dx),
                out + (c * oi.h + y) * oi.w + x0);
}

Tensor shifted(const Tensor& image, Image ii, Image oi, int64_t dy, int64_t dx) {
  Tensor out = empty({oi.c, oi.h, oi.w}, image.dtype());
  dispatch_floating(image.dtype(), "shift", [&](auto z) {
    using T = decltype(z);
    shifted_copy(typed<T>(image), ii, typed<T>(out), oi, dy, dx);
  });
  return out;
}

}  // namespace

// ---- Normalize ----

Normalize::Normalize(double mean, double std) : Normalize(std::vector<double>{mean}, std::vector<double>{std}) {}

Normalize::Normalize(std::vector<double> mean, std::vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {
  if (mean_.empty() || mean_.size() != std_.size())
    throw Error(fmt::format("Normalize: expects as many means as stds (at least one), got {} and {}", mean_.size(),
                            std_.size()));
  for (size_t i = 0; i < std_.size(); ++i)
    if (!(std_[i] != 0.0) || !std::isfinite(std_[i]) || !std::isfinite(mean_[i]))
      throw Error(fmt::format("Normalize: std[{}] = {} and mean[{}] = {}: expects a finite, non-zero std and a "
                              "finite mean",
                              i, std_[i], i, mean_[i]));
}

Tensor Normalize::operator()(const Tensor& image, std::mt19937_64&) const {
  Image im = check_image(image, "Normalize");
  if (mean_.size() != 1 && int64_t(mean_.size()) != im.c)
    throw Error(fmt::format("Normalize: has {} channel means, the image {} has {} channels", mean_.size(),
                            shape_str(image.shape()), im.c));
  Tensor out = empty(image.shape(), image.dtype());
  dispatch_floating(image.dtype(), "Normalize", [&](auto z) {
    using T = decltype(z);
    const T* in = typed<T>(image);
    T* o = typed<T>(out);
    const int64_t hw = im.h * im.w;
    for (int64_t c = 0; c < im.c; ++c) {
      size_t k = mean_.size() == 1 ? 0 : size_t(c);
      T m = T(mean_[k]), inv = T(1.0 / std_[k]);
      for (int64_t j = c * hw; j < (c + 1) * hw; ++j) o[j] = (in[j] - m) * inv;
    }
  });
  return out;
}

// ---- RandomHorizontalFlip ----

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  if (!(p >= 0.0 && p <= 1.0))
    throw Error(fmt::format("RandomHorizontalFlip: expects a probability p in [0, 1], got {}", p));
}

Tensor RandomHorizontalFlip::operator()(const Tensor& image, std::mt19937_64& gen) const {
  Image im = check_image(image, "RandomHorizontalFlip");
  bool flip = uniform01(gen) < p_;
  if (!flip) return image.clone().detach();
  Tensor out = empty(image.shape(), image.dtype());
  dispatch_floating(image.dtype(), "RandomHorizontalFlip", [&](auto z) {
    using T = decltype(z);
    const T* in = typed<T>(image);
    T* o = typed<T>(out);
    for (int64_t r = 0; r < im.c * im.h; ++r) std::reverse_copy(in + r * im.w, in + (r + 1) * im.w, o + r * im.w);
  });
  return out;
}

// ---- RandomCrop ----

RandomCrop::RandomCrop(int64_t size, int64_t padding) : RandomCrop(size, size, padding) {}

RandomCrop::RandomCrop(int64_t height, int64_t width, int64_t padding)
    : height_(height), width_(width), padding_(padding) {
  if (height < 1 || width < 1 || padding < 0)
    throw Error(fmt::format("RandomCrop: expects a size of at least 1 and padding >= 0, got size {}x{}, padding {}",
                            height, width, padding));
}

Tensor RandomCrop::operator()(const Tensor& image, std::mt19937_64& gen) const {
  Image im = check_image(image, "RandomCrop");
  int64_t ph = im.h + 2 * padding_, pw = im.w + 2 * padding_;
  if (height_ > ph || width_ > pw)
    throw Error(fmt::format("RandomCrop: a {}x{} window does not fit the image {} padded by {} ({}x{})", height_,
                            width_, shape_str(image.shape()), padding_, ph, pw));
  // Window top-left (top, left) in padded coordinates; padded (y, x) is image (y - p, x - p).
  int64_t top = uniform_int(gen, 0, ph - height_);
  int64_t left = uniform_int(gen, 0, pw - width_);
  return shifted(image, im, {im.c, height_, width_}, padding_ - top, padding_ - left);
}

// ---- RandomTranslate ----

RandomTranslate::RandomTranslate(int64_t max_dx, int64_t max_dy) : max_dx_(max_dx), max_dy_(max_dy) {
  if (max_dx < 0 || max_dy < 0)
    throw Error(fmt::format("RandomTranslate: expects max_dx, max_dy >= 0, got {}, {}", max_dx, max_dy));
}

Tensor RandomTranslate::operator()(const Tensor& image, std::mt19937_64& gen) const {
  Image im = check_image(image, "RandomTranslate");
  int64_t dx = uniform_int(gen, -max_dx_, max_dx_);
  int64_t dy = uniform_int(gen, -max_dy_, max_dy_);
  return shifted(image, im, im, dy, dx);
}

// ---- ColorJitter ----

ColorJitter::ColorJitter(double brightness, double contrast) : brightness_(brightness), contrast_(contrast) {
  if (!(brightness >= 0.0) || !(contrast >= 0.0) || !std::isfinite(brightness) || !std::isfinite(contrast))
    throw Error(fmt::format("ColorJitter: expects brightness >= 0 and contrast >= 0, got {}, {}", brightness,
                            contrast));
}

Tensor ColorJitter::operator()(const Tensor& image, std::mt19937_64& gen) const {
  Image im = check_image(image, "ColorJitter");
  if (im.c != 1 && im.c != 3)
    throw Error(fmt::format("ColorJitter: expects 1 or 3 channels, got an image {}", shape_str(image.shape())));
  // Both factors are always drawn, so the generator advances the same way whatever is enabled.
  double b = uniform_real(gen, std::max(0.0, 1.0 - brightness_), 1.0 + brightness_);
  double c = uniform_real(gen, std::max(0.0, 1.0 - contrast_), 1.0 + contrast_);
  if (brightness_ == 0.0) b = 1.0;
  if (contrast_ == 0.0) c = 1.0;
  Tensor out = empty(image.shape(), image.dtype());
  dispatch_floating(image.dtype(), "ColorJitter", [&](auto z) {
    using T = decltype(z);
    const T* in = typed<T>(image);
    T* o = typed<T>(out);
    const int64_t n = image.numel(), hw = im.h * im.w;
    for (int64_t j = 0; j < n; ++j) o[j] = std::clamp(T(b) * in[j], T(0), T(1));
    if (c == 1.0) return;
    double grey = 0.0;
    if (im.c == 1) {
      for (int64_t j = 0; j < hw; ++j) grey += double(o[j]);
    } else {
      for (int64_t j = 0; j < hw; ++j) grey += 0.299 * o[j] + 0.587 * o[hw + j] + 0.114 * o[2 * hw + j];
    }
    const T mean = T(grey / double(hw)), cc = T(c);
    for (int64_t j = 0; j < n; ++j) o[j] = std::clamp(cc * o[j] + (T(1) - cc) * mean, T(0), T(1));
  });
  return out;
}

// ---- Compose ----

Compose::Compose(std::vector<Transform> transforms) : transforms_(std::move(transforms)) {
  for (size_t i = 0; i < transforms_.size(); ++i)
    if (!transforms_[i]) throw Error(fmt::format("Compose: transform {} is empty", i));
}

Tensor Compose::operator()(const Tensor& image, std::mt19937_64& gen) const {
  Tensor x = image;
  for (const Transform& t : transforms_) x = t(x, gen);
  return x;
}

}  // namespace tg::data
