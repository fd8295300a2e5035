// AlexNet (Krizhevsky et al. 2012) and VGG-11/16 with batch norm (Simonyan and Zisserman 2014),
// as torchvision 0.14 builds them: `features` (convolutions, ReLU, max pooling), `avgpool`
// (adaptive), `classifier` (linear layers with dropout); forward is the three in order.
#include <fmt/format.h>

#include <algorithm>

#include "detail.hpp"
#include "models.hpp"

namespace tg::models {
namespace F = nn::functional;
using detail::make;

namespace {

class Classic : public nn::Module {
 public:
  Classic(const char* type_name, std::shared_ptr<nn::Sequential> f, int64_t pool, std::shared_ptr<nn::Sequential> c)
      : nn::Module(type_name) {
    features = register_module("features", std::move(f));
    avgpool = register_module("avgpool", make<nn::AdaptiveAvgPool2d>(pool));
    classifier = register_module("classifier", std::move(c));
  }
  Tensor forward(const Tensor& x) override { return (*classifier)(tg::flatten((*avgpool)((*features)(x)), 1)); }
  std::shared_ptr<nn::Sequential> features, classifier;
  std::shared_ptr<nn::AdaptiveAvgPool2d> avgpool;
};

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t padding = 1) {
  return make<nn::Conv2d>(nn::Conv2dOptions(in, out, k).stride(stride).padding(padding));
}
std::shared_ptr<nn::MaxPool2d> max_pool(int64_t k, int64_t stride) {
  return make<nn::MaxPool2d>(F::PoolOptions(k).stride(stride));
}
std::shared_ptr<nn::LocalResponseNorm> lrn() {  // the paper's n = 5, alpha = 1e-4, beta = 0.75, k = 2
  return make<nn::LocalResponseNorm>(nn::LocalResponseNormOptions(5).alpha(1e-4).beta(0.75).k(2.0));
}
// Dropout, linear, ReLU, dropout, linear, ReLU, linear: AlexNet's head (VGG's puts each dropout after its ReLU).
std::shared_ptr<nn::Sequential> alexnet_head(int64_t in, int64_t hidden, int64_t classes, double p) {
  return detail::seq({make<nn::Dropout>(p), make<nn::Linear>(in, hidden), make<nn::ReLU>(), make<nn::Dropout>(p),
                      make<nn::Linear>(hidden, hidden), make<nn::ReLU>(), make<nn::Linear>(hidden, classes)});
}

constexpr int64_t M = 0;  // a max pool in a VGG configuration
std::shared_ptr<nn::Module> vgg(const char* name, std::vector<int64_t> cfg, const ModelOptions& o) {
  detail::check_options(o, name);
  // A 28 px input survives four 2x2 pools, not five: the small stem drops the first one.
  if (o.small_input()) cfg.erase(std::find(cfg.begin(), cfg.end(), M));
  auto features = std::make_shared<nn::Sequential>();
  int64_t in = o.in_channels();
  for (int64_t v : cfg) {
    if (v == M) {
      features->push_back(max_pool(2, 2));
    } else {
      features->push_back(conv(in, v, 3));
      features->push_back(make<nn::BatchNorm2d>(v));
      features->push_back(make<nn::ReLU>());
      in = v;
    }
  }
  // ImageNet: 7x7 positions into 4096-wide layers; small input: the 1x1 that remains, 512 wide.
  const int64_t pool = o.small_input() ? 1 : 7, hidden = o.small_input() ? 512 : 4096;
  const double p = o.dropout().value_or(0.5);
  auto classifier = detail::seq({make<nn::Linear>(512 * pool * pool, hidden), make<nn::ReLU>(), make<nn::Dropout>(p),
                                 make<nn::Linear>(hidden, hidden), make<nn::ReLU>(), make<nn::Dropout>(p),
                                 make<nn::Linear>(hidden, o.num_classes())});
  auto net = std::make_shared<Classic>("VGG", features, pool, classifier);
  detail::init_weights(*net, detail::Init::VGG);
  return net;
}

}  // namespace

ModulePtr alexnet(const ModelOptions& o) {
  detail::check_options(o, "alexnet");
  const double p = o.dropout().value_or(0.5);
  const int64_t c = o.in_channels();
  if (o.small_input()) {  // 28 px: 28 -> 14 -> 7 -> 3 through three 2x2 pools
    auto features = detail::seq({conv(c, 64, 3), make<nn::ReLU>(), lrn(), max_pool(2, 2), conv(64, 192, 3),
                                 make<nn::ReLU>(), lrn(), max_pool(2, 2), conv(192, 384, 3), make<nn::ReLU>(),
                                 conv(384, 256, 3), make<nn::ReLU>(), conv(256, 256, 3), make<nn::ReLU>(),
                                 max_pool(2, 2)});
    return std::make_shared<Classic>("AlexNet", features, 3, alexnet_head(256 * 3 * 3, 1024, o.num_classes(), p));
  }
  auto features = detail::seq({conv(c, 64, 11, 4, 2), make<nn::ReLU>(), max_pool(3, 2), conv(64, 192, 5, 1, 2),
                               make<nn::ReLU>(), max_pool(3, 2), conv(192, 384, 3), make<nn::ReLU>(),
                               conv(384, 256, 3), make<nn::ReLU>(), conv(256, 256, 3), make<nn::ReLU>(),
                               max_pool(3, 2)});
  return std::make_shared<Classic>("AlexNet", features, 6, alexnet_head(256 * 6 * 6, 4096, o.num_classes(), p));
}

ModulePtr vgg11_bn(const ModelOptions& o) {
  return vgg("vgg11_bn", {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M}, o);
}
ModulePtr vgg16_bn(const ModelOptions& o) {
  return vgg("vgg16_bn", {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M}, o);
}

}  // namespace tg::models
