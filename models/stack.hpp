#pragma once
/// tg::models::Stack: children with names of their own ("conv0", "denseblock1", ...) run in
/// order, as torchvision's nn.Sequential(OrderedDict(...)); nn::Sequential numbers its children.
#include <memory>
#include <string>
#include <vector>

#include "../nn/module.hpp"

namespace tg::models {

class Stack : public nn::Module {
 public:
  explicit Stack(std::string type_name = "Stack") : nn::Module(std::move(type_name)) {}
  /// Registers m under `name` and appends it to the run order.
  template <typename M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    register_module(name, m);
    items_.push_back(m);
    return m;
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (auto& m : items_) y = (*m)(y);
    return y;
  }

 private:
  std::vector<std::shared_ptr<nn::Module>> items_;
};

}  // namespace tg::models
