// DenseNet-BC (Huang et al. 2016), as torchvision 0.14 builds DenseNet-121, and the CIFAR
// family densenet_bc(depth, k): each layer of a block sees the concatenation of the block's
// input and every earlier layer's output (docs/design.md, "DenseNet concatenation").
#include <fmt/format.h>

#include "../autograd/autograd.hpp"
#include "../autograd/checkpoint.hpp"
#include "densenet.hpp"
#include "detail.hpp"
#include "models.hpp"
#include "stack.hpp"

namespace tg::models {
namespace F = nn::functional;
using detail::make;

DenseLayer::DenseLayer(int64_t in, int64_t growth, int64_t bn_size, double drop_rate, bool memory_efficient)
    : nn::Module("DenseLayer"), drop_rate(drop_rate), memory_efficient(memory_efficient) {
  norm1 = register_module("norm1", make<nn::BatchNorm2d>(in));
  conv1 = register_module("conv1", make<nn::Conv2d>(nn::Conv2dOptions(in, bn_size * growth, 1).bias(false)));
  norm2 = register_module("norm2", make<nn::BatchNorm2d>(bn_size * growth));
  conv2 = register_module("conv2",
                          make<nn::Conv2d>(nn::Conv2dOptions(bn_size * growth, growth, 3).padding(1).bias(false)));
}

Tensor DenseLayer::bottleneck(const std::vector<Tensor>& features) {
  return (*conv1)(relu((*norm1)(tg::cat(features, 1))));
}

Tensor DenseLayer::forward(const std::vector<Tensor>& features) {
  if (features.empty()) fail("forward: expected at least one feature map, got none");
  bool any_requires_grad = false;
  for (const Tensor& f : features) any_requires_grad = any_requires_grad || f.requires_grad();
  // As torchvision: recompute only when there is a backward pass to save memory for.
  Tensor b = memory_efficient && any_requires_grad && is_grad_enabled()
                 ? checkpoint([this](const std::vector<Tensor>& in) { return bottleneck(in); }, features)
                 : bottleneck(features);
  Tensor out = (*conv2)(relu((*norm2)(b)));
  return drop_rate > 0 ? F::dropout(out, drop_rate, is_training()) : out;
}

DenseBlock::DenseBlock(int64_t num_layers, int64_t in, int64_t growth, int64_t bn_size, double drop_rate,
                       bool memory_efficient)
    : nn::Module("DenseBlock") {
  for (int64_t i = 0; i < num_layers; ++i)
    layers.push_back(register_module(fmt::format("denselayer{}", i + 1),
                                     make<DenseLayer>(in + i * growth, growth, bn_size, drop_rate, memory_efficient)));
}

Tensor DenseBlock::forward(const Tensor& x) {
  std::vector<Tensor> features{x};
  for (auto& layer : layers) features.push_back(layer->forward(features));
  return tg::cat(features, 1);
}

Transition::Transition(int64_t in, int64_t out) : nn::Module("Transition") {
  norm = register_module("norm", make<nn::BatchNorm2d>(in));
  conv = register_module("conv", make<nn::Conv2d>(nn::Conv2dOptions(in, out, 1).bias(false)));
}

Tensor Transition::forward(const Tensor& x) { return F::avg_pool2d((*conv)(relu((*norm)(x))), 2); }

namespace {

struct DenseNetConfig {
  int64_t growth, init_features, bn_size = 4;
  std::vector<int64_t> blocks;
};

class DenseNet : public nn::Module {
 public:
  DenseNet(const DenseNetConfig& c, const ModelOptions& o) : nn::Module("DenseNet") {
    features = register_module("features", make<Stack>("Sequential"));
    if (o.small_input()) {
      features->add("conv0", make<nn::Conv2d>(nn::Conv2dOptions(o.in_channels(), c.init_features, 3).padding(1).bias(false)));
    } else {
      features->add("conv0", make<nn::Conv2d>(
                                 nn::Conv2dOptions(o.in_channels(), c.init_features, 7).stride(2).padding(3).bias(false)));
    }
    features->add("norm0", make<nn::BatchNorm2d>(c.init_features));
    features->add("relu0", make<nn::ReLU>());
    if (!o.small_input()) features->add("pool0", make<nn::MaxPool2d>(F::PoolOptions(3).stride(2).padding(1)));
    int64_t ch = c.init_features;
    for (size_t i = 0; i < c.blocks.size(); ++i) {
      features->add(fmt::format("denseblock{}", i + 1), make<DenseBlock>(c.blocks[i], ch, c.growth, c.bn_size,
                                                                         o.dropout().value_or(0.0), o.memory_efficient()));
      ch += c.blocks[i] * c.growth;
      if (i + 1 < c.blocks.size()) {
        const auto out = int64_t(double(ch) * o.compression());
        features->add(fmt::format("transition{}", i + 1), make<Transition>(ch, out));
        ch = out;
      }
    }
    features->add("norm5", make<nn::BatchNorm2d>(ch));
    classifier = register_module("classifier", make<nn::Linear>(ch, o.num_classes()));
    detail::init_weights(*this, detail::Init::DenseNet);
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = relu((*features)(x));
    return (*classifier)(tg::flatten(F::adaptive_avg_pool2d(y, 1), 1));
  }
  std::shared_ptr<Stack> features;
  std::shared_ptr<nn::Linear> classifier;
};

}  // namespace

ModulePtr densenet121(const ModelOptions& o) {
  detail::check_options(o, "densenet121");
  return std::make_shared<DenseNet>(DenseNetConfig{32, 64, 4, {6, 12, 24, 16}}, o);
}

ModulePtr densenet_bc(int64_t depth, int64_t growth_rate, const ModelOptions& o) {
  detail::check_options(o, "densenet_bc");
  if (depth < 10 || (depth - 4) % 6 != 0)
    throw Error(fmt::format("densenet_bc: depth must be 6n + 4 with n >= 1 (40, 100, 190...), got {}", depth));
  if (growth_rate < 1) throw Error(fmt::format("densenet_bc: growth_rate must be >= 1, got {}", growth_rate));
  const int64_t n = (depth - 4) / 6;
  return std::make_shared<DenseNet>(DenseNetConfig{growth_rate, 2 * growth_rate, 4, {n, n, n}}, o);
}

}  // namespace tg::models
