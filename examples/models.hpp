#pragma once
// The models of the Fashion-MNIST trainer and its benchmark: mlp, lenet, cnn-bn, resnet-small,
// densenet-small, and the zoo (tg::models) with its small-input stem: alexnet, vgg11_bn, vgg16_bn,
// googlenet, resnet18/34/50, densenet121, densenet-bc-40 and -100 (k = 12); all for
// [N, 1, 28, 28] inputs and 10 classes.
#include <tapegrad.hpp>

#include <memory>
#include <string>
#include <vector>

namespace models {

/// The model names make_model accepts.
const std::vector<std::string>& names();
/// A fresh model with PyTorch's default initialisation; throws tg::Error for an unknown name.
std::shared_ptr<tg::nn::Module> make_model(const std::string& name);
/// The number of parameter elements.
int64_t parameter_count(const tg::nn::Module& m);

}  // namespace models
