#pragma once
// What the model files share: option checks and torchvision's weight initialisations.
#include <memory>
#include <string>

#include "../nn/modules.hpp"
#include "models.hpp"

namespace tg::models::detail {

/// Throws tg::Error naming `model` when an option is out of range (num_classes, in_channels < 1,
/// dropout outside [0, 1), compression outside (0, 1]).
void check_options(const ModelOptions& o, const std::string& model);

/// How torchvision initialises a model's convolutions and linear layers after building it
/// (batch norm: weight 1, bias 0 in every scheme).
enum class Init {
  KaimingFanOut,  // ResNet: convs kaiming_normal_(fan_out, relu); linear as PyTorch's default
  VGG,            // convs kaiming_normal_(fan_out, relu), bias 0; linear normal(0, 0.01), bias 0
  DenseNet,       // convs kaiming_normal_ (fan_in); linear bias 0
  GoogLeNet,      // convs and linear normal(0, 0.01) (torchvision truncates at 200 std)
};
void init_weights(nn::Module& m, Init scheme);

template <typename M, typename... A>
std::shared_ptr<M> make(A&&... a) {
  return std::make_shared<M>(std::forward<A>(a)...);
}
/// A Sequential of the given modules, numbered "0", "1", ...
std::shared_ptr<nn::Sequential> seq(std::initializer_list<std::shared_ptr<nn::Module>> modules);

}  // namespace tg::models::detail
