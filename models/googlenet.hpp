#pragma once
/// The building blocks of GoogLeNet (Szegedy et al. 2014), named as torchvision names them.
#include <memory>

#include "../nn/modules.hpp"

namespace tg::models {

/// Convolution without bias, batch norm (eps 1e-3, as torchvision's), ReLU.
struct BasicConv2d : nn::Module {
  BasicConv2d(const nn::Conv2dOptions& conv_options);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
};

/// Four branches concatenated along channels: 1x1; 1x1 then 3x3; 1x1 then a second 3x3
/// (torchvision's "5x5" branch, whose weights are 3x3); 3x3 max pooling then 1x1.
/// Output channels ch1x1 + ch3x3 + ch5x5 + pool_proj, same spatial size.
struct Inception : nn::Module {
  Inception(int64_t in, int64_t ch1x1, int64_t ch3x3red, int64_t ch3x3, int64_t ch5x5red, int64_t ch5x5,
            int64_t pool_proj);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<BasicConv2d> branch1;
  std::shared_ptr<nn::Sequential> branch2, branch3, branch4;
};

}  // namespace tg::models
