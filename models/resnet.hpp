#pragma once
/// The residual blocks of ResNet (He et al. 2015), named as torchvision names them.
#include <memory>

#include "../nn/modules.hpp"

namespace tg::models {

/// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two 3x3 convolutions; `downsample`
/// (1x1 convolution and batch norm, or null for the identity) projects x when the shape changes.
struct BasicBlock : nn::Module {
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in, int64_t planes, int64_t stride = 1, std::shared_ptr<nn::Module> downsample = nullptr);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Module> downsample;
};

/// 1x1 down to `planes`, 3x3 (carrying the stride, as torchvision's v1.5), 1x1 up to 4 * planes.
struct Bottleneck : nn::Module {
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t in, int64_t planes, int64_t stride = 1, std::shared_ptr<nn::Module> downsample = nullptr);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<nn::Module> downsample;
};

}  // namespace tg::models
