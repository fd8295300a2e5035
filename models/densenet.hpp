#pragma once
/// The building blocks of DenseNet-BC (Huang et al. 2016), named as torchvision names them.
#include <memory>
#include <vector>

#include "../nn/modules.hpp"

namespace tg::models {

/// One bottleneck layer: conv2(relu(norm2(conv1(relu(norm1(cat(features))))))), then dropout.
/// conv1 is 1x1 to bn_size * growth channels, conv2 3x3 to growth channels. memory_efficient:
/// the concat-BN-ReLU-conv1 part runs under tg::checkpoint (recomputed in backward, so its
/// bn_size * growth channel output and the concatenation are not kept).
struct DenseLayer : nn::Module {
  DenseLayer(int64_t in, int64_t growth, int64_t bn_size, double drop_rate, bool memory_efficient);
  /// features: the block's input and every earlier layer's output; returns the new [N, growth, H, W].
  Tensor forward(const std::vector<Tensor>& features);
  Tensor forward(const Tensor& x) override { return forward(std::vector<Tensor>{x}); }
  std::shared_ptr<nn::BatchNorm2d> norm1, norm2;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  double drop_rate;
  bool memory_efficient;

 private:
  Tensor bottleneck(const std::vector<Tensor>& features);
};

/// num_layers DenseLayers ("denselayer1", ...); [N, in, H, W] -> [N, in + num_layers * growth, H, W],
/// the input and each layer's output concatenated.
struct DenseBlock : nn::Module {
  DenseBlock(int64_t num_layers, int64_t in, int64_t growth, int64_t bn_size, double drop_rate,
             bool memory_efficient);
  Tensor forward(const Tensor& x) override;
  std::vector<std::shared_ptr<DenseLayer>> layers;
};

/// Between blocks: BN, ReLU, 1x1 convolution to `out` channels, 2x2 average pooling.
struct Transition : nn::Module {
  Transition(int64_t in, int64_t out);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::BatchNorm2d> norm;
  std::shared_ptr<nn::Conv2d> conv;
};

}  // namespace tg::models
