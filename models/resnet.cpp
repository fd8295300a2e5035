// ResNet-18/34/50 (He et al. 2015), as torchvision 0.14 builds them: a stem, four stages of
// residual blocks (the first block of a stage carries the stride and a projection shortcut),
// global average pooling and one linear layer.
#include <fmt/format.h>

#include "detail.hpp"
#include "models.hpp"
#include "resnet.hpp"

namespace tg::models {
namespace F = nn::functional;
using detail::make;

namespace {
std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return make<nn::Conv2d>(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}
std::shared_ptr<nn::BatchNorm2d> bn(int64_t c) { return make<nn::BatchNorm2d>(c); }
}  // namespace

BasicBlock::BasicBlock(int64_t in, int64_t planes, int64_t stride, std::shared_ptr<nn::Module> down)
    : nn::Module("BasicBlock") {
  conv1 = register_module("conv1", conv(in, planes, 3, stride));
  bn1 = register_module("bn1", bn(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3));
  bn2 = register_module("bn2", bn(planes));
  if (down) downsample = register_module("downsample", down);
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = (*bn2)((*conv2)(out));
  return relu(out + (downsample ? (*downsample)(x) : x));
}

Bottleneck::Bottleneck(int64_t in, int64_t planes, int64_t stride, std::shared_ptr<nn::Module> down)
    : nn::Module("Bottleneck") {
  conv1 = register_module("conv1", conv(in, planes, 1));
  bn1 = register_module("bn1", bn(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride));
  bn2 = register_module("bn2", bn(planes));
  conv3 = register_module("conv3", conv(planes, planes * expansion, 1));
  bn3 = register_module("bn3", bn(planes * expansion));
  if (down) downsample = register_module("downsample", down);
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = relu((*bn2)((*conv2)(out)));
  out = (*bn3)((*conv3)(out));
  return relu(out + (downsample ? (*downsample)(x) : x));
}

namespace {

class ResNet : public nn::Module {
 public:
  template <typename Block>
  static std::shared_ptr<ResNet> build(const std::vector<int64_t>& layers, const ModelOptions& o) {
    auto net = std::make_shared<ResNet>();
    net->small_input_ = o.small_input();
    // ImageNet: 7x7 stride 2 then 3x3 stride-2 max pooling; small input: one 3x3 stride 1.
    net->conv1 = net->register_module("conv1", o.small_input() ? conv(o.in_channels(), 64, 3) : conv(o.in_channels(), 64, 7, 2));
    net->bn1 = net->register_module("bn1", bn(64));
    int64_t in = 64;
    for (size_t i = 0; i < layers.size(); ++i) {
      const int64_t planes = 64 << i, stride = i == 0 ? 1 : 2;
      auto stage = std::make_shared<nn::Sequential>();
      for (int64_t b = 0; b < layers[i]; ++b) {
        std::shared_ptr<nn::Module> down;
        if (b == 0 && (stride != 1 || in != planes * Block::expansion))
          down = detail::seq({conv(in, planes * Block::expansion, 1, stride), bn(planes * Block::expansion)});
        stage->push_back(make<Block>(in, planes, b == 0 ? stride : 1, down));
        in = planes * Block::expansion;
      }
      net->stages_.push_back(net->register_module(fmt::format("layer{}", i + 1), stage));
    }
    net->fc = net->register_module("fc", make<nn::Linear>(in, o.num_classes()));
    detail::init_weights(*net, detail::Init::KaimingFanOut);
    return net;
  }
  ResNet() : nn::Module("ResNet") {}
  Tensor forward(const Tensor& x) override {
    Tensor y = relu((*bn1)((*conv1)(x)));
    if (!small_input_) y = F::max_pool2d(y, F::PoolOptions(3).stride(2).padding(1));
    for (auto& stage : stages_) y = (*stage)(y);
    return (*fc)(tg::flatten(F::adaptive_avg_pool2d(y, 1), 1));
  }
  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Linear> fc;

 private:
  std::vector<std::shared_ptr<nn::Sequential>> stages_;
  bool small_input_ = false;
};

}  // namespace

ModulePtr resnet18(const ModelOptions& o) {
  detail::check_options(o, "resnet18");
  return ResNet::build<BasicBlock>({2, 2, 2, 2}, o);
}
ModulePtr resnet34(const ModelOptions& o) {
  detail::check_options(o, "resnet34");
  return ResNet::build<BasicBlock>({3, 4, 6, 3}, o);
}
ModulePtr resnet50(const ModelOptions& o) {
  detail::check_options(o, "resnet50");
  return ResNet::build<Bottleneck>({3, 4, 6, 3}, o);
}

}  // namespace tg::models
