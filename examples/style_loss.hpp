#pragma once
// The losses of neural style transfer (Gatys, Ecker and Bethge 2016), from public tapegrad ops:
// used by examples/style_transfer.cpp and checked with gradcheck in tests/test_style_loss.cpp.
#include <tapegrad.hpp>

#include <vector>

namespace style {

/// Gram matrix of features [N, C, H, W] -> [N, C, C]: F F^T / (C H W), F = the features as
/// [N, C, H W]: which channels fire together, wherever in the image.
inline tg::Tensor gram(const tg::Tensor& f) {
  const int64_t n = f.size(0), c = f.size(1), hw = f.size(2) * f.size(3);
  tg::Tensor flat = f.reshape({n, c, hw});
  return tg::matmul(flat, flat.permute({0, 2, 1})) / double(c * hw);
}

/// Mean squared difference of the Gram matrices, summed over layers.
inline tg::Tensor style_loss(const std::vector<tg::Tensor>& features, const std::vector<tg::Tensor>& target_grams) {
  tg::Tensor total;
  for (size_t i = 0; i < features.size(); ++i) {
    tg::Tensor d = gram(features[i]) - target_grams[i];
    tg::Tensor l = (d * d).mean();
    total = total.defined() ? total + l : l;
  }
  return total;
}

/// Mean squared difference of one layer's features.
inline tg::Tensor content_loss(const tg::Tensor& features, const tg::Tensor& target) {
  tg::Tensor d = features - target;
  return (d * d).mean();
}

/// Total variation: mean squared difference of horizontally and vertically adjacent pixels of
/// [N, C, H, W] (smooths the result).
inline tg::Tensor total_variation(const tg::Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  tg::Tensor dy = x.narrow(2, 1, h - 1) - x.narrow(2, 0, h - 1);
  tg::Tensor dx = x.narrow(3, 1, w - 1) - x.narrow(3, 0, w - 1);
  return (dy * dy).mean() + (dx * dx).mean();
}

}  // namespace style
