// tg::nn::Module and the built-in modules: dotted names as PyTorch prints them, traversal,
// modes, zero_grad, dtype conversion in place, state dicts (strict and not), forward hooks,
// error messages that name the module path, option validation, PyTorch's default
// initialisation and tg::nn::init; BatchNorm's running statistics and a small Sequential
// against PyTorch (tests/golden/generate_modules.py -> modules.txt); gradcheck and
// gradgradcheck of whole modules in float64.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <tapegrad.hpp>

#include "golden_io.hpp"

using tg::Tensor;
namespace nn = tg::nn;
namespace F = tg::nn::functional;

namespace {

// ---- the custom modules of API.md and a few nested ones ----

// API.md's DenseLayer, verbatim.
struct DenseLayer : tg::nn::Module {
  std::shared_ptr<tg::nn::BatchNorm2d> bn;
  std::shared_ptr<tg::nn::Conv2d> conv;
  DenseLayer(int64_t in, int64_t growth) {
    bn = register_module("bn", std::make_shared<tg::nn::BatchNorm2d>(in));
    conv = register_module("conv", std::make_shared<tg::nn::Conv2d>(
        tg::nn::Conv2dOptions(in, growth, 3).padding(1).bias(false)));
  }
  Tensor forward(const Tensor& x) override { return tg::cat({x, conv->forward(tg::relu(bn->forward(x)))}, 1); }
};

// A DenseNet block: each layer sees every earlier feature map.
struct DenseBlock : nn::Module {
  std::shared_ptr<nn::ModuleList> layers;
  DenseBlock(int64_t in, int64_t growth, int n) : nn::Module("DenseBlock") {
    layers = register_module("layers", std::make_shared<nn::ModuleList>());
    for (int i = 0; i < n; ++i) layers->push_back(std::make_shared<DenseLayer>(in + i * growth, growth));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (const auto& l : *layers) y = (*l)(y);
    return y;
  }
};

struct Layer : nn::Module {
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  explicit Layer(int64_t c) : nn::Module("Layer") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(c, c, 3).padding(1).bias(false)));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(c));
  }
  Tensor forward(const Tensor& x) override { return tg::relu((*bn)((*conv)(x))); }
};

struct Block : nn::Module {
  std::shared_ptr<Layer> layer1, layer2;
  explicit Block(int64_t c) : nn::Module("Block") {
    layer1 = register_module("layer1", std::make_shared<Layer>(c));
    layer2 = register_module("layer2", std::make_shared<Layer>(c));
  }
  Tensor forward(const Tensor& x) override { return (*layer2)((*layer1)(x)); }
};

struct Net : nn::Module {
  std::shared_ptr<Block> block1;
  std::shared_ptr<nn::Dropout> drop;
  std::shared_ptr<Block> block2;
  Tensor scale;
  Net() : nn::Module("Net") {
    block1 = register_module("block1", std::make_shared<Block>(4));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.5));
    block2 = register_module("block2", std::make_shared<Block>(4));
    scale = register_parameter("scale", tg::ones({1}));
  }
  Tensor forward(const Tensor& x) override { return (*block2)((*drop)((*block1)(x))) * scale; }
};

// A feature extractor whose child 3 expects 16 channels but gets 8 (the error-message example).
struct Classifier : nn::Module {
  std::shared_ptr<nn::Sequential> features;
  Classifier() : nn::Module("Classifier") {
    features = register_module("features", std::make_shared<nn::Sequential>());
    features->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 8, 3).padding(1)));
    features->push_back(std::make_shared<nn::BatchNorm2d>(8));
    features->push_back(std::make_shared<nn::ReLU>());
    features->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(16, 32, 3).padding(1)));
  }
  Tensor forward(const Tensor& x) override { return (*features)(x); }
};

std::shared_ptr<nn::Sequential> conv_bn_relu() {
  auto s = std::make_shared<nn::Sequential>();
  s->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 8, 3).padding(1)));
  s->push_back(std::make_shared<nn::BatchNorm2d>(8));
  s->push_back(std::make_shared<nn::ReLU>());
  return s;
}

// ---- helpers ----

std::vector<std::string> names_of(const nn::NamedTensors& v) {
  std::vector<std::string> out;
  for (const auto& [n, t] : v) out.push_back(n);
  return out;
}

