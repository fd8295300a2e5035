// Table-driven tests of tg::nn::functional against PyTorch (tests/golden/generate_nn.py):
// forward and gradients of input, weight and bias in float64 and float32, gradcheck and
// gradgradcheck in float64, and bad-argument rows.
#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <set>

#include <tapegrad.hpp>

#include "golden_io.hpp"

using tg::Tensor;
namespace F = tg::nn::functional;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {

std::map<std::string, Fn> make_table() {
  std::map<std::string, Fn> t;
  auto u = [](auto f) { return Fn([f](const std::vector<Tensor>& in) { return f(in[0]); }); };
  auto b = [](auto f) { return Fn([f](const std::vector<Tensor>& in) { return f(in[0], in[1]); }); };
  auto c = [](auto f) { return Fn([f](const std::vector<Tensor>& in) { return f(in[0], in[1], in[2]); }); };

  t["linear"] = c([](auto x, auto w, auto bb) { return F::linear(x, w, bb); });
  t["linear_3d_nobias"] = b([](auto x, auto w) { return F::linear(x, w); });
  t["conv1d"] = c([](auto x, auto w, auto bb) { return F::conv1d(x, w, bb, F::ConvOptions().stride(2).padding(1)); });
  t["conv2d"] = c([](auto x, auto w, auto bb) { return F::conv2d(x, w, bb, F::ConvOptions().padding(1)); });
  t["conv2d_stride_dil"] = b([](auto x, auto w) {
    return F::conv2d(x, w, {}, F::ConvOptions().stride({2, 1}).padding({1, 2}).dilation(2));
  });
  t["conv2d_groups"] = c([](auto x, auto w, auto bb) { return F::conv2d(x, w, bb, F::ConvOptions().groups(2).padding(1)); });
  t["conv2d_depthwise"] = b([](auto x, auto w) { return F::conv2d(x, w, {}, F::ConvOptions().groups(3)); });
  t["conv2d_1x1"] = b([](auto x, auto w) { return F::conv2d(x, w); });
  t["conv2d_odd"] = c([](auto x, auto w, auto bb) { return F::conv2d(x, w, bb, F::ConvOptions().stride(3).padding(2)); });
  t["conv3d"] = c([](auto x, auto w, auto bb) {
    return F::conv3d(x, w, bb, F::ConvOptions().padding(1).stride({1, 2, 1}));
  });
  t["conv2d_dil_s1"] = b([](auto x, auto w) {
    return F::conv2d(x, w, {}, F::ConvOptions().padding({2, 1}).dilation({2, 3}));
  });
  t["conv3d_s1_groups"] = b([](auto x, auto w) {
    return F::conv3d(x, w, {}, F::ConvOptions().padding({1, 0, 1}).groups(2));
  });
  t["conv_transpose2d_s1_outpad"] = b([](auto x, auto w) {
    return F::conv_transpose2d(x, w, {}, F::ConvTransposeOptions().stride(1).padding(1).output_padding(1).dilation(2));
  });
  t["conv_transpose1d_outpad_past_end"] = b([](auto x, auto w) {
    return F::conv_transpose1d(x, w, {}, F::ConvTransposeOptions().stride(1).padding(0).output_padding(1).dilation(2));
  });
  t["conv_transpose1d"] = c([](auto x, auto w, auto bb) {
    return F::conv_transpose1d(x, w, bb, F::ConvTransposeOptions().stride(2).padding(1).output_padding(1));
  });
  t["conv_transpose2d"] = c([](auto x, auto w, auto bb) {
    return F::conv_transpose2d(x, w, bb, F::ConvTransposeOptions().stride(2).padding(1));
  });
  t["conv_transpose2d_outpad_dil"] = b([](auto x, auto w) {
    return F::conv_transpose2d(x, w, {}, F::ConvTransposeOptions().stride(2).padding(1).output_padding(1).dilation(2));
  });
  t["conv_transpose2d_groups"] = b([](auto x, auto w) {
    return F::conv_transpose2d(x, w, {}, F::ConvTransposeOptions().groups(2).stride({1, 2}));
  });
  t["locally_connected2d"] = c([](auto x, auto w, auto bb) {
    return F::locally_connected2d(x, w, bb, 3, F::ConvOptions().padding(1));
  });
  t["locally_connected2d_stride"] = c([](auto x, auto w, auto bb) {
    return F::locally_connected2d(x, w, bb, 2, F::ConvOptions().stride(2));
  });

  using P = F::PoolOptions;
  t["max_pool2d"] = u([](auto x) { return F::max_pool2d(x, 2); });
  t["max_pool2d_pad_stride"] = u([](auto x) { return F::max_pool2d(x, 3, 2, 1); });
  t["max_pool2d_ceil"] = u([](auto x) { return F::max_pool2d(x, P(2).ceil_mode(true)); });
  t["max_pool2d_dilation"] = u([](auto x) { return F::max_pool2d(x, P(2).stride(1).dilation(2)); });
  t["max_pool1d"] = u([](auto x) { return F::max_pool1d(x, P(3).stride(2)); });
  t["max_pool3d"] = u([](auto x) { return F::max_pool3d(x, P(2)); });
  t["avg_pool2d"] = u([](auto x) { return F::avg_pool2d(x, 2); });
  t["avg_pool2d_pad"] = u([](auto x) { return F::avg_pool2d(x, 3, 2, 1); });
  t["avg_pool2d_pad_exclude"] = u([](auto x) { return F::avg_pool2d(x, P(3).stride(2).padding(1).count_include_pad(false)); });
  t["avg_pool2d_ceil"] = u([](auto x) { return F::avg_pool2d(x, P(2).ceil_mode(true)); });
  t["avg_pool2d_ceil_pad"] = u([](auto x) { return F::avg_pool2d(x, P(3).stride(2).padding(1).ceil_mode(true)); });
  t["avg_pool1d"] = u([](auto x) { return F::avg_pool1d(x, P(2)); });
  t["avg_pool3d"] = u([](auto x) { return F::avg_pool3d(x, P(2).padding(1)); });
  t["adaptive_avg_pool2d"] = u([](auto x) { return F::adaptive_avg_pool2d(x, {2, 3}); });
  t["adaptive_avg_pool2d_uneven"] = u([](auto x) { return F::adaptive_avg_pool2d(x, {3, 2}); });
  t["adaptive_avg_pool2d_global"] = u([](auto x) { return F::adaptive_avg_pool2d(x, 1); });
  t["adaptive_max_pool2d"] = u([](auto x) { return F::adaptive_max_pool2d(x, {2, 3}); });

  using I = F::InterpolateOptions;
  t["interpolate_nearest"] = u([](auto x) { return F::interpolate(x, I().scale_factor(2).mode(tg::kNearest)); });
  t["interpolate_nearest_size"] = u([](auto x) { return F::interpolate(x, I().size({5, 3})); });
  t["interpolate_bilinear"] = u([](auto x) { return F::interpolate(x, I().scale_factor(2).mode(tg::kBilinear)); });
  t["interpolate_bilinear_align"] = u([](auto x) {
    return F::interpolate(x, I().size({5, 7}).mode(tg::kBilinear).align_corners(true));
  });
  t["pad_reflect"] = u([](auto x) { return F::pad(x, {2, 1, 1, 2}, tg::kReflect); });
  t["pad_replicate"] = u([](auto x) { return F::pad(x, {1, 3, 2, 0}, tg::kReplicate); });

  t["batch_norm_train"] = c([](auto x, auto w, auto bb) {
    Tensor rm = tg::zeros({x.size(1)}, x.dtype()), rv = tg::ones({x.size(1)}, x.dtype());
    return F::batch_norm(x, rm, rv, w, bb, true, 0.1, 1e-5);
  });
  t["batch_norm_train_1d"] = t["batch_norm_train"];
  t["batch_norm_eval"] = c([](auto x, auto w, auto bb) {
    const int64_t ch = x.size(1);
    std::vector<double> m, v;
    for (int64_t i = 0; i < ch; ++i) {
      m.push_back(-0.5 + double(i) / double(ch - 1));
      v.push_back(0.5 + double(i) / double(ch - 1));
    }
    return F::batch_norm(x, tg::tensor(m, {ch}, x.dtype()), tg::tensor(v, {ch}, x.dtype()), w, bb, false);
  });
  t["group_norm"] = c([](auto x, auto w, auto bb) { return F::group_norm(x, 2, w, bb); });
  t["group_norm_noaffine"] = u([](auto x) { return F::group_norm(x, 3); });
  t["layer_norm"] = c([](auto x, auto w, auto bb) { return F::layer_norm(x, {3, 4}, w, bb); });
  t["layer_norm_last"] = u([](auto x) { return F::layer_norm(x, {5}); });
  t["instance_norm"] = c([](auto x, auto w, auto bb) { return F::instance_norm(x, w, bb); });
  t["local_response_norm"] = u([](auto x) { return F::local_response_norm(x, 3, 0.5, 0.75, 2.0); });
  t["local_response_norm_even"] = u([](auto x) { return F::local_response_norm(x, 4); });

  t["leaky_relu"] = u([](auto x) { return F::leaky_relu(x, 0.1); });
  t["elu"] = u([](auto x) { return F::elu(x, 1.5); });
  t["gelu"] = u([](auto x) { return F::gelu(x); });
  t["gelu_tanh"] = u([](auto x) { return F::gelu(x, true); });
  t["softplus"] = u([](auto x) { return F::softplus(x, 2.0, 3.0); });
  t["softmax"] = u([](auto x) { return F::softmax(x, 1); });
  t["softmax_dim0"] = u([](auto x) { return F::softmax(x, 0); });
  t["log_softmax"] = u([](auto x) { return F::log_softmax(x, -1); });
  t["log_softmax_large"] = u([](auto x) { return F::log_softmax(x, 1); });

  using CE = F::CrossEntropyOptions;
  t["cross_entropy"] = b([](auto x, auto y) { return F::cross_entropy(x, y); });
  t["cross_entropy_sum"] = b([](auto x, auto y) { return F::cross_entropy(x, y, CE().reduction(tg::kSum)); });
  t["cross_entropy_none"] = b([](auto x, auto y) { return F::cross_entropy(x, y, CE().reduction(tg::kNone)); });
  t["cross_entropy_weight"] = c([](auto x, auto y, auto w) { return F::cross_entropy(x, y, CE().weight(w)); });
  t["cross_entropy_ignore"] = b([](auto x, auto y) { return F::cross_entropy(x, y, CE().ignore_index(3)); });
  t["cross_entropy_smooth"] = b([](auto x, auto y) { return F::cross_entropy(x, y, CE().label_smoothing(0.1)); });
  t["cross_entropy_smooth_ignore"] = b([](auto x, auto y) {
    return F::cross_entropy(x, y, CE().label_smoothing(0.2).ignore_index(3));
  });
  t["cross_entropy_smooth_weight"] = c([](auto x, auto y, auto w) {
    return F::cross_entropy(x, y, CE().weight(w).label_smoothing(0.1));
  });
  t["cross_entropy_spatial"] = b([](auto x, auto y) { return F::cross_entropy(x, y); });
  t["nll_loss"] = b([](auto x, auto y) { return F::nll_loss(F::log_softmax(x, 1), y); });
  t["nll_loss_weight_ignore"] = c([](auto x, auto y, auto w) { return F::nll_loss(x, y, CE().weight(w).ignore_index(1)); });
  t["mse_loss"] = b([](auto x, auto y) { return F::mse_loss(x, y); });
  t["mse_loss_sum"] = b([](auto x, auto y) { return F::mse_loss(x, y, tg::kSum); });
  t["l1_loss"] = b([](auto x, auto y) { return F::l1_loss(x, y); });
  t["binary_cross_entropy"] = b([](auto p, auto y) { return F::binary_cross_entropy(p, y); });
  t["binary_cross_entropy_weight"] = c([](auto p, auto y, auto w) { return F::binary_cross_entropy(p, y, w); });
  t["bce_with_logits"] = b([](auto x, auto y) { return F::binary_cross_entropy_with_logits(x, y); });
  t["bce_with_logits_pos_weight"] = c([](auto x, auto y, auto pw) {
    return F::binary_cross_entropy_with_logits(x, y, {}, pw);
  });
  return t;
}

const std::vector<golden::Case>& cases() {
  static const std::vector<golden::Case> c = golden::load(std::string(TAPEGRAD_GOLDEN_DIR) + "/nn.txt");
  return c;
}

}  // namespace

TEST_CASE("nn golden: every PyTorch case has a row and every row a case") {
  golden::check_coverage(make_table(), cases(), 70);
}

TEST_CASE("nn golden: forward and gradients match PyTorch in float64") {
  golden::check_all(make_table(), cases(), tg::kFloat64, 1e-10, 1e-8);
}

TEST_CASE("nn golden: forward and gradients match PyTorch in float32") {
  golden::check_all(make_table(), cases(), tg::kFloat32, 5e-5, 5e-4);
}

TEST_CASE("nn golden: gradcheck and gradgradcheck in float64") {
  auto table = make_table();
  for (const auto& c : cases()) {
    INFO("case ", c.name);
    if (!table.count(c.name)) continue;
    auto [fn, inputs] = golden::bind_constants(c, table.at(c.name));
    tg::GradcheckResult r = tg::gradcheck(fn, inputs);
    CHECK_MESSAGE(r.ok, r.message);
    tg::GradcheckResult rr = tg::gradgradcheck(fn, inputs);
    CHECK_MESSAGE(rr.ok, rr.message);
  }
}
