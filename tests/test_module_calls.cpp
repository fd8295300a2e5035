// How modules are called and built: modules that take and return several tensors (a WaveNet
// residual block, Inception's branches, a detector head) with forward hooks on them, the first
// two against PyTorch (tests/golden/generate_multi_output.py -> multi_output.txt); hooks that
// fire however a built-in module is called; typed access into Sequential / ModuleList; the short
// construction of containers from module values, named children, and moving a module.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "golden_io.hpp"

using tg::Tensor;
using tg::nn::TensorList;
namespace nn = tg::nn;
namespace F = tg::nn::functional;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  return tg::abs(a.to(tg::kFloat64) - b.to(tg::kFloat64)).max().item<double>();
}

template <typename Fn>
std::string error_of(Fn&& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  return "(no tg::Error)";
}

bool contains(const std::string& s, const std::string& piece) { return s.find(piece) != std::string::npos; }

// WaveNet's residual block (van den Oord et al. 2016, fig. 4): a gated dilated causal
// convolution, then 1x1 convolutions to the residual path and to the skip output.
struct ResidualBlock : nn::Module {
  std::shared_ptr<nn::Conv1d> filter, gate, residual, skip;
  int64_t dilation;
  ResidualBlock(int64_t channels, int64_t skip_channels, int64_t dilation)
      : nn::Module("ResidualBlock"), dilation(dilation) {
    filter = register_module("filter", nn::Conv1d(nn::Conv1dOptions(channels, channels, 2).dilation(dilation)));
    gate = register_module("gate", nn::Conv1d(nn::Conv1dOptions(channels, channels, 2).dilation(dilation)));
    residual = register_module("residual", nn::Conv1d(channels, channels, 1));
    skip = register_module("skip", nn::Conv1d(channels, skip_channels, 1));
  }
  TensorList forward_list(const TensorList& in) override {
    const Tensor& x = in.at(0);
    Tensor padded = F::pad(x, {dilation, 0});  // causal: only the past is seen
    Tensor z = tg::tanh(filter->forward(padded)) * tg::sigmoid(gate->forward(padded));
    return {x + residual->forward(z), skip->forward(z)};
  }
};

// The blocks in a ModuleList; the skips are summed into the output.
struct WaveNet : nn::Module {
  std::shared_ptr<nn::ModuleList> blocks;
  std::shared_ptr<nn::Conv1d> out;
  WaveNet(int64_t channels, int64_t skip_channels, int layers) : nn::Module("WaveNet") {
    blocks = register_module("blocks", nn::ModuleList());
    for (int i = 0; i < layers; ++i) blocks->push_back(ResidualBlock(channels, skip_channels, int64_t(1) << i));
    out = register_module("out", nn::Conv1d(skip_channels, 1, 1));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = x, skips;
    for (const auto& b : *blocks) {
      TensorList r = (*b)(TensorList{h});
      h = r[0];
      skips = skips.defined() ? skips + r[1] : r[1];
    }
    return (*out)(tg::relu(skips));
  }
};

// Inception's four branches (Szegedy et al. 2015, fig. 2b) as one module with four outputs, and
// the depth concatenation as another, so a Sequential chains them as lists.
struct InceptionBranches : nn::Module {
  std::shared_ptr<nn::Sequential> b1, b2, b3, b4;
  InceptionBranches(int64_t in, int64_t c1, int64_t c3r, int64_t c3, int64_t c5r, int64_t c5, int64_t pool)
      : nn::Module("InceptionBranches") {
    b1 = register_module("branch1", nn::Sequential(nn::Conv2d(in, c1, 1), nn::ReLU()));
    b2 = register_module("branch2", nn::Sequential{nn::Conv2d(in, c3r, 1), nn::ReLU(),
                                                   nn::Conv2d(nn::Conv2dOptions(c3r, c3, 3).padding(1)), nn::ReLU()});
    b3 = register_module("branch3", nn::Sequential{nn::Conv2d(in, c5r, 1), nn::ReLU(),
                                                   nn::Conv2d(nn::Conv2dOptions(c5r, c5, 5).padding(2)), nn::ReLU()});
    b4 = register_module("branch4", nn::Sequential{nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(1).padding(1)),
                                                   nn::Conv2d(in, pool, 1), nn::ReLU()});
  }
  TensorList forward_list(const TensorList& in) override {
    const Tensor& x = in.at(0);
    return {(*b1)(x), (*b2)(x), (*b3)(x), (*b4)(x)};
  }
};
struct DepthConcat : nn::Module {
  DepthConcat() : nn::Module("DepthConcat") {}
  TensorList forward_list(const TensorList& in) override { return after_forward(in, {tg::cat(in, 1)}); }
};

