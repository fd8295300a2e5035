// GoogLeNet (Szegedy et al. 2014), as torchvision 0.14 builds it with aux_logits=False and
// transform_input=False: a stem, nine Inception modules between ceil-mode max pools, global
// average pooling, dropout and one linear layer.
#include <fmt/format.h>

#include "detail.hpp"
#include "googlenet.hpp"
#include "models.hpp"

namespace tg::models {
namespace F = nn::functional;
using detail::make;

BasicConv2d::BasicConv2d(const nn::Conv2dOptions& conv_options) : nn::Module("BasicConv2d") {
  conv = register_module("conv", make<nn::Conv2d>(nn::Conv2dOptions(conv_options).bias(false)));
  bn = register_module("bn", make<nn::BatchNorm2d>(nn::BatchNormOptions(conv_options.out_channels()).eps(1e-3)));
}

Tensor BasicConv2d::forward(const Tensor& x) { return relu((*bn)((*conv)(x))); }

namespace {
std::shared_ptr<BasicConv2d> basic(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return make<BasicConv2d>(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
}
F::PoolOptions ceil_pool(int64_t k, int64_t stride, int64_t padding = 0) {
  return F::PoolOptions(k).stride(stride).padding(padding).ceil_mode(true);
}
}  // namespace

Inception::Inception(int64_t in, int64_t ch1x1, int64_t ch3x3red, int64_t ch3x3, int64_t ch5x5red, int64_t ch5x5,
                     int64_t pool_proj)
    : nn::Module("Inception") {
  branch1 = register_module("branch1", basic(in, ch1x1, 1));
  branch2 = register_module("branch2", detail::seq({basic(in, ch3x3red, 1), basic(ch3x3red, ch3x3, 3)}));
  branch3 = register_module("branch3", detail::seq({basic(in, ch5x5red, 1), basic(ch5x5red, ch5x5, 3)}));
  branch4 = register_module("branch4", detail::seq({make<nn::MaxPool2d>(ceil_pool(3, 1, 1)), basic(in, pool_proj, 1)}));
}

Tensor Inception::forward(const Tensor& x) {
  return tg::cat({(*branch1)(x), (*branch2)(x), (*branch3)(x), (*branch4)(x)}, 1);
}

namespace {

class GoogLeNet : public nn::Module {
 public:
  explicit GoogLeNet(const ModelOptions& o) : nn::Module("GoogLeNet"), small_input_(o.small_input()) {
    conv1 = register_module("conv1", o.small_input() ? basic(o.in_channels(), 64, 3) : basic(o.in_channels(), 64, 7, 2));
    conv2 = register_module("conv2", basic(64, 64, 1));
    conv3 = register_module("conv3", basic(64, 192, 3));
    // (name, in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection): the paper's table 1.
    const struct { const char* name; int64_t c[7]; } table[] = {
        {"inception3a", {192, 64, 96, 128, 16, 32, 32}},    {"inception3b", {256, 128, 128, 192, 32, 96, 64}},
        {"inception4a", {480, 192, 96, 208, 16, 48, 64}},   {"inception4b", {512, 160, 112, 224, 24, 64, 64}},
        {"inception4c", {512, 128, 128, 256, 24, 64, 64}},  {"inception4d", {512, 112, 144, 288, 32, 64, 64}},
        {"inception4e", {528, 256, 160, 320, 32, 128, 128}}, {"inception5a", {832, 256, 160, 320, 32, 128, 128}},
        {"inception5b", {832, 384, 192, 384, 48, 128, 128}}};
    for (const auto& t : table)
      inception_.push_back(register_module(t.name, make<Inception>(t.c[0], t.c[1], t.c[2], t.c[3], t.c[4], t.c[5], t.c[6])));
    dropout = register_module("dropout", make<nn::Dropout>(o.dropout().value_or(0.2)));
    fc = register_module("fc", make<nn::Linear>(1024, o.num_classes()));
    detail::init_weights(*this, detail::Init::GoogLeNet);
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*conv1)(x);
    if (!small_input_) y = F::max_pool2d(y, ceil_pool(3, 2));
    y = F::max_pool2d((*conv3)((*conv2)(y)), ceil_pool(3, 2));
    y = (*inception_[1])((*inception_[0])(y));
    y = F::max_pool2d(y, ceil_pool(3, 2));
    for (size_t i = 2; i < 7; ++i) y = (*inception_[i])(y);
    y = F::max_pool2d(y, ceil_pool(2, 2));
    y = (*inception_[8])((*inception_[7])(y));
    y = tg::flatten(F::adaptive_avg_pool2d(y, 1), 1);
    return (*fc)((*dropout)(y));
  }
  std::shared_ptr<BasicConv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::Dropout> dropout;
  std::shared_ptr<nn::Linear> fc;

 private:
  std::vector<std::shared_ptr<Inception>> inception_;
  bool small_input_;
};

}  // namespace

ModulePtr googlenet(const ModelOptions& o) {
  detail::check_options(o, "googlenet");
  return std::make_shared<GoogLeNet>(o);
}

}  // namespace tg::models