bool same_impl(const Tensor& a, const Tensor& b) { return a.impl() == b.impl(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

struct Stats {
  double mean = 0, std = 0, max_abs = 0;
};
Stats stats(const Tensor& t) {
  auto v = t.to_vector<double>();
  Stats s;
  for (double x : v) {
    s.mean += x;
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  s.mean /= double(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / double(v.size() - 1));
  return s;
}

// A deep copy of a state dict (state_dict() shares storage with the module, as PyTorch's does).
nn::StateDict copy_of(const nn::StateDict& sd) {
  nn::StateDict out;
  for (const auto& [k, t] : sd) out[k] = t.clone();
  return out;
}

// Checks that f throws tg::Error and that its message contains every piece.
template <typename Fn>
std::string error_of(Fn&& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  FAIL("expected a tg::Error");
  return "";
}

void check_contains(const std::string& msg, const std::vector<std::string>& pieces) {
  for (const auto& p : pieces) CHECK_MESSAGE(msg.find(p) != std::string::npos, "'", p, "' not in: ", msg);
}

}  // namespace

// =====================================================================================
// Names and traversal
// =====================================================================================

TEST_CASE("modules: a Sequential of Conv2d/BatchNorm2d/ReLU names its tensors as PyTorch does") {
  auto s = conv_bn_relu();
  CHECK(names_of(s->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
  CHECK(names_of(s->named_buffers()) ==
        std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"});
  auto bufs = s->named_buffers();
  CHECK(bufs[2].second.dtype() == tg::kInt64);
  CHECK(bufs[2].second.shape() == tg::Shape{});
  CHECK(bufs[2].second.item<int64_t>() == 0);
  CHECK_FALSE(bufs[0].second.requires_grad());
  for (const auto& p : s->parameters()) CHECK(p.requires_grad());
  // The state dict holds both, under the same names.
  std::set<std::string> keys;
  for (const auto& [k, t] : s->state_dict()) keys.insert(k);
  CHECK(keys == std::set<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                      "1.num_batches_tracked"});
}

TEST_CASE("modules: nested custom modules give dotted paths in registration order") {
  Net net;
  auto params = names_of(net.named_parameters());
  std::vector<std::string> want;
  for (std::string b : {"block1", "block2"})
    for (std::string l : {"layer1", "layer2"})
      for (std::string t : {".conv.weight", ".bn.weight", ".bn.bias"}) want.push_back(b + "." + l + t);
  want.insert(want.begin(), "scale");  // own parameters come before the children's
  CHECK(params == want);
  auto buffers = names_of(net.named_buffers());
  CHECK(buffers.size() == 12);
  CHECK(std::find(buffers.begin(), buffers.end(), "block1.layer2.bn.running_mean") != buffers.end());
  CHECK(std::find(buffers.begin(), buffers.end(), "block2.layer1.bn.num_batches_tracked") != buffers.end());
  // The handle under a name is the module's member.
  for (const auto& [n, t] : net.named_buffers())
    if (n == "block1.layer2.bn.running_mean") CHECK(same_impl(t, net.block1->layer2->bn->running_mean));
  // Not recursive: only the module's own.
  CHECK(names_of(net.named_parameters(false)) == std::vector<std::string>{"scale"});
  CHECK(net.named_buffers(false).empty());
  CHECK(names_of(net.block1->layer2->named_parameters()) ==
        std::vector<std::string>{"conv.weight", "bn.weight", "bn.bias"});
}

TEST_CASE("modules: API.md's DenseLayer compiles and concatenates channels; a DenseBlock of three") {
  tg::manual_seed(3);
  DenseLayer layer(6, 4);
  Tensor y = layer.forward(tg::randn({2, 6, 5, 5}));
  CHECK(y.shape() == tg::Shape{2, 10, 5, 5});
  CHECK(names_of(layer.named_parameters()) == std::vector<std::string>{"bn.weight", "bn.bias", "conv.weight"});
  CHECK(layer.conv->weight.shape() == tg::Shape{4, 6, 3, 3});
  CHECK(layer.describe() == "Module");  // no type name given: the default, as in API.md

  DenseBlock block(6, 4, 3);
  Tensor x = tg::randn({2, 6, 5, 5});
  Tensor z = block(x);
  CHECK(z.shape() == tg::Shape{2, 6 + 3 * 4, 5, 5});
  // The input passes through unchanged in the first 6 channels.
  CHECK(max_abs_diff(tg::narrow(z, 1, 0, 6), x) == 0.0);
  auto names = names_of(block.named_parameters());
  CHECK(names.front() == "layers.0.bn.weight");
  CHECK(names.back() == "layers.2.conv.weight");
  CHECK(block.layers->size() == 3);
  CHECK(std::dynamic_pointer_cast<DenseLayer>((*block.layers)[2])->conv->weight.shape() == tg::Shape{4, 14, 3, 3});
  // Gradients reach every parameter.
  z.sum().backward();
  for (const auto& np : block.named_parameters()) CHECK_MESSAGE(np.second.grad().defined(), np.first);
}

TEST_CASE("modules: parameters(), buffers(), children(), named_children() and named_modules()") {
  Net net;
  auto params = net.parameters();
  auto named = net.named_parameters();
  REQUIRE(params.size() == named.size());
  for (size_t i = 0; i < params.size(); ++i) CHECK(same_impl(params[i], named[i].second));
  CHECK(same_impl(params[0], net.scale));
  CHECK(same_impl(params[1], net.block1->layer1->conv->weight));
  CHECK(net.buffers().size() == 12);
  CHECK(net.parameters(false).size() == 1);

  auto kids = net.children();
  REQUIRE(kids.size() == 3);
  CHECK(kids[0].get() == net.block1.get());
  CHECK(kids[1].get() == net.drop.get());
  CHECK(kids[2].get() == net.block2.get());
  auto named_kids = net.named_children();
  CHECK(named_kids[1].first == "drop");

  std::vector<std::string> mods;
  for (const auto& [n, m] : net.named_modules()) mods.push_back(n + ":" + m->type_name());
  CHECK(mods == std::vector<std::string>{
                    ":Net", "block1:Block", "block1.layer1:Layer", "block1.layer1.conv:Conv2d",
                    "block1.layer1.bn:BatchNorm2d", "block1.layer2:Layer", "block1.layer2.conv:Conv2d",
                    "block1.layer2.bn:BatchNorm2d", "drop:Dropout", "block2:Block", "block2.layer1:Layer",
                    "block2.layer1.conv:Conv2d", "block2.layer1.bn:BatchNorm2d", "block2.layer2:Layer",
                    "block2.layer2.conv:Conv2d", "block2.layer2.bn:BatchNorm2d"});
  // From a shared_ptr too (the root then is the owning pointer).
  auto s = conv_bn_relu();
  auto sm = s->named_modules();
  REQUIRE(sm.size() == 4);
  CHECK(sm[0].second == s);
  CHECK(sm[3].first == "2");
  CHECK(sm[3].second->type_name() == "ReLU");

  // A ModuleList names its items "0", "1", ... and iterates them.
  nn::ModuleList list{std::make_shared<nn::Linear>(2, 3), std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(3, 1)};
  CHECK(names_of(list.named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  int n = 0;
  for (const auto& m : list) n += m->type_name() == "Linear";
  CHECK(n == 2);
  CHECK_THROWS_AS(list[3], tg::Error);
  CHECK_THROWS_AS((*conv_bn_relu())[3], tg::Error);
  CHECK_THROWS_AS(list.forward(tg::zeros({1, 2})), tg::Error);  // forward is up to the owner
}

// PyTorch's named_parameters()/parameters()/named_modules() drop duplicates (by identity), so an
// optimizer accepts a tied model's parameters(), while state_dict() keeps every key.
TEST_CASE("modules: a module used twice (tied weights) lists its parameters once, as in PyTorch") {
  auto lin = std::make_shared<nn::Linear>(3, 3);
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(lin);
  seq->push_back(std::make_shared<nn::Tanh>());
  seq->push_back(lin);
  CHECK(names_of(seq->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias"});
  CHECK(seq->parameters().size() == 2);
  CHECK(seq->named_modules().size() == 3);  // "", "0", "1"
  CHECK_NOTHROW(tg::optim::SGD(seq->parameters(), tg::optim::SGDOptions(0.1)));
  // state_dict keeps both names (PyTorch: 0.weight, 0.bias, 2.weight, 2.bias) and loads them.
  std::set<std::string> keys;
  for (const auto& [k, t] : seq->state_dict()) keys.insert(k);
  CHECK(keys == std::set<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK_NOTHROW(seq->load_state_dict(copy_of(seq->state_dict())));
}

TEST_CASE("modules: registration rejects taken and invalid names") {
  nn::Linear lin(2, 3);
  CHECK_THROWS_AS(lin.register_parameter("weight", tg::zeros({1})), tg::Error);
  CHECK_THROWS_AS(lin.register_buffer("bias", tg::zeros({1})), tg::Error);
  CHECK_THROWS_AS(lin.register_module("weight", std::make_shared<nn::ReLU>()), tg::Error);
  CHECK_THROWS_AS(lin.register_buffer("a.b", tg::zeros({1})), tg::Error);
  CHECK_THROWS_AS(lin.register_parameter("", tg::zeros({1})), tg::Error);
  CHECK_THROWS_AS(lin.register_module("m", std::shared_ptr<nn::ReLU>()), tg::Error);
  // A buffer is never a parameter and never requires grad.
  Tensor b = lin.register_buffer("count", tg::zeros({2}));
  CHECK(lin.parameters().size() == 2);
  CHECK(names_of(lin.named_buffers()) == std::vector<std::string>{"count"});
  CHECK_FALSE(b.requires_grad());
  // A parameter registered without requires_grad (frozen) is still a parameter.
  Tensor f = lin.register_parameter("frozen", tg::zeros({2}), false);
  CHECK_FALSE(f.requires_grad());
  CHECK(lin.parameters().size() == 3);
}

// =====================================================================================
// Modes, gradients, dtype
// =====================================================================================

TEST_CASE("modules: train() and eval() propagate to every submodule") {
  Net net;
  auto all_modes = [&](bool on) {
    for (const auto& [n, m] : net.named_modules())
      if (m->is_training() != on) return false;
    return true;
  };
  CHECK(all_modes(true));
  net.eval();
  CHECK(all_modes(false));
  net.train();
  CHECK(all_modes(true));
  net.block1->eval();  // a subtree alone
  CHECK_FALSE(net.block1->layer2->bn->is_training());
  CHECK(net.block2->layer2->bn->is_training());
  CHECK(net.is_training());
  net.train(false);
  CHECK(all_modes(false));

  // The modes change behaviour: in eval, batch norm uses (and leaves) the running statistics.
  tg::manual_seed(1);
  auto bn = std::make_shared<nn::BatchNorm2d>(3);
  Tensor x = tg::randn({4, 3, 2, 2}) * 3.0 + 1.0;
  bn->eval();
  CHECK(max_abs_diff((*bn)(x), x / std::sqrt(1.0 + 1e-5)) < 1e-6);
  CHECK(bn->num_batches_tracked.item<int64_t>() == 0);
  CHECK(bn->running_mean.to_vector<double>() == std::vector<double>{0, 0, 0});
  bn->train();
  Tensor y = (*bn)(x);
  CHECK(std::abs(tg::mean(y).item<double>()) < 1e-5);
  CHECK(bn->num_batches_tracked.item<int64_t>() == 1);
  CHECK(bn->running_mean.to_vector<double>() != std::vector<double>{0, 0, 0});
}

TEST_CASE("modules: zero_grad sets gradients to none, or to zeros") {
  tg::manual_seed(2);
  Net net;
  Tensor x = tg::randn({2, 4, 5, 5});
  net(x).sum().backward();
  for (const auto& np : net.named_parameters()) REQUIRE_MESSAGE(np.second.grad().defined(), np.first);

  net.zero_grad(/*set_to_none=*/false);
  for (const auto& [n, p] : net.named_parameters()) {
    REQUIRE(p.grad().defined());
    CHECK(p.grad().shape() == p.shape());
    CHECK(stats(p.grad()).max_abs == 0.0);
  }
  // The zeroed buffers accumulate the next backward.
  net.eval();
  net(x).sum().backward();
  Tensor g1 = net.scale.grad().clone();
  net(x).sum().backward();
  CHECK(max_abs_diff(net.scale.grad(), g1 * 2.0) < 1e-3 * std::abs(g1.item<double>()) + 1e-6);

  net.zero_grad();  // PyTorch's default: set_to_none
  for (const auto& [n, p] : net.named_parameters()) CHECK_FALSE(p.grad().defined());
  net.zero_grad(false);  // no gradient yet: stays undefined
  for (const auto& [n, p] : net.named_parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("modules: to(kFloat64) converts parameters and buffers in place; held handles see it") {
  tg::manual_seed(4);
  auto s = conv_bn_relu();
  auto conv = std::dynamic_pointer_cast<nn::Conv2d>((*s)[0]);
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>((*s)[1]);
  Tensor w = conv->weight;                       // a handle held by the user
  std::vector<Tensor> held = s->parameters();    // ... and by an optimizer
  Tensor rm = bn->running_mean;
  const auto w32 = w.to_vector<double>();

  Tensor x = tg::randn({2, 3, 4, 4});
  (*s)(x).sum().backward();
  REQUIRE(w.grad().defined());
  bn->running_mean.fill_(0.25);

  s->to(tg::kFloat64);
  CHECK(w.dtype() == tg::kFloat64);
  CHECK(w.to_vector<double>() == w32);  // float32 -> float64 is exact
  CHECK(w.requires_grad());
  CHECK(w.is_leaf());
  CHECK_FALSE(w.grad().defined());  // the float32 gradient is dropped
  for (const auto& p : held) CHECK(p.dtype() == tg::kFloat64);
  CHECK(rm.dtype() == tg::kFloat64);
  CHECK(rm.to_vector<double>() == std::vector<double>(8, 0.25));
  CHECK(bn->running_var.dtype() == tg::kFloat64);
  CHECK(bn->num_batches_tracked.dtype() == tg::kInt64);  // integers stay integers
  for (const auto& kv : s->state_dict())
    CHECK_MESSAGE(kv.second.dtype() == (kv.first == "1.num_batches_tracked" ? tg::kInt64 : tg::kFloat64), kv.first);

  // The module runs in float64, and its gradients are float64.
  Tensor y = (*s)(x.to(tg::kFloat64));
  CHECK(y.dtype() == tg::kFloat64);
  y.sum().backward();
  REQUIRE(w.grad().defined());
  CHECK(w.grad().dtype() == tg::kFloat64);
  CHECK(held[0].grad().dtype() == tg::kFloat64);

  // And back.
  s->to(tg::kFloat32);
  CHECK(w.dtype() == tg::kFloat32);
  CHECK(w.to_vector<double>() == w32);
  CHECK_THROWS_AS(s->to(tg::kInt64), tg::Error);
}

// =====================================================================================
// State dicts
// =====================================================================================

TEST_CASE("modules: state_dict / load_state_dict round trip") {
  tg::manual_seed(5);
  Net a;
  a.block1->layer1->bn->running_mean.fill_(0.5);
  a.block2->layer2->bn->num_batches_tracked.fill_(9);
  const nn::StateDict saved = copy_of(a.state_dict());
  CHECK(saved.size() == a.parameters().size() + a.buffers().size());

  // The state dict shares storage with the module, as PyTorch's does.
  nn::StateDict live = a.state_dict();
  CHECK(live.at("scale").data_ptr<float>() == a.scale.data_ptr<float>());

  a.eval();
  Tensor x = tg::randn({1, 4, 5, 5});
  Tensor y = a(x);

  tg::manual_seed(6);
  Net b;
  Tensor handle = b.block1->layer1->conv->weight;
  b.load_state_dict(saved);
  for (const auto& kv : b.state_dict()) CHECK_MESSAGE(max_abs_diff(kv.second, saved.at(kv.first)) == 0.0, kv.first);
  CHECK(b.block2->layer2->bn->num_batches_tracked.item<int64_t>() == 9);
  CHECK(same_impl(handle, b.block1->layer1->conv->weight));  // loaded in place
  CHECK(max_abs_diff(handle, saved.at("block1.layer1.conv.weight")) == 0.0);
  CHECK(handle.requires_grad());
  b.eval();
  CHECK(max_abs_diff(b(x), y) == 0.0);

  // Values of another floating dtype are converted on load.
  nn::StateDict as64;
  for (const auto& [k, t] : saved) as64[k] = t.dtype() == tg::kFloat32 ? t.to(tg::kFloat64) * 2.0 : t;
  b.load_state_dict(as64);
  CHECK(b.scale.dtype() == tg::kFloat32);
  CHECK(b.scale.item<double>() == 2.0);
}

TEST_CASE("modules: a module loads its own live state_dict (source and destination alias)") {
  tg::manual_seed(17);
  auto s = conv_bn_relu();
  const nn::StateDict before = copy_of(s->state_dict());
  s->load_state_dict(s->state_dict());
  for (const auto& kv : s->state_dict()) CHECK_MESSAGE(max_abs_diff(kv.second, before.at(kv.first)) == 0.0, kv.first);
}

TEST_CASE("modules: strict load with missing, unexpected and wrongly shaped keys lists them all, changes nothing") {
  tg::manual_seed(7);
  auto s = conv_bn_relu();
  auto conv = std::dynamic_pointer_cast<nn::Conv2d>((*s)[0]);
  const nn::StateDict before = copy_of(s->state_dict());
  const double w0 = conv->weight.to_vector<double>()[0];

  nn::StateDict sd = copy_of(s->state_dict());
  for (auto& [k, t] : sd)
    if (t.dtype() != tg::kInt64) t = t + 1.0;  // every valid key differs from the module
  sd.erase("1.bias");                       // missing
  sd["2.weight"] = tg::ones({3});           // unexpected
  sd["0.bias"] = tg::zeros({9});            // wrongly shaped (expects [8])

  std::string msg = error_of([&] { s->load_state_dict(sd); });
  check_contains(msg, {"load_state_dict", "missing keys [1.bias]", "unexpected keys [2.weight]",
                       "0.bias (expected [8], got [9])"});
  CHECK(conv->weight.to_vector<double>()[0] == w0);
  for (const auto& kv : s->state_dict()) CHECK_MESSAGE(max_abs_diff(kv.second, before.at(kv.first)) == 0.0, kv.first);

  // Each kind alone is an error too when strict.
  nn::StateDict only_missing = copy_of(before);
  only_missing.erase("1.num_batches_tracked");
  check_contains(error_of([&] { s->load_state_dict(only_missing); }), {"missing keys [1.num_batches_tracked]"});
  nn::StateDict only_unexpected = copy_of(before);
  only_unexpected["extra"] = tg::zeros({1});
  check_contains(error_of([&] { s->load_state_dict(only_unexpected); }), {"unexpected keys [extra]"});

  // Not strict: missing and unexpected keys are ignored and the rest loads...
  nn::StateDict loose = sd;
  loose["0.bias"] = before.at("0.bias") - 1.0;  // now correctly shaped
  s->load_state_dict(loose, /*strict=*/false);
  CHECK(conv->weight.to_vector<double>()[0] == doctest::Approx(w0 + 1.0));
  CHECK(max_abs_diff(conv->bias, before.at("0.bias") - 1.0) == 0.0);
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>((*s)[1]);
  CHECK(max_abs_diff(bn->bias, before.at("1.bias")) == 0.0);  // missing: untouched

  // ... but a wrong shape is still rejected, and nothing changes.
  s->load_state_dict(before);
  sd["0.bias"] = tg::zeros({9});
  msg = error_of([&] { s->load_state_dict(sd, /*strict=*/false); });
  check_contains(msg, {"0.bias (expected [8], got [9])"});
  // As PyTorch's non-strict error, the message lists only the shape mismatches.
  CHECK(msg.find("1.bias") == std::string::npos);     // missing keys are not errors here
  CHECK(msg.find("2.weight") == std::string::npos);   // nor unexpected ones
  CHECK(conv->weight.to_vector<double>()[0] == w0);
  for (const auto& kv : s->state_dict()) CHECK_MESSAGE(max_abs_diff(kv.second, before.at(kv.first)) == 0.0, kv.first);
}

// =====================================================================================
// Hooks and error messages
// =====================================================================================

TEST_CASE("modules: forward hooks see the input and the output, and can be removed") {
  tg::manual_seed(8);
  auto s = conv_bn_relu();
  auto bn = (*s)[1];
  std::vector<tg::Shape> seen_in, seen_out;
  Tensor captured;
  nn::Module* who = nullptr;
  size_t id = bn->register_forward_hook([&](nn::Module& m, const Tensor& in, const Tensor& out) {
    who = &m;
    seen_in.push_back(in.shape());
    seen_out.push_back(out.shape());
    captured = out;
  });
  int calls_of_second = 0;
  size_t id2 = s->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor&) { ++calls_of_second; });
  CHECK(id != id2);

  Tensor x = tg::randn({2, 3, 4, 4});
  Tensor y = (*s)(x);  // Sequential calls its children through operator(), so the child's hook fires
  REQUIRE(seen_in.size() == 1);
  CHECK(who == bn.get());
  CHECK(seen_in[0] == tg::Shape{2, 8, 4, 4});
  CHECK(seen_out[0] == tg::Shape{2, 8, 4, 4});
  CHECK(max_abs_diff(tg::relu(captured), y) == 0.0);  // the output is the tensor that flows on
  CHECK(captured.requires_grad());                     // and still on the tape (Grad-CAM needs it)
  CHECK(calls_of_second == 1);

  s->forward(x);  // a built-in module runs its hooks however it is called (not only through operator())
  CHECK(calls_of_second == 2);
  CHECK(seen_in.size() == 2);

  bn->remove_forward_hook(id);
  (*s)(x);
  CHECK(seen_in.size() == 2);
  CHECK(calls_of_second == 3);
  s->remove_forward_hook(id2);
  s->remove_forward_hook(id2);  // removing twice is harmless
  (*s)(x);
  CHECK(calls_of_second == 3);
}

TEST_CASE("modules: errors name the module path and the shapes") {
  tg::manual_seed(9);
  Classifier model;
  Tensor x = tg::randn({1, 3, 10, 10});
  std::string msg = error_of([&] { model(x); });
  CHECK(msg == "features.3 (Conv2d): expected input with 16 channels, got 8 (input [1, 8, 10, 10])");

  CHECK(model.features->describe() == "features (Sequential)");
  CHECK((*model.features)[3]->path() == "features.3");
  CHECK(model.describe() == "Classifier");
  CHECK(model.path() == "");

  Net net;
  msg = error_of([&] { net(tg::randn({1, 3, 5, 5})); });
  CHECK(msg == "block1.layer1.conv (Conv2d): expected input with 4 channels, got 3 (input [1, 3, 5, 5])");
  msg = error_of([&] { net.block2->layer2->bn->forward(tg::randn({2, 5, 3, 3})); });
  CHECK(msg == "block2.layer2.bn (BatchNorm2d): expected input with 4 channels, got 5 (input [2, 5, 3, 3])");
  msg = error_of([&] { net.block1->layer1->bn->forward(tg::randn({2, 4})); });
  check_contains(msg, {"block1.layer1.bn (BatchNorm2d)", "4 dims", "[2, 4]"});

  nn::Linear lin(5, 2);
  CHECK(error_of([&] { lin(tg::zeros({3, 4})); }) == "Linear: expected input with 5 features in the last dim, got [3, 4]");
  nn::Conv2d c2(nn::Conv2dOptions(3, 4, 3));
  check_contains(error_of([&] { c2(tg::zeros({3, 4, 4})); }), {"Conv2d", "4 dims", "[3, 4, 4]"});
  nn::LayerNorm ln(nn::LayerNormOptions({3, 4}));
  check_contains(error_of([&] { ln(tg::zeros({2, 4, 3})); }), {"LayerNorm", "[3, 4]", "[2, 4, 3]"});
  nn::GroupNorm gn(2, 4);
  check_contains(error_of([&] { gn(tg::zeros({2, 6, 3})); }), {"GroupNorm", "[2, 6, 3]"});
  nn::LocallyConnected2d lc(nn::LocallyConnected2dOptions(2, 3, {5, 5}, 3));
  check_contains(error_of([&] { lc(tg::zeros({1, 2, 6, 5})); }), {"LocallyConnected2d", "[N, 2, 5, 5]", "[1, 2, 6, 5]"});
  nn::ConvTranspose2d ct(nn::ConvTranspose2dOptions(2, 3, 3));
  check_contains(error_of([&] { ct(tg::zeros({1, 3, 4, 4})); }), {"ConvTranspose2d", "[1, 3, 4, 4]"});
  nn::Module plain;
  check_contains(error_of([&] { plain(tg::zeros({1})); }), {"Module", "forward"});
}

TEST_CASE("modules: bad options are rejected at construction") {
  using O = nn::Conv2dOptions;
  CHECK_THROWS_AS(nn::Conv2d(O(6, 4, 3).groups(4)), tg::Error);  // 6 channels into 4 groups
  CHECK_THROWS_AS(nn::Conv2d(O(4, 6, 3).groups(4)), tg::Error);  // 6 out channels into 4 groups
  CHECK_THROWS_AS(nn::Conv2d(O(4, 4, 3).groups(0)), tg::Error);
  CHECK_THROWS_AS(nn::Conv2d(O(4, 4, {3, 3, 3})), tg::Error);     // three kernel sizes for 2-D
  CHECK_THROWS_AS(nn::Conv1d(O(4, 4, {3, 3})), tg::Error);
  CHECK_THROWS_AS(nn::Conv2d(O(-4, 4, 3)), tg::Error);
  check_contains(error_of([] { nn::Conv2d(O(6, 4, 3).groups(4)); }), {"Conv2d", "6", "4", "groups"});
  CHECK_THROWS_AS(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(2, 3, 3).groups(2)), tg::Error);
  CHECK_THROWS_AS(nn::Linear(0, 3), tg::Error);
  CHECK_THROWS_AS(nn::Linear(3, -1), tg::Error);
  CHECK_THROWS_AS(nn::Dropout(1.5), tg::Error);
  CHECK_THROWS_AS(nn::Dropout(-0.1), tg::Error);
  CHECK_THROWS_AS(nn::Dropout2d(1.5), tg::Error);
  check_contains(error_of([] { nn::Dropout(1.5); }), {"Dropout", "1.5"});
  CHECK_THROWS_AS(nn::GroupNorm(3, 4), tg::Error);
  CHECK_THROWS_AS(nn::GroupNorm(0, 4), tg::Error);
  check_contains(error_of([] { nn::GroupNorm(3, 4); }), {"GroupNorm", "4", "3"});
  CHECK_THROWS_AS(nn::BatchNorm2d(0), tg::Error);
  CHECK_THROWS_AS(nn::BatchNorm1d(-2), tg::Error);
  CHECK_THROWS_AS(nn::LayerNorm(nn::LayerNormOptions({-1})), tg::Error);
  CHECK_THROWS_AS(nn::LocallyConnected2d(nn::LocallyConnected2dOptions(2, 3, {5, 5}, 7)), tg::Error);
  // Options the forward checks (as PyTorch does) are still errors, not crashes.
  CHECK_THROWS_AS(nn::Conv2d(O(2, 3, 3).stride(0))(tg::zeros({1, 2, 5, 5})), tg::Error);
  CHECK_THROWS_AS(nn::Conv2d(O(2, 3, 3).padding(-1))(tg::zeros({1, 2, 5, 5})), tg::Error);
  CHECK_THROWS_AS(nn::Conv2d(O(2, 3, 3).stride({1, 1, 1}))(tg::zeros({1, 2, 5, 5})), tg::Error);
  CHECK_THROWS_AS(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(0))(tg::zeros({1, 2, 5, 5})), tg::Error);
  CHECK_THROWS_AS(nn::MaxPool2d(nn::MaxPool2dOptions(2).padding(2))(tg::zeros({1, 2, 5, 5})), tg::Error);
  CHECK_THROWS_AS(nn::AdaptiveAvgPool2d(nn::functional::IntList{0})(tg::zeros({1, 2, 4, 4})), tg::Error);
  CHECK_THROWS_AS(nn::LocalResponseNorm(0)(tg::zeros({1, 2, 4})), tg::Error);
  CHECK_THROWS_AS(nn::Upsample(F::InterpolateOptions{})(tg::zeros({1, 2, 4, 4})), tg::Error);
  CHECK_THROWS_AS(nn::BatchNorm1d(3)(tg::zeros({1, 3})), tg::Error);  // one value per channel in training
}

TEST_CASE("modules: LocallyConnected2d rejects stride 0 and empty option lists") {
  using O = nn::LocallyConnected2dOptions;
  CHECK_THROWS_AS(nn::LocallyConnected2d(O(2, 3, {5, 5}, 3).stride(0)), tg::Error);
  CHECK_THROWS_AS(nn::LocallyConnected2d(O(2, 3, {5, 5}, 3).stride(std::vector<int64_t>{})), tg::Error);
  CHECK_THROWS_AS(nn::LocallyConnected2d(O(2, 3, {5, 5}, 3).padding(-2)), tg::Error);
}

// =====================================================================================
// Initialisation
// =====================================================================================

TEST_CASE("modules: default initialisation follows PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in))") {
  tg::manual_seed(10);
  auto check_uniform = [](const Tensor& t, double bound, const char* what) {
    INFO(what);
    Stats s = stats(t);
    CHECK(s.max_abs <= bound);
    CHECK(s.max_abs >= 0.99 * bound);  // the whole range is used
    CHECK(std::abs(s.mean) < 0.02 * bound);
    CHECK(s.std == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  };
  nn::Linear big(1000, 400);  // 400,000 weights
  check_uniform(big.weight, 1.0 / std::sqrt(1000.0), "Linear weight");
  nn::Linear wide(64, 20000);  // 20,000 biases
  check_uniform(wide.bias, 1.0 / 8.0, "Linear bias");
  CHECK(stats(wide.weight).max_abs <= 1.0 / 8.0);

  nn::Conv2d conv(nn::Conv2dOptions(64, 256, 3));  // fan_in 576
  check_uniform(conv.weight, 1.0 / 24.0, "Conv2d weight");
  CHECK(stats(conv.bias).max_abs <= 1.0 / 24.0);
  nn::Conv2d grouped(nn::Conv2dOptions(64, 256, 3).groups(4));  // fan_in 16 * 9
  check_uniform(grouped.weight, 1.0 / 12.0, "grouped Conv2d weight");
  nn::Conv1d c1(nn::Conv1dOptions(16, 1024, 4));  // fan_in 64
  check_uniform(c1.weight, 1.0 / 8.0, "Conv1d weight");
  nn::Conv3d c3(nn::Conv3dOptions(8, 512, 2));  // fan_in 64
  check_uniform(c3.weight, 1.0 / 8.0, "Conv3d weight");
  // Transposed: PyTorch computes fan_in from weight.size(1) * kernel = (out / groups) * k^2.
  nn::ConvTranspose2d ct(nn::ConvTranspose2dOptions(512, 16, 2));  // weight [512, 16, 2, 2], fan_in 64
  check_uniform(ct.weight, 1.0 / 8.0, "ConvTranspose2d weight");
  CHECK(stats(ct.bias).max_abs <= 1.0 / 8.0);
  // Locally connected: the same bound over one position's filter (C * kh * kw).
  nn::LocallyConnected2d lc(nn::LocallyConnected2dOptions(4, 32, {18, 18}, 3));  // fan_in 36
  check_uniform(lc.weight, 1.0 / 6.0, "LocallyConnected2d weight");
  CHECK(stats(lc.bias).max_abs <= 1.0 / 6.0);
  // No bias when asked.
  CHECK_FALSE(nn::Linear(nn::LinearOptions(3, 2).bias(false)).bias.defined());
  CHECK(nn::Conv2d(nn::Conv2dOptions(3, 2, 3).bias(false)).parameters().size() == 1);

  // Normalisation layers: weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0.
  nn::BatchNorm2d bn(5);
  CHECK(bn.weight.to_vector<double>() == std::vector<double>(5, 1.0));
  CHECK(bn.bias.to_vector<double>() == std::vector<double>(5, 0.0));
  CHECK(bn.running_mean.to_vector<double>() == std::vector<double>(5, 0.0));
  CHECK(bn.running_var.to_vector<double>() == std::vector<double>(5, 1.0));
  CHECK(bn.num_batches_tracked.item<int64_t>() == 0);
  nn::BatchNorm1d bn_plain(nn::BatchNormOptions(3).affine(false).track_running_stats(false));
  CHECK(bn_plain.parameters().empty());
  CHECK(bn_plain.buffers().empty());
  nn::GroupNorm gn(2, 6);
  CHECK(gn.weight.to_vector<double>() == std::vector<double>(6, 1.0));
  CHECK(gn.bias.to_vector<double>() == std::vector<double>(6, 0.0));
  nn::LayerNorm ln(nn::LayerNormOptions({2, 3}));
  CHECK(ln.weight.shape() == tg::Shape{2, 3});
  CHECK(ln.weight.to_vector<double>() == std::vector<double>(6, 1.0));
  CHECK(ln.bias.to_vector<double>() == std::vector<double>(6, 0.0));
}

TEST_CASE("modules: tg::nn::init distributions") {
  tg::manual_seed(11);
  namespace I = tg::nn::init;
  Tensor w = tg::empty({256, 512});  // fan_in 512, fan_out 256
  CHECK(I::fans(w) == std::pair<int64_t, int64_t>{512, 256});
  CHECK(I::fans(tg::empty({8, 4, 3, 3})) == std::pair<int64_t, int64_t>{36, 72});
  CHECK_THROWS_AS(I::fans(tg::empty({8})), tg::Error);

  I::kaiming_normal_(w);
  Stats s = stats(w);
  CHECK(s.std == doctest::Approx(std::sqrt(2.0 / 512)).epsilon(0.02));
  CHECK(std::abs(s.mean) < 0.01 * s.std);
  I::kaiming_normal_(w, 0.0, I::FanMode::FanOut, I::Nonlinearity::ReLU);
  CHECK(stats(w).std == doctest::Approx(std::sqrt(2.0 / 256)).epsilon(0.02));
  I::kaiming_uniform_(w);
  s = stats(w);
  CHECK(s.max_abs <= std::sqrt(6.0 / 512));
  CHECK(s.max_abs >= 0.99 * std::sqrt(6.0 / 512));
  CHECK(s.std == doctest::Approx(std::sqrt(2.0 / 512)).epsilon(0.02));

  I::lecun_normal_(w);
  CHECK(stats(w).std == doctest::Approx(1.0 / std::sqrt(512.0)).epsilon(0.02));

  I::xavier_uniform_(w);
  const double xb = std::sqrt(6.0 / (512 + 256));
  s = stats(w);
  CHECK(s.max_abs <= xb);
  CHECK(s.max_abs >= 0.99 * xb);
  CHECK(s.std == doctest::Approx(xb / std::sqrt(3.0)).epsilon(0.02));
  I::xavier_uniform_(w, 2.0);
  CHECK(stats(w).max_abs <= 2.0 * xb);
  CHECK(stats(w).max_abs >= 0.99 * 2.0 * xb);
  I::xavier_normal_(w);
  CHECK(stats(w).std == doctest::Approx(std::sqrt(2.0 / (512 + 256))).epsilon(0.02));

  I::normal_(w, 3.0, 0.5);
  s = stats(w);
  CHECK(s.mean == doctest::Approx(3.0).epsilon(0.005));
  CHECK(s.std == doctest::Approx(0.5).epsilon(0.02));
  I::uniform_(w, -2.0, 1.0);
  s = stats(w);
  CHECK(s.mean == doctest::Approx(-0.5).epsilon(0.02));
  CHECK(s.max_abs <= 2.0);
  I::constant_(w, 0.75);
  CHECK(stats(w).max_abs == 0.75);
  CHECK(stats(w).std == 0.0);
  I::zeros_(w);
  CHECK(stats(w).max_abs == 0.0);
  I::ones_(w);
  CHECK(stats(w).mean == 1.0);

  CHECK(I::calculate_gain(I::Nonlinearity::ReLU) == doctest::Approx(std::sqrt(2.0)));
  CHECK(I::calculate_gain(I::Nonlinearity::Tanh) == doctest::Approx(5.0 / 3.0));
  CHECK(I::calculate_gain(I::Nonlinearity::LeakyReLU, 0.2) == doctest::Approx(std::sqrt(2.0 / 1.04)));
  CHECK(I::calculate_gain(I::Nonlinearity::Linear) == 1.0);

  // In place, off the tape: a parameter stays a leaf that requires grad, in its own dtype.
  nn::Linear lin(3, 2);
  Tensor handle = lin.weight;
  I::kaiming_normal_(lin.weight);
  CHECK(same_impl(handle, lin.weight));
  CHECK(lin.weight.is_leaf());
  CHECK(lin.weight.requires_grad());
  CHECK(lin.weight.grad_fn_name() == "");
  Tensor w64 = tg::empty({64, 64}, tg::kFloat64);
  I::xavier_normal_(w64);
  CHECK(w64.dtype() == tg::kFloat64);
}

// =====================================================================================
// Dropout and the layers' conventions
// =====================================================================================

TEST_CASE("modules: Dropout zeroes a fraction p in training, scales by 1/(1-p), is the identity in eval") {
  tg::manual_seed(12);
  auto drop = std::make_shared<nn::Dropout>(0.3);
  Tensor x = tg::rand({200000}) + 1.0;  // all non-zero
  Tensor y = (*drop)(x);
  auto xv = x.to_vector<double>(), yv = y.to_vector<double>();
  size_t zeros = 0;
  double max_err = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0)
      ++zeros;
    else
      max_err = std::max(max_err, std::abs(yv[i] - xv[i] / 0.7));
  }
  CHECK(double(zeros) / double(xv.size()) == doctest::Approx(0.3).epsilon(0.02));
  CHECK(max_err < 1e-5);
  CHECK(tg::mean(y).item<double>() == doctest::Approx(tg::mean(x).item<double>()).epsilon(0.01));
  // The gradient uses the same mask.
  Tensor xl = x.detach().requires_grad_();
  Tensor yl = (*drop)(xl);
  yl.sum().backward();
  auto gv = xl.grad().to_vector<double>(), ylv = yl.to_vector<double>();
  bool mask_matches = true;
  for (size_t i = 0; i < gv.size(); ++i) mask_matches &= (ylv[i] == 0) == (gv[i] == 0);
  CHECK(mask_matches);

  drop->eval();
  Tensor z = (*drop)(x);
  CHECK(max_abs_diff(z, x) == 0.0);
  nn::Dropout always(1.0);
  CHECK(stats(always(x)).max_abs == 0.0);
  nn::Dropout never(0.0);
  CHECK(max_abs_diff(never(x), x) == 0.0);

  // Dropout2d drops whole channels.
  nn::Dropout2d d2(0.5);
  Tensor img = tg::rand({8, 16, 3, 3}) + 1.0;
  Tensor out = d2(img);
  auto ov = out.to_vector<double>();
  int dropped = 0;
  bool whole = true;
  for (int64_t c = 0; c < 8 * 16; ++c) {
    int z9 = 0;
    for (int64_t k = 0; k < 9; ++k) z9 += ov[size_t(c * 9 + k)] == 0;
    whole &= z9 == 0 || z9 == 9;
    dropped += z9 == 9;
  }
  CHECK(whole);
  CHECK(dropped > 30);
  CHECK(dropped < 98);
  d2.eval();
  CHECK(max_abs_diff(d2(img), img) == 0.0);
}

TEST_CASE("modules: Linear takes any leading dims; BatchNorm without running stats uses batch stats in eval") {
  tg::manual_seed(18);
  nn::Linear lin(4, 3);
  Tensor x = tg::randn({2, 5, 4});
  Tensor y = lin(x);
  CHECK(y.shape() == tg::Shape{2, 5, 3});
  CHECK(max_abs_diff(y.reshape({10, 3}), lin(x.reshape({10, 4}))) < 1e-6);
  CHECK(lin(tg::randn({4})).shape() == tg::Shape{3});

  nn::BatchNorm2d bn(nn::BatchNormOptions(3).track_running_stats(false));
  bn.eval();
  Tensor z = bn(tg::randn({4, 3, 2, 2}) * 5.0 + 2.0);
  CHECK(std::abs(tg::mean(z).item<double>()) < 1e-5);
  CHECK(tg::var(z.flatten(), {0}, false).item<double>() == doctest::Approx(1.0).epsilon(1e-3));
}

TEST_CASE("modules: MaxPool2d sends each window's gradient to its first maximum, as PyTorch") {
  // Ties everywhere: PyTorch's max_pool2d routes the whole gradient to the first maximum of each
  // window (row-major within the window); AvgPool2d spreads it evenly.
  nn::MaxPool2d pool(nn::MaxPool2dOptions(2));
  Tensor x = tg::ones({1, 1, 4, 4}).requires_grad_();
  pool(x).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0});
  // Overlapping windows (stride 1, padding 1): the first maximum collects from every window
  // it wins, and the -inf padding never wins.
  nn::MaxPool2d overlap(nn::MaxPool2dOptions(3).stride(1).padding(1));
  Tensor z = tg::ones({1, 1, 3, 3}).requires_grad_();
  Tensor y = overlap(z);
  CHECK(y.to_vector<double>() == std::vector<double>(9, 1.0));
  y.sum().backward();
  // PyTorch 1.13: [[4, 2, 0], [2, 1, 0], [0, 0, 0]].
  CHECK(z.grad().to_vector<double>() == std::vector<double>{4, 2, 0, 2, 1, 0, 0, 0, 0});
  // A NaN in a window wins, as in PyTorch (the pooled value is NaN and takes the gradient).
  Tensor withnan = tg::tensor({1.0, std::nan(""), 3.0, 2.0}, {1, 1, 2, 2}).requires_grad_();
  Tensor pooled = pool(withnan);
  CHECK(std::isnan(pooled.item<double>()));
  pooled.sum().backward();
  CHECK(withnan.grad().to_vector<double>()[1] == 1.0);
  nn::AvgPool2d avg(nn::AvgPool2dOptions(2));
  Tensor a = tg::ones({1, 1, 2, 2}).requires_grad_();
  avg(a).sum().backward();
  CHECK(a.grad().to_vector<double>() == std::vector<double>(4, 0.25));
}

TEST_CASE("modules: LocallyConnected2d weight layout [OH*OW, O, C*kh*kw], bias [O, OH, OW]") {
  tg::manual_seed(13);
  // in 2 x 5 x 6, kernel 3, stride 2, padding 1 -> out 3 x 3.
  nn::LocallyConnected2d lc(nn::LocallyConnected2dOptions(2, 4, {5, 6}, 3).stride(2).padding(1));
  CHECK(lc.out_h == 3);
  CHECK(lc.out_w == 3);
  CHECK(lc.weight.shape() == tg::Shape{9, 4, 18});
  CHECK(lc.bias.shape() == tg::Shape{4, 3, 3});
  Tensor x = tg::randn({2, 2, 5, 6});
  Tensor y = lc(x);
  CHECK(y.shape() == tg::Shape{2, 4, 3, 3});
  // Output (n, o, i, j) = bias[o, i, j] + sum over (c, di, dj) of
  // weight[i * OW + j, o, c * 9 + di * 3 + dj] * x[n, c, 2i - 1 + di, 2j - 1 + dj] (zero outside).
  auto xv = x.to_vector<double>(), wv = lc.weight.to_vector<double>(), bv = lc.bias.to_vector<double>();
  auto yv = y.to_vector<double>();
  double worst = 0;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t o = 0; o < 4; ++o)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          double acc = bv[size_t((o * 3 + i) * 3 + j)];
          for (int64_t c = 0; c < 2; ++c)
            for (int64_t di = 0; di < 3; ++di)
              for (int64_t dj = 0; dj < 3; ++dj) {
                int64_t r = 2 * i - 1 + di, q = 2 * j - 1 + dj;
                if (r < 0 || r >= 5 || q < 0 || q >= 6) continue;
                acc += wv[size_t(((i * 3 + j) * 4 + o) * 18 + c * 9 + di * 3 + dj)] *
                       xv[size_t(((n * 2 + c) * 5 + r) * 6 + q)];
              }
          worst = std::max(worst, std::abs(acc - yv[size_t(((n * 4 + o) * 3 + i) * 3 + j)]));
        }
  CHECK(worst < 1e-5);
}

TEST_CASE("modules: ConvTranspose2d is the adjoint of Conv2d with the same weight") {
  tg::manual_seed(14);
  auto o = nn::Conv2dOptions(4, 6, 3).stride(2).padding(1).groups(2).bias(false);
  nn::Conv2d conv(o);
  nn::ConvTranspose2d convt(nn::ConvTranspose2dOptions(6, 4, 3).stride(2).padding(1).groups(2).bias(false));
  CHECK(convt.weight.shape() == conv.weight.shape());  // [6, 2, 3, 3] for both
  convt.weight.copy_(conv.weight);
  conv.to(tg::kFloat64);
  convt.to(tg::kFloat64);
  Tensor x = tg::randn({2, 4, 7, 7}, tg::kFloat64);
  Tensor y = conv(x);
  CHECK(y.shape() == tg::Shape{2, 6, 4, 4});
  Tensor v = tg::randn(y.shape(), tg::kFloat64);
  Tensor back = convt(v);
  CHECK(back.shape() == x.shape());  // (4 - 1) * 2 - 2 + 3 = 7
  double lhs = tg::sum(y * v).item<double>(), rhs = tg::sum(x * back).item<double>();
  CHECK(lhs == doctest::Approx(rhs).epsilon(1e-12));
}

// =====================================================================================
// Against PyTorch (tests/golden/generate_modules.py -> modules.txt)
// =====================================================================================

namespace {

const std::map<std::string, Tensor>& module_golden() {
  static const std::map<std::string, Tensor> g = golden::named_tensors(std::string(TAPEGRAD_GOLDEN_DIR) + "/modules.txt");
  return g;
}

const Tensor& gold(const std::string& name) {
  auto it = module_golden().find(name);
  if (it != module_golden().end()) return it->second;
  FAIL("no golden tensor " << name);
  static const Tensor none;
  return none;
}

}  // namespace

TEST_CASE("modules: BatchNorm1d/2d training steps, running statistics and eval match PyTorch") {
  struct Scenario {
    const char* name;
    bool two_d;
    int64_t features;
    double momentum;
  };
  const Scenario scenarios[] = {{"bn2d_m0.1", true, 3, 0.1},
                                {"bn2d_m0.3", true, 3, 0.3},
                                {"bn1d_m0.1", false, 4, 0.1},
                                {"bn1d_3d_m0.3", false, 4, 0.3}};
  for (const auto& sc : scenarios) {
    for (const auto& run : {std::tuple<const char*, tg::Dtype, double>{"f32", tg::kFloat32, 1e-6},
                            std::tuple<const char*, tg::Dtype, double>{"f64", tg::kFloat64, 1e-12}}) {
      // Plain variables, not a structured binding: the lambda below captures them.
      const char* tag = std::get<0>(run);
      const tg::Dtype dtype = std::get<1>(run);
      const double tol = std::get<2>(run);
      const std::string base = sc.name, p = base + "." + tag;
      INFO(p);
      auto opts = nn::BatchNormOptions(sc.features).momentum(sc.momentum);
      std::shared_ptr<nn::BatchNormNd> bn;
      if (sc.two_d)
        bn = std::make_shared<nn::BatchNorm2d>(opts);
      else
        bn = std::make_shared<nn::BatchNorm1d>(opts);
      bn->to(dtype);
      bn->weight.copy_(gold(base + ".weight"));
      bn->bias.copy_(gold(base + ".bias"));
      auto close = [&](const Tensor& got, const std::string& key) {
        const Tensor& want = gold(key);
        REQUIRE_MESSAGE(got.shape() == want.shape(), key);
        CHECK(got.dtype() == dtype);
        CHECK_MESSAGE(golden::mismatch(got, want, tol, tol) <= 1.0, key, ": ", got, " vs PyTorch ", want);
      };
      for (int i = 0; i < 3; ++i) {
        const std::string s = p + ".step" + std::to_string(i);
        Tensor x = gold(base + ".input" + std::to_string(i)).to(dtype).detach();
        if (i == 0) x.requires_grad_();
        Tensor y = (*bn)(x);
        close(y, s + ".output");
        close(bn->running_mean, s + ".running_mean");
        close(bn->running_var, s + ".running_var");
        CHECK(bn->num_batches_tracked.dtype() == tg::kInt64);
        CHECK(bn->num_batches_tracked.item<int64_t>() == gold(s + ".num_batches_tracked").item<int64_t>());
        if (i == 0) {
          Tensor r = gold(base + ".grad_weight_R").to(dtype);
          auto g = tg::autograd::grad({(y * r).sum()}, {x, bn->weight, bn->bias});
          close(g[0], s + ".grad_input");
          close(g[1], s + ".grad_weight");
          close(g[2], s + ".grad_bias");
        }
      }
      bn->eval();
      const Tensor rm = bn->running_mean.clone();
      close((*bn)(gold(base + ".eval_input").to(dtype)), p + ".eval_output");
      CHECK(max_abs_diff(bn->running_mean, rm) == 0.0);  // eval leaves the statistics alone
      CHECK(bn->num_batches_tracked.item<int64_t>() == 3);
    }
  }
}

TEST_CASE("modules: a Sequential loaded from PyTorch's state_dict by name gives PyTorch's output") {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 3, 3).padding(1)));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(3));
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Flatten>());
  seq->push_back(std::make_shared<nn::Linear>(3 * 4 * 4, 5));

  nn::StateDict sd;
  const std::string prefix = "seq.state.";
  for (const auto& [k, t] : module_golden())
    if (k.compare(0, prefix.size(), prefix) == 0) sd[k.substr(prefix.size())] = t;
  CHECK(sd.size() == 9);  // 0.weight/bias, 1.weight/bias/running_mean/running_var/num_batches_tracked, 4.weight/bias
  seq->load_state_dict(sd);  // strict: the names are PyTorch's
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>((*seq)[1]);
  CHECK(bn->num_batches_tracked.item<int64_t>() == 7);
  CHECK(bn->running_mean.dtype() == tg::kFloat32);

  const Tensor x = gold("seq.input").to(tg::kFloat32);
  seq->eval();
  Tensor y = (*seq)(x);
  CHECK(y.shape() == tg::Shape{4, 5});
  CHECK_MESSAGE(golden::mismatch(y, gold("seq.eval_output"), 1e-6, 1e-6) <= 1.0, y, " vs ", gold("seq.eval_output"));

  seq->train();
  y = (*seq)(x);
  CHECK_MESSAGE(golden::mismatch(y, gold("seq.train_output"), 1e-6, 1e-6) <= 1.0, y, " vs ", gold("seq.train_output"));
  CHECK(golden::mismatch(bn->running_mean, gold("seq.train.running_mean"), 1e-6, 1e-6) <= 1.0);
  CHECK(golden::mismatch(bn->running_var, gold("seq.train.running_var"), 1e-6, 1e-6) <= 1.0);
  CHECK(bn->num_batches_tracked.item<int64_t>() == 8);
}