// A detector head (RetinaNet's, Lin et al. 2017): the same class and box convolutions on every
// level of a feature pyramid; several inputs, two outputs per level.
struct DetectorHead : nn::Module {
  std::shared_ptr<nn::Conv2d> cls, box;
  DetectorHead(int64_t channels, int64_t anchors, int64_t classes) : nn::Module("DetectorHead") {
    cls = register_module("cls", nn::Conv2d(nn::Conv2dOptions(channels, anchors * classes, 3).padding(1)));
    box = register_module("box", nn::Conv2d(nn::Conv2dOptions(channels, anchors * 4, 3).padding(1)));
  }
  TensorList forward_list(const TensorList& levels) override {
    TensorList out;
    for (const Tensor& f : levels) out.push_back(cls->forward(f));
    for (const Tensor& f : levels) out.push_back(box->forward(f));
    return out;
  }
};

}  // namespace

TEST_CASE("multi-output module: a WaveNet residual block returns (residual, skip); its hooks see both") {
  tg::manual_seed(1);
  ResidualBlock block(4, 6, 2);
  Tensor x = tg::randn({2, 4, 9});
  TensorList seen_in, seen_out;
  int calls = 0;
  size_t id = block.register_forward_hook([&](nn::Module& m, const TensorList& in, const TensorList& out) {
    CHECK(&m == &block);
    seen_in = in;
    seen_out = out;
    ++calls;
  });
  TensorList r = block(TensorList{x});
  REQUIRE(r.size() == 2);
  CHECK(r[0].shape() == tg::Shape{2, 4, 9});
  CHECK(r[1].shape() == tg::Shape{2, 6, 9});
  CHECK(calls == 1);
  REQUIRE(seen_in.size() == 1);
  REQUIRE(seen_out.size() == 2);
  CHECK(seen_in[0].impl().get() == x.impl().get());
  CHECK(seen_out[0].impl().get() == r[0].impl().get());  // the hook sees the very tensors that flow on
  CHECK(seen_out[1].impl().get() == r[1].impl().get());

  // The values: the block written out with the functional forms.
  Tensor p = F::pad(x, {2, 0});
  auto o = F::ConvOptions().dilation(2);
  Tensor z = tg::tanh(F::conv1d(p, block.filter->weight, block.filter->bias, o)) *
             tg::sigmoid(F::conv1d(p, block.gate->weight, block.gate->bias, o));
  CHECK(max_abs_diff(r[0], x + F::conv1d(z, block.residual->weight, block.residual->bias)) < 1e-6);
  CHECK(max_abs_diff(r[1], F::conv1d(z, block.skip->weight, block.skip->bias)) < 1e-6);
  // Causal: the first output step depends only on the first input step.
  Tensor x2 = tg::cat({x.narrow(2, 0, 1), tg::full({2, 4, 8}, 5.0)}, 2);
  CHECK(max_abs_diff(block(TensorList{x2})[1].narrow(2, 0, 1), r[1].narrow(2, 0, 1)) == 0.0);

  // The one-tensor call cannot return both: the error says how to call it.
  std::string msg = error_of([&] { block(x); });
  CHECK(contains(msg, "ResidualBlock"));
  CHECK(contains(msg, "returned 2 tensors"));
  CHECK(contains(msg, "TensorList"));
  // A hook of the one-tensor form on it throws naming the module, when it fires.
  block.remove_forward_hook(id);
  block.register_forward_hook([](nn::Module&, const Tensor&, const Tensor&) {});
  msg = error_of([&] { block(TensorList{x}); });
  CHECK(contains(msg, "ResidualBlock"));
  CHECK(contains(msg, "1 inputs and 2 outputs"));
}

