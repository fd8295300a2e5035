// autograd::to_dot: the graph behind a small expression and a module, checked by structure
// (node and edge counts, labels) rather than by text.
#include <doctest/doctest.h>

#include <regex>
#include <string>

#include <tapegrad.hpp>

using tg::Tensor;

namespace {

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

int edges(const std::string& dot) { return count(dot, " -> "); }

int nodes(const std::string& dot) {
  const std::regex node(R"(\n  n\d+ \[label=)");
  return int(std::distance(std::sregex_iterator(dot.begin(), dot.end(), node), std::sregex_iterator()));
}

}  // namespace

TEST_CASE("to_dot: one node per tape node and leaf, edges towards the leaves") {
  Tensor x = tg::randn({3, 4}).requires_grad_(true), w = tg::randn({4, 2}).requires_grad_(true);
  Tensor b = tg::randn({2});  // no gradient: no node, no edge
  Tensor loss = tg::exp(tg::matmul(x, w) + b).sum();
  const std::string dot = tg::autograd::to_dot(loss);
  CAPTURE(dot);
  CHECK(dot.rfind("digraph tape {", 0) == 0);
  CHECK(dot.back() == '\n');
  // sum (a keepdim sum, then a reshape to [] named after it), exp, add, matmul and the two leaves x and w.
  CHECK(nodes(dot) == 7);
  CHECK(edges(dot) == 6);  // reshape->sum->exp->add->matmul, matmul->x, matmul->w
  // The composite's last node carries its name (the reshape of a keepdim sum is called "sum").
  CHECK(dot.find("n0 [label=\"sum\\n[] float32\", penwidth=2]") != std::string::npos);
  CHECK(dot.find("label=\"sum\\n[1, 1] float32\"") != std::string::npos);
  CHECK(dot.find("exp\\n[3, 2] float32\\nkeeps its output: 24 B") != std::string::npos);
  CHECK(count(dot, "label=\"leaf\\n") == 2);
  CHECK(dot.find("leaf\\n[3, 4] float32") != std::string::npos);
  // A node reached twice is drawn once: y * y has one edge per input to the same node.
  Tensor y = x * 2.0;
  const std::string sq = tg::autograd::to_dot((y * y).sum());
  CHECK(nodes(sq) == 5);  // reshape, sum, mul, mul (by the number), x
  CHECK(edges(sq) == 5);  // reshape->sum->mul, mul->mul twice, mul->x
  CHECK(count(sq, "n2 -> n3;") == 2);
}

TEST_CASE("to_dot: parameter names for a module's leaves; a tensor without a graph") {
  tg::manual_seed(1);
  auto net = std::make_shared<tg::nn::Sequential>(std::initializer_list<std::shared_ptr<tg::nn::Module>>{
      std::make_shared<tg::nn::Linear>(4, 3), std::make_shared<tg::nn::ReLU>(), std::make_shared<tg::nn::Linear>(3, 2)});
  Tensor loss = net->forward(tg::randn({5, 4})).sum();
  const std::string dot = tg::autograd::to_dot(loss, net->named_parameters());
  CAPTURE(dot);
  for (const char* name : {"0.weight", "0.bias", "2.weight", "2.bias"})
    CHECK(dot.find(std::string("label=\"") + name + "\\n") != std::string::npos);
  CHECK(dot.find("0.weight\\n[3, 4] float32") != std::string::npos);
  CHECK(count(dot, "fillcolor") == 4);  // the four parameters are the only leaves
  const std::string plain = tg::autograd::to_dot(tg::ones({2, 2}));
  CHECK(nodes(plain) == 1);
  CHECK(edges(plain) == 0);
  CHECK(plain.find("[2, 2] float32 (no graph)") != std::string::npos);
}