// =====================================================================================
// gradcheck / gradgradcheck of whole modules (float64)
// =====================================================================================

namespace {

// Runs the module's own forward with its parameter members replaced by the gradcheck inputs
// (in[0] is the module input, in[1 + i] replaces *slots[i]), so the check covers the module's
// code path, input checks included, and differentiates with respect to the parameters too.
// Copying the inputs into the parameters with copy_ would not be differentiable.
tg::GradcheckFn module_fn(std::shared_ptr<nn::Module> m, std::vector<Tensor*> slots) {
  return [m, slots](const std::vector<Tensor>& in) {
    std::vector<Tensor> saved;
    for (size_t i = 0; i < slots.size(); ++i) {
      saved.push_back(*slots[i]);
      *slots[i] = in[i + 1];
    }
    struct Restore {
      std::vector<Tensor*> slots;
      std::vector<Tensor>& saved;
      ~Restore() {
        for (size_t i = 0; i < slots.size(); ++i) *slots[i] = saved[i];
      }
    } restore{slots, saved};
    return m->forward(in[0]);
  };
}

void check_module(const char* name, std::shared_ptr<nn::Module> m, std::vector<Tensor*> slots, const Tensor& x,
                  bool second_order = true) {
  INFO(name);
  m->to(tg::kFloat64);
  std::vector<Tensor> inputs{x.to(tg::kFloat64)};
  for (Tensor* s : slots) inputs.push_back(s->detach().clone());
  auto fn = module_fn(m, slots);
  // The member swap really is what the module computes with.
  CHECK(max_abs_diff(fn(inputs), m->forward(inputs[0])) == 0.0);
  tg::GradcheckResult r = tg::gradcheck(fn, inputs);
  CHECK_MESSAGE(r.ok, r.message);
  if (second_order) {
    tg::GradcheckResult rr = tg::gradgradcheck(fn, inputs);
    CHECK_MESSAGE(rr.ok, rr.message);
  }
}

}  // namespace

