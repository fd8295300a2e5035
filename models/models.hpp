#pragma once
/// tg::models: the classic image classifiers as nn::Module trees, after torchvision 0.14.
///
///   auto net = tg::models::resnet18(tg::models::ModelOptions().num_classes(10));   // ImageNet stem
///   auto small = tg::models::densenet_bc(100, 12, tg::models::ModelOptions().in_channels(1).small_input(true));
///
/// At the default options the names of named_parameters() and named_buffers() are torchvision's
/// state_dict keys (GoogLeNet without its auxiliary classifiers), so weights exported from
/// torchvision by name (tools/export_safetensors.py) load with tg::load(model, path) in strict
/// mode. small_input(true) swaps the ImageNet stem for one that 28-32 px images need (docs/models.md).
#include <cstdint>
#include <memory>
#include <optional>

#include "../autograd/arg.hpp"
#include "../nn/module.hpp"
#include "densenet.hpp"
#include "googlenet.hpp"
#include "resnet.hpp"
#include "stack.hpp"
#include "wavenet.hpp"

namespace tg::models {


/// What every factory takes; each option is ignored by the architectures it does not apply to.
class ModelOptions {
  /// Outputs of the last linear layer.
  TG_ARG(int64_t, num_classes){1000};
  /// Channels of the input image (1 for Fashion-MNIST).
  TG_ARG(int64_t, in_channels){3};
  /// DenseNet: a transition keeps floor(compression * channels) channels.
  TG_ARG(double, compression){0.5};
  /// false: the ImageNet stem; true: a 3x3 stride-1 first convolution and no early max pooling.
  TG_ARG(bool, small_input){false};
  /// Dropout probability; unset: the architecture's default (AlexNet and VGG 0.5 before the
  /// hidden linear layers, GoogLeNet 0.2 before fc, DenseNet 0 after each layer, ResNet none).
  TG_ARG(std::optional<double>, dropout);
  /// DenseNet: recompute each layer's concat-BN-ReLU-1x1 conv in backward (tg::checkpoint)
  /// instead of keeping it, as torchvision's memory_efficient=True.
  TG_ARG(bool, memory_efficient){false};
};

using ModulePtr = std::shared_ptr<nn::Module>;

/// Krizhevsky et al. 2012 (torchvision's single-tower variant); small_input: the seed's
/// 28 px shape, 5 3x3 convolutions with ReLU, LRN after the first two, 3 max pools, 3 linear layers.
ModulePtr alexnet(const ModelOptions& o = {});
/// Simonyan and Zisserman 2014, configurations A and D with batch norm.
ModulePtr vgg11_bn(const ModelOptions& o = {});
ModulePtr vgg16_bn(const ModelOptions& o = {});
/// Szegedy et al. 2014, as torchvision builds it (its "5x5" branch is 3x3), no auxiliary classifiers.
ModulePtr googlenet(const ModelOptions& o = {});
/// He et al. 2015: basic blocks [2, 2, 2, 2] / [3, 4, 6, 3], bottlenecks [3, 4, 6, 3].
ModulePtr resnet18(const ModelOptions& o = {});
ModulePtr resnet34(const ModelOptions& o = {});
ModulePtr resnet50(const ModelOptions& o = {});
/// Huang et al. 2016: DenseNet-BC-121 (growth 32, blocks [6, 12, 24, 16], 64 stem channels).
ModulePtr densenet121(const ModelOptions& o = {});
/// The CIFAR DenseNet-BC family: 3 blocks of (depth - 4) / 6 bottleneck layers, 2 * growth_rate
/// stem channels (DenseNet-BC-100 with k = 12 is the paper's). depth must be 6n + 4, n >= 1.
ModulePtr densenet_bc(int64_t depth, int64_t growth_rate, const ModelOptions& o = {});

}  // namespace tg::models