TEST_CASE("multi-output module: a WaveNet of residual blocks in a ModuleList, gradient-checked in float64") {
  tg::manual_seed(2);
  WaveNet net(3, 4, 3);
  CHECK(net.blocks->size() == 3);
  CHECK(net.blocks->at<ResidualBlock>(2).dilation == 4);
  std::vector<std::string> names;
  for (const auto& np : net.named_parameters()) names.push_back(np.first);
  CHECK(names.front() == "blocks.0.filter.weight");
  CHECK(names.back() == "out.bias");
  CHECK(names.size() == 3 * 8 + 2);

  // Hooks on an inner block see each call's (residual, skip).
  int skip_calls = 0;
  net.blocks->at<ResidualBlock>(1).register_forward_hook(
      [&](nn::Module&, const TensorList& in, const TensorList& out) {
        CHECK(in.size() == 1);
        CHECK(out.size() == 2);
        CHECK(out[1].requires_grad() == tg::is_grad_enabled());
        ++skip_calls;
      });
  net.to(tg::kFloat64);
  Tensor x = tg::randn({1, 3, 6}, tg::kFloat64);
  CHECK(net(x).shape() == tg::Shape{1, 1, 6});
  CHECK(skip_calls == 1);

  // Gradients through both outputs of every block: the input, and a weight of the first block
  // (which reaches the output through the residual path of the later blocks too).
  auto rx = tg::gradcheck([&](const std::vector<Tensor>& in) { return net(in[0]); }, {x});
  CHECK_MESSAGE(rx.ok, rx.message);
  // A weight is not an input of gradcheck's function: one element against a central difference.
  Tensor w = net.blocks->at<ResidualBlock>(0).filter->weight;
  Tensor loss = net(x).pow(2.0).sum();
  Tensor gw = tg::autograd::grad({loss}, {w})[0];
  // Central difference of one weight element.
  const double eps = 1e-6;
  double* wp = w.data_ptr<double>();
  const double w0 = wp[3];
  double lp, lm;
  {
    tg::NoGradGuard ng;
    wp[3] = w0 + eps;
    lp = net(x).pow(2.0).sum().item<double>();
    wp[3] = w0 - eps;
    lm = net(x).pow(2.0).sum().item<double>();
    wp[3] = w0;
  }
  CHECK(gw.to_vector<double>()[3] == doctest::Approx((lp - lm) / (2 * eps)).epsilon(1e-6));
}

TEST_CASE("multi-output module: Inception branches and a depth concatenation chained in a Sequential") {
  tg::manual_seed(3);
  auto inception = std::make_shared<nn::Sequential>(nn::Sequential{InceptionBranches(8, 4, 3, 6, 2, 3, 5), DepthConcat()});
  Tensor x = tg::randn({2, 8, 7, 7});
  TensorList y = (*inception)(TensorList{x});
  REQUIRE(y.size() == 1);
  CHECK(y[0].shape() == tg::Shape{2, 4 + 6 + 3 + 5, 7, 7});
  auto& branches = inception->at<InceptionBranches>(0);
  CHECK(max_abs_diff(y[0].narrow(1, 4, 6), (*branches.b2)(x)) == 0.0);
  CHECK(max_abs_diff(y[0].narrow(1, 13, 5), (*branches.b4)(x)) == 0.0);
  // The one-tensor call of the Sequential works too: one tensor in, one out.
  CHECK(max_abs_diff((*inception)(x), y[0]) == 0.0);
  CHECK(inception->named_parameters().front().first == "0.branch1.0.weight");

  // A user module that returns through after_forward runs its hooks when called directly.
  auto& concat = inception->at<DepthConcat>(1);
  int concat_calls = 0;
  concat.register_forward_hook([&](nn::Module&, const TensorList& in, const TensorList& out) {
    CHECK(in.size() == 4);
    CHECK(out.size() == 1);
    ++concat_calls;
  });
  (*inception)(x);
  CHECK(concat_calls == 1);
  concat.forward_list(branches.forward_list({x}));
  CHECK(concat_calls == 2);
  concat(branches.forward_list({x}));  // through operator(): still once per call
  CHECK(concat_calls == 3);

  std::string msg = error_of([&] { inception->at<nn::Conv2d>(1); });
  CHECK(contains(msg, "Sequential"));
  CHECK(contains(msg, "module 1 is a DepthConcat, not a tg::nn::Conv2d"));
  CHECK_THROWS_AS(inception->at<DepthConcat>(2), tg::Error);
}

