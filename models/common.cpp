// Option checks and torchvision's initialisation schemes, shared by the model files.
#include <fmt/format.h>

#include "../autograd/error.hpp"
#include "../nn/init.hpp"
#include "detail.hpp"

namespace tg::models::detail {

void check_options(const ModelOptions& o, const std::string& model) {
  if (o.num_classes() < 1) throw Error(fmt::format("{}: num_classes must be >= 1, got {}", model, o.num_classes()));
  if (o.in_channels() < 1) throw Error(fmt::format("{}: in_channels must be >= 1, got {}", model, o.in_channels()));
  if (o.dropout() && !(*o.dropout() >= 0.0 && *o.dropout() < 1.0))
    throw Error(fmt::format("{}: dropout must be in [0, 1), got {}", model, *o.dropout()));
  if (!(o.compression() > 0.0 && o.compression() <= 1.0))
    throw Error(fmt::format("{}: compression must be in (0, 1], got {}", model, o.compression()));
}

void init_weights(nn::Module& root, Init scheme) {
  using namespace nn::init;
  for (auto& nm : root.named_modules()) {
    nn::Module* m = nm.second.get();
    if (auto* conv = dynamic_cast<nn::ConvNd*>(m)) {
      if (scheme == Init::GoogLeNet) {
        normal_(conv->weight, 0.0, 0.01);
      } else if (scheme == Init::DenseNet) {
        kaiming_normal_(conv->weight);
      } else {
        kaiming_normal_(conv->weight, 0.0, FanMode::FanOut, Nonlinearity::ReLU);
      }
      if (conv->bias.defined() && scheme == Init::VGG) zeros_(conv->bias);
    } else if (auto* bn = dynamic_cast<nn::BatchNormNd*>(m)) {
      if (bn->weight.defined()) ones_(bn->weight);
      if (bn->bias.defined()) zeros_(bn->bias);
    } else if (auto* fc = dynamic_cast<nn::Linear*>(m)) {
      if (scheme == Init::VGG || scheme == Init::GoogLeNet) normal_(fc->weight, 0.0, 0.01);
      if (fc->bias.defined() && scheme != Init::KaimingFanOut) zeros_(fc->bias);
    }
  }
}

std::shared_ptr<nn::Sequential> seq(std::initializer_list<std::shared_ptr<nn::Module>> modules) {
  return std::make_shared<nn::Sequential>(modules);
}

}  // namespace tg::models::detail