TEST_CASE("modules: gradcheck and gradgradcheck of whole modules in float64") {
  tg::manual_seed(15);
  {
    auto m = std::make_shared<nn::Linear>(4, 3);
    check_module("Linear", m, {&m->weight, &m->bias}, tg::randn({2, 4}));
  }
  {
    auto m = std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 6, 3).groups(2).stride(2).padding(1));
    check_module("Conv2d groups 2", m, {&m->weight, &m->bias}, tg::randn({2, 4, 5, 5}));
  }
  {
    auto m = std::make_shared<nn::Conv1d>(nn::Conv1dOptions(2, 3, 3).dilation(2).padding(2));
    check_module("Conv1d", m, {&m->weight, &m->bias}, tg::randn({2, 2, 6}));
  }
  {
    auto m = std::make_shared<nn::Conv3d>(nn::Conv3dOptions(2, 2, 2));
    check_module("Conv3d", m, {&m->weight, &m->bias}, tg::randn({1, 2, 3, 3, 3}));
  }
  {
    auto m = std::make_shared<nn::ConvTranspose2d>(
        nn::ConvTranspose2dOptions(4, 6, 3).stride(2).padding(1).output_padding(1).groups(2));
    check_module("ConvTranspose2d", m, {&m->weight, &m->bias}, tg::randn({1, 4, 3, 3}));
  }
  {
    auto m = std::make_shared<nn::LocallyConnected2d>(nn::LocallyConnected2dOptions(2, 3, {4, 4}, 3).padding(1));
    check_module("LocallyConnected2d", m, {&m->weight, &m->bias}, tg::randn({2, 2, 4, 4}));
  }
  {
    auto m = std::make_shared<nn::BatchNorm2d>(3);  // training: batch statistics
    m->weight.copy_(tg::rand({3}) + 0.5);
    m->bias.copy_(tg::randn({3}));
    check_module("BatchNorm2d (training)", m, {&m->weight, &m->bias}, tg::randn({3, 3, 2, 2}));
  }
  {
    auto m = std::make_shared<nn::BatchNorm1d>(4);
    m->running_mean.copy_(tg::randn({4}));
    m->running_var.copy_(tg::rand({4}) + 0.5);
    m->eval();
    check_module("BatchNorm1d (eval)", m, {&m->weight, &m->bias}, tg::randn({3, 4}));
  }
  {
    auto m = std::make_shared<nn::GroupNorm>(2, 4);
    m->weight.copy_(tg::rand({4}) + 0.5);
    m->bias.copy_(tg::randn({4}));
    check_module("GroupNorm", m, {&m->weight, &m->bias}, tg::randn({2, 4, 3, 2}));
  }
  {
    auto m = std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({3, 4}));
    m->weight.copy_(tg::rand({3, 4}) + 0.5);
    m->bias.copy_(tg::randn({3, 4}));
    check_module("LayerNorm", m, {&m->weight, &m->bias}, tg::randn({2, 3, 4}));
  }
  {
    auto m = std::make_shared<nn::LocalResponseNorm>(nn::LocalResponseNormOptions(3).alpha(0.5).k(2.0));
    check_module("LocalResponseNorm", m, {}, tg::randn({2, 4, 3}));
  }
  {
    auto m = std::make_shared<nn::AvgPool2d>(nn::AvgPool2dOptions(3).stride(2).padding(1));
    check_module("AvgPool2d", m, {}, tg::randn({1, 2, 5, 5}));
  }
  {
    // Distinct values, so the maxima are unique and the finite differences stay on one side.
    auto m = std::make_shared<nn::MaxPool2d>(nn::MaxPool2dOptions(2));
    Tensor x = tg::arange(0, 32, 1, tg::kFloat64).reshape({1, 2, 4, 4}) * 0.37;
    check_module("MaxPool2d", m, {}, x, /*second_order=*/false);
  }
  {
    auto m = std::make_shared<nn::Upsample>(F::InterpolateOptions().scale_factor(2).mode(tg::kBilinear));
    check_module("Upsample bilinear", m, {}, tg::randn({1, 2, 3, 3}));
  }
  {
    auto m = std::make_shared<nn::GELU>();
    check_module("GELU", m, {}, tg::randn({3, 4}));
  }
}