TEST_CASE("multi-output module: a detector head on three pyramid levels, its hook sees every input") {
  tg::manual_seed(4);
  auto head = std::make_shared<DetectorHead>(5, 3, 2);
  TensorList levels{tg::randn({1, 5, 8, 8}), tg::randn({1, 5, 4, 4}), tg::randn({1, 5, 2, 2})};
  size_t inputs_seen = 0, outputs_seen = 0;
  head->register_forward_hook([&](nn::Module&, const TensorList& in, const TensorList& out) {
    inputs_seen = in.size();
    outputs_seen = out.size();
  });
  TensorList out = (*head)(levels);
  CHECK(inputs_seen == 3);
  CHECK(outputs_seen == 6);
  CHECK(out[0].shape() == tg::Shape{1, 6, 8, 8});
  CHECK(out[2].shape() == tg::Shape{1, 6, 2, 2});
  CHECK(out[3].shape() == tg::Shape{1, 12, 8, 8});
  // Shared weights: the gradient of the class conv sums over the levels.
  Tensor loss = out[0].sum() + out[1].sum() + out[2].sum();
  loss.backward();
  CHECK(head->cls->bias.grad().to_vector<double>()[0] == doctest::Approx(64 + 16 + 4));
  CHECK_FALSE(head->box->bias.grad().defined());
  // Its one-tensor form takes one level and returns two tensors: an error that says so.
  CHECK(contains(error_of([&] { (*head)(levels[0]); }), "returned 2 tensors"));
}

TEST_CASE("modules: a module with neither forward, or a one-tensor module given a list, throws naming it") {
  struct Empty : nn::Module {
    Empty() : nn::Module("Empty") {}
  } empty;
  std::string msg = error_of([&] { empty(tg::zeros({1})); });
  CHECK(contains(msg, "Empty"));
  CHECK(contains(msg, "not implemented"));
  CHECK(contains(error_of([&] { empty(TensorList{tg::zeros({1})}); }), "not implemented"));
  nn::ReLU relu;
  msg = error_of([&] { relu(TensorList{tg::zeros({1}), tg::zeros({1})}); });
  CHECK(contains(msg, "ReLU"));
  CHECK(contains(msg, "got a list of 2"));
  TensorList one = relu(TensorList{tg::full({2}, -1.0)});  // a one-tensor module takes a list of one
  CHECK(one.size() == 1);
  CHECK(one[0].to_vector<double>() == std::vector<double>{0.0, 0.0});
}

TEST_CASE("modules: a built-in module's hooks fire once however it is called") {
  tg::manual_seed(5);
  nn::Sequential seq{nn::Conv2d(nn::Conv2dOptions(2, 3, 3).padding(1)), nn::BatchNorm2d(3), nn::ReLU()};
  std::map<std::string, int> calls;
  for (const auto& nm : seq.named_modules()) {
    std::string name = nm.first.empty() ? "seq" : nm.first;
    nm.second->register_forward_hook([&calls, name](nn::Module&, const Tensor&, const Tensor&) { ++calls[name]; });
  }
  Tensor x = tg::randn({1, 2, 4, 4});
  seq(x);
  CHECK(calls == std::map<std::string, int>{{"seq", 1}, {"0", 1}, {"1", 1}, {"2", 1}});
  seq.forward(x);  // forward itself: the same hooks, once each
  CHECK(calls == std::map<std::string, int>{{"seq", 2}, {"0", 2}, {"1", 2}, {"2", 2}});
  seq.ptr<nn::Conv2d>(0)->forward(x);
  (*seq.ptr<nn::Conv2d>(0))(x);
  CHECK(calls["0"] == 4);
  CHECK(calls["seq"] == 2);
  // A subclass of a built-in that changes its output: through operator() the hooks see the
  // final output, once.
  struct Doubled : nn::Linear {
    Doubled() : nn::Linear(2, 2) {}
    Tensor forward(const Tensor& x) override { return nn::Linear::forward(x) * 2.0; }
  } doubled;
  std::vector<Tensor> seen;
  doubled.register_forward_hook([&seen](nn::Module&, const Tensor&, const Tensor& out) { seen.push_back(out); });
  Tensor out = doubled(tg::randn({1, 2}));
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].impl().get() == out.impl().get());
  // Grad-CAM on a layer that its parent calls through ->forward().
  struct Net : nn::Module {
    std::shared_ptr<nn::Conv2d> conv;
    std::shared_ptr<nn::Linear> fc;
    Net() : nn::Module("Net") {
      conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(1, 2, 3).padding(1)));
      fc = register_module("fc", nn::Linear(2, 3));
    }
    Tensor forward(const Tensor& x) override {
      return fc->forward(tg::relu(conv->forward(x)).mean({2, 3}));
    }
  } net;
  Tensor cam = tg::vision::grad_cam(net, *net.conv, tg::randn({1, 1, 5, 5}), 1);
  CHECK(cam.shape() == tg::Shape{1, 5, 5});
  CHECK(net.conv->forward_hook_count() == 0);
}

