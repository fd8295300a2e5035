#include "models.hpp"

#include <fmt/format.h>

#include <functional>
#include <map>

namespace models {
namespace nn = tg::nn;
using tg::Tensor;

namespace {

// Containers take module values in braces: built left to right, so the random initial weights
// come out in the order the layers are written (in parentheses C++ leaves the order open).
std::shared_ptr<nn::Module> mlp() {
  return std::make_shared<nn::Sequential>(nn::Sequential{nn::Flatten(), nn::Linear(784, 256), nn::ReLU(),
                                                         nn::Linear(256, 128), nn::ReLU(), nn::Linear(128, 10)});
}

// LeNet-5 for 28x28 (padding 2 on the first conv), with ReLU and max pooling.
std::shared_ptr<nn::Module> lenet() {
  return std::make_shared<nn::Sequential>(nn::Sequential{
      nn::Conv2d(nn::Conv2dOptions(1, 6, 5).padding(2)), nn::ReLU(), nn::MaxPool2d(2),  //
      nn::Conv2d(6, 16, 5), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),                //
      nn::Linear(400, 120), nn::ReLU(), nn::Linear(120, 84), nn::ReLU(), nn::Linear(84, 10)});
}

// The cnn-bn, identical to the PyTorch model in bench/pytorch_cnn_bn.py.
std::shared_ptr<nn::Module> cnn_bn() {
  return std::make_shared<nn::Sequential>(nn::Sequential{
      nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::BatchNorm2d(32), nn::ReLU(), nn::MaxPool2d(2),
      nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::BatchNorm2d(64), nn::ReLU(), nn::MaxPool2d(2),
      nn::Flatten(), nn::Linear(3136, 128), nn::ReLU(), nn::Dropout(0.5), nn::Linear(128, 10)});
}

// A ResNet basic block: conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU.
struct BasicBlock : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Sequential> shortcut;
  BasicBlock(int64_t in, int64_t out, int64_t stride) : nn::Module("BasicBlock") {
    conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(out));
    conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2 = register_module("bn2", nn::BatchNorm2d(out));
    if (stride != 1 || in != out)
      shortcut = register_module(
          "shortcut", nn::Sequential{nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                                     nn::BatchNorm2d(out)});
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*bn2)((*conv2)(tg::relu((*bn1)((*conv1)(x)))));
    return tg::relu(y + (shortcut ? (*shortcut)(x) : x));
  }
};

std::shared_ptr<nn::Module> resnet_small() {
  return std::make_shared<nn::Sequential>(nn::Sequential{
      nn::Conv2d(nn::Conv2dOptions(1, 16, 3).padding(1).bias(false)), nn::BatchNorm2d(16), nn::ReLU(),
      BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2),  //
      nn::AdaptiveAvgPool2d(1), nn::Flatten(), nn::Linear(64, 10)});
}

// DenseNet: each layer adds `growth` channels (the DenseLayer of API.md); transitions halve.
struct DenseLayer : nn::Module {
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Conv2d> conv;
  DenseLayer(int64_t in, int64_t growth) : nn::Module("DenseLayer") {
    bn = register_module("bn", nn::BatchNorm2d(in));
    conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, growth, 3).padding(1).bias(false)));
  }
  Tensor forward(const Tensor& x) override { return tg::cat({x, (*conv)(tg::relu((*bn)(x)))}, 1); }
};

std::shared_ptr<nn::Module> densenet_small() {
  const int64_t growth = 12;
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(nn::Conv2d(nn::Conv2dOptions(1, 24, 3).padding(1).bias(false)));
  int64_t c = 24;
  for (int block = 0; block < 3; ++block) {
    for (int l = 0; l < 4; ++l, c += growth) net->push_back(DenseLayer(c, growth));
    if (block < 2) {  // transition: BN, ReLU, 1x1 conv halving the channels, 2x2 average pooling
      net->push_back(nn::BatchNorm2d(c));
      net->push_back(nn::ReLU());
      net->push_back(nn::Conv2d(nn::Conv2dOptions(c, c / 2, 1).bias(false)));
      net->push_back(nn::AvgPool2d(2));
      c /= 2;
    }
  }
  net->push_back(nn::BatchNorm2d(c));
  net->push_back(nn::ReLU());
  net->push_back(nn::AdaptiveAvgPool2d(1));
  net->push_back(nn::Flatten());
  net->push_back(nn::Linear(c, 10));
  return net;
}

// The zoo (tg::models) with the small-input stem for [N, 1, 28, 28] and 10 classes.
const std::map<std::string, std::function<std::shared_ptr<nn::Module>(const tg::models::ModelOptions&)>>& zoo() {
  namespace Z = tg::models;
  static const std::map<std::string, std::function<std::shared_ptr<nn::Module>(const Z::ModelOptions&)>> z{
      {"alexnet", Z::alexnet},
      {"vgg11_bn", Z::vgg11_bn},
      {"vgg16_bn", Z::vgg16_bn},
      {"googlenet", Z::googlenet},
      {"resnet18", Z::resnet18},
      {"resnet34", Z::resnet34},
      {"resnet50", Z::resnet50},
      {"densenet121", Z::densenet121},
      {"densenet-bc-40", [](const Z::ModelOptions& o) { return Z::densenet_bc(40, 12, o); }},
      {"densenet-bc-100", [](const Z::ModelOptions& o) { return Z::densenet_bc(100, 12, o); }}};
  return z;
}

}  // namespace

const std::vector<std::string>& names() {
  static const std::vector<std::string> n{"mlp",      "lenet",     "cnn-bn",    "resnet-small", "densenet-small",
                                          "alexnet",  "vgg11_bn",  "vgg16_bn",  "googlenet",    "resnet18",
                                          "resnet34", "resnet50",  "densenet121", "densenet-bc-40", "densenet-bc-100"};
  return n;
}

std::shared_ptr<nn::Module> make_model(const std::string& name) {
  if (name == "mlp") return mlp();
  if (name == "lenet") return lenet();
  if (name == "cnn-bn") return cnn_bn();
  if (name == "resnet-small") return resnet_small();
  if (name == "densenet-small") return densenet_small();
  auto it = zoo().find(name);
  if (it != zoo().end()) return it->second(tg::models::ModelOptions().in_channels(1).num_classes(10).small_input(true));
  throw tg::Error(fmt::format("model: unknown model '{}' (expected one of: {})", name, fmt::join(names(), ", ")));
}

int64_t parameter_count(const nn::Module& m) {
  int64_t n = 0;
  for (const Tensor& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace models
