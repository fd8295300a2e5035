#pragma once
/// The recorded graph as Graphviz DOT, for a look at what backward will run:
///
///   std::string dot = tg::autograd::to_dot(loss, model->named_parameters());
///   // write it to a file, then: dot -Tsvg graph.dot -o graph.svg
#include <string>
#include <utility>
#include <vector>

#include "tensor.hpp"

namespace tg::autograd {

/// One DOT node per tape node behind `root` (op name, output shape and dtype, and the bytes of
/// the output it keeps for its VJP), one per leaf that receives a gradient (its shape and dtype),
/// edges in the direction gradients flow: from root towards the leaves. A tensor without a
/// graph gives a digraph with its one node.
std::string to_dot(const Tensor& root);
/// The same, leaves labelled by name where `names` holds them (a module's named_parameters()).
std::string to_dot(const Tensor& root, const std::vector<std::pair<std::string, Tensor>>& names);

}  // namespace tg::autograd