TEST_CASE("containers: built from module values, with indices or names, and typed access") {
  tg::manual_seed(6);
  nn::Sequential seq(nn::Conv2d(nn::Conv2dOptions(3, 8, 3).padding(1).bias(false)), nn::BatchNorm2d(8), nn::ReLU());
  CHECK(seq.size() == 3);
  CHECK(seq.at<nn::BatchNorm2d>(1).options.num_features() == 8);
  CHECK(seq.ptr<nn::Conv2d>(0)->weight.shape() == tg::Shape{8, 3, 3, 3});
  CHECK(seq.ptr(2)->type_name() == "ReLU");
  CHECK(seq.at<nn::ReLU>(2).path() == "2");
  std::vector<std::string> names;
  for (const auto& np : seq.named_parameters()) names.push_back(np.first);
  CHECK(names == std::vector<std::string>{"0.weight", "1.weight", "1.bias"});

  // Named children, as PyTorch's Sequential(OrderedDict(...)), from values and handles alike.
  auto norm = std::make_shared<nn::BatchNorm2d>(8);
  nn::Sequential features{{"conv0", nn::Conv2d(nn::Conv2dOptions(3, 8, 7).stride(2).padding(3).bias(false))},
                          {"norm0", norm},
                          {"relu0", nn::ReLU()}};
  features.push_back("pool0", nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));
  auto last = features.push_back(nn::Identity());
  CHECK(last->path() == "4");
  names.clear();
  for (const auto& nc : features.named_children()) names.push_back(nc.first);
  CHECK(names == std::vector<std::string>{"conv0", "norm0", "relu0", "pool0", "4"});
  CHECK(features.named_buffers().front().first == "norm0.running_mean");
  CHECK(features.ptr<nn::BatchNorm2d>(1).get() == norm.get());
  CHECK(features(tg::randn({1, 3, 16, 16})).shape() == tg::Shape{1, 8, 4, 4});

  // Handles still work as before, and so do the initializer lists of handles.
  auto fc = std::make_shared<nn::Linear>(4, 2);
  nn::Sequential mixed(fc, nn::Tanh());
  CHECK(mixed.ptr<nn::Linear>(0).get() == fc.get());
  nn::Sequential from_list{std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::Tanh>()};
  CHECK(from_list.size() == 2);
  nn::ModuleList list(nn::Linear(2, 2), nn::Linear(2, 3));
  CHECK(list.at<nn::Linear>(1).options.out_features() == 3);
  CHECK_THROWS_AS(list.at<nn::Linear>(2), tg::Error);
  CHECK(contains(error_of([&] { list.at<nn::Conv2d>(0); }), "module 0 is a Linear"));

  // Braces build the children left to right: the same weights as push_back in that order.
  tg::manual_seed(7);
  nn::Sequential braced{nn::Linear(2, 3), nn::Linear(3, 4)};
  tg::manual_seed(7);
  nn::Sequential pushed;
  pushed.push_back(nn::Linear(2, 3));
  pushed.push_back(nn::Linear(3, 4));
  for (size_t i = 0; i < 4; ++i)
    CHECK(max_abs_diff(braced.parameters()[i], pushed.parameters()[i]) == 0.0);

  // Nested containers by value keep their children and names.
  nn::Sequential outer(nn::Sequential(nn::Linear(3, 4), nn::ReLU()), nn::Linear(4, 1));
  CHECK(outer.named_parameters().front().first == "0.0.weight");
  CHECK(outer.at<nn::Sequential>(0).at<nn::Linear>(0).path() == "0.0");
  CHECK(outer(tg::randn({2, 3})).shape() == tg::Shape{2, 1});
}