TEST_CASE("modules: gradcheck and gradgradcheck of a Sequential and of a DenseLayer in float64") {
  tg::manual_seed(16);
  {
    auto conv = std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 3, 3).padding(1));
    auto bn = std::make_shared<nn::BatchNorm2d>(3);
    auto lin = std::make_shared<nn::Linear>(3 * 4 * 4, 5);
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(conv);
    seq->push_back(bn);
    seq->push_back(std::make_shared<nn::Tanh>());  // smooth, so finite differences see no kink
    seq->push_back(std::make_shared<nn::Flatten>());
    seq->push_back(lin);
    bn->weight.copy_(tg::rand({3}) + 0.5);
    check_module("Sequential(Conv2d, BatchNorm2d, Tanh, Flatten, Linear)", seq,
                 {&conv->weight, &conv->bias, &bn->weight, &bn->bias, &lin->weight, &lin->bias},
                 tg::randn({2, 2, 4, 4}));
  }
  {
    auto layer = std::make_shared<DenseLayer>(3, 2);
    layer->bn->eval();  // eval: ReLU of a fixed affine map, away from its kink at these inputs
    layer->bn->bias.copy_(tg::full({3}, 3.0));
    check_module("DenseLayer", layer, {&layer->bn->weight, &layer->bn->bias, &layer->conv->weight},
                 tg::randn({1, 3, 3, 3}) * 0.5);
  }
}