TEST_CASE("modules: register_module takes a value; a registered module cannot be moved") {
  struct Block : nn::Module {
    std::shared_ptr<nn::Linear> fc;
    std::shared_ptr<nn::Sequential> body;
    Block() : nn::Module("Block") {
      fc = register_module("fc", nn::Linear(3, 3));
      body = register_module("body", nn::Sequential(nn::Linear(3, 3), nn::GELU()));
    }
    Tensor forward(const Tensor& x) override { return (*body)((*fc)(x)); }
  };
  Block b;
  CHECK(b.fc->path() == "fc");
  CHECK(b.body->at<nn::Linear>(0).describe() == "body.0 (Linear)");
  CHECK(b.named_parameters().size() == 4);

  // A module value moves into a new handle with its parameters (the same tensors).
  nn::Linear lin(2, 2);
  Tensor w = lin.weight;
  auto moved = std::make_shared<nn::Linear>(std::move(lin));
  CHECK(moved->weight.impl().get() == w.impl().get());
  CHECK(moved->named_parameters().front().second.impl().get() == w.impl().get());
  // Children re-point to their new parent: paths and error messages stay right.
  Block b2;
  Tensor bw = b2.body->at<nn::Linear>(0).weight;
  auto b3 = std::make_shared<Block>(std::move(b2));
  nn::Sequential holder{{"block", b3}};
  CHECK(b3->body->at<nn::Linear>(0).describe() == "block.body.0 (Linear)");
  CHECK(holder.named_parameters()[2].first == "block.body.0.weight");
  CHECK(holder.named_parameters()[2].second.impl().get() == bw.impl().get());

  // A registered module stays where it is.
  std::string msg = error_of([&] { nn::Linear stolen(std::move(*b.fc)); });
  CHECK(contains(msg, "fc (Linear)"));
  CHECK(contains(msg, "registered"));
  CHECK(b.fc->weight.defined());
  CHECK(b(tg::randn({1, 3})).shape() == tg::Shape{1, 3});
}

TEST_CASE("modules: a float64 input to a float32 module names the module path") {
  nn::Sequential seq{{"features", nn::Sequential(nn::Conv2d(1, 2, 3), nn::BatchNorm2d(2))}, {"fc", nn::Linear(2, 2)}};
  std::string msg = error_of([&] { seq(tg::randn({1, 1, 5, 5}, tg::kFloat64)); });
  CHECK(msg == "features.0 (Conv2d): expected a float32 input (the dtype of its parameters), got float64 "
               "[1, 1, 5, 5]; convert the input with .to() or the module with to(float64)");
  msg = error_of([&] { seq.at<nn::Sequential>(0).ptr(1)->forward(tg::randn({1, 2, 3, 3}, tg::kFloat64)); });
  CHECK(contains(msg, "features.1 (BatchNorm2d): expected a float32 input"));
  CHECK(contains(error_of([&] { seq.ptr(1)->forward(tg::randn({1, 2}, tg::kFloat64)); }), "fc (Linear)"));
  seq.to(tg::kFloat64);
  CHECK_NOTHROW(seq.at<nn::Sequential>(0)(tg::randn({1, 1, 5, 5}, tg::kFloat64)));
}

namespace {

// Loads "<prefix>.state.*" into m, runs it on "<prefix>.input" in float64 through the list call,
// and checks every output and the gradients of sum_i sum(out_i * R_i) with respect to the input
// and every parameter against PyTorch.
void check_against_pytorch(nn::Module& m, const std::string& prefix, size_t outputs) {
  static const std::map<std::string, Tensor> g =
      golden::named_tensors(std::string(TAPEGRAD_GOLDEN_DIR) + "/multi_output.txt");
  m.to(tg::kFloat64);
  nn::StateDict sd;
  const std::string state = prefix + ".state.";
  for (const auto& kv : g)
    if (kv.first.rfind(state, 0) == 0) sd[kv.first.substr(state.size())] = kv.second;
  m.load_state_dict(sd);  // strict: the parameter names are PyTorch's
  Tensor x = g.at(prefix + ".input").clone().requires_grad_();
  TensorList out = m(TensorList{x});
  REQUIRE(out.size() == outputs);
  Tensor loss;
  for (size_t i = 0; i < outputs; ++i) {
    const std::string name = prefix + ".output" + std::to_string(i);
    CHECK_MESSAGE(max_abs_diff(out[i], g.at(name)) < 1e-12, name);
    Tensor term = (out[i] * g.at(prefix + ".R" + std::to_string(i))).sum();
    loss = loss.defined() ? loss + term : term;
  }
  std::vector<Tensor> wrt{x};
  std::vector<std::string> names{"input"};
  for (const auto& np : m.named_parameters()) {
    wrt.push_back(np.second);
    names.push_back(np.first);
  }
  std::vector<Tensor> grads = tg::autograd::grad({loss}, wrt);
  for (size_t i = 0; i < grads.size(); ++i) {
    const std::string name = prefix + ".grad." + names[i];
    CHECK_MESSAGE(max_abs_diff(grads[i], g.at(name)) < 1e-11, name);
  }
}

}  // namespace

TEST_CASE("multi-output modules against PyTorch: WaveNet's residual block and Inception's branches") {
  ResidualBlock block(3, 4, 2);
  check_against_pytorch(block, "wavenet", 2);
  InceptionBranches inception(5, 2, 2, 3, 1, 2, 2);
  check_against_pytorch(inception, "inception", 4);
}
