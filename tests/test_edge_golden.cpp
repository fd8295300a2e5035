// Numerical edge cases against PyTorch (tests/golden/generate_edge.py): overflow, poles, 0/0,
// saturation, NaN/Inf inputs and targets, out-of-range class indices. Each row either matches
// PyTorch's forward and gradients (NaN and Inf included) in float64 and float32, or, where
// PyTorch raises, throws tg::Error naming the op. Rows where the function is smooth at the
// inputs also go through gradcheck and gradgradcheck.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>

#include <tapegrad.hpp>

#include "golden_io.hpp"

using tg::Tensor;
namespace F = tg::nn::functional;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {

struct Row {
  Fn fn;
  std::string op;  // where PyTorch raises: the op the tg::Error must name
};

std::map<std::string, Row> make_table() {
  std::map<std::string, Row> t;
  auto u = [](auto f, std::string op = {}) {
    return Row{Fn([f](const std::vector<Tensor>& in) { return f(in[0]); }), op};
  };
  auto b = [](auto f, std::string op = {}) {
    return Row{Fn([f](const std::vector<Tensor>& in) { return f(in[0], in[1]); }), op};
  };
  auto c = [](auto f, std::string op = {}) {
    return Row{Fn([f](const std::vector<Tensor>& in) { return f(in[0], in[1], in[2]); }), op};
  };

  // ---- elementwise ----
  t["exp_overflow"] = u([](const Tensor& x) { return tg::exp(x); });
  t["expm1_overflow"] = u([](const Tensor& x) { return tg::expm1(x); });
  t["pow_overflow"] = u([](const Tensor& x) { return x.pow(3); });
  t["pow_tensor_overflow"] = b([](const Tensor& x, const Tensor& y) { return tg::pow(x, y); });
  t["pow_half_at_0"] = u([](const Tensor& x) { return x.pow(0.5); });
  t["pow_neg1_at_0"] = u([](const Tensor& x) { return x.pow(-1.0); });
  t["pow_0_at_0"] = u([](const Tensor& x) { return x.pow(0.0); });
  t["pow_2_at_0"] = u([](const Tensor& x) { return x.pow(2.0); });
  t["pow_half_negative"] = u([](const Tensor& x) { return x.pow(0.5); });
  t["pow_tensor_zero_base"] = b([](const Tensor& x, const Tensor& y) { return tg::pow(x, y); });
  t["pow_tensor_negative_base"] = b([](const Tensor& x, const Tensor& y) { return x.pow(y); });
  t["sqrt_at_0"] = u([](const Tensor& x) { return tg::sqrt(x); });
  t["sqrt_of_square_at_0"] = u([](const Tensor& x) { return tg::sqrt(x * x); });
  t["norm_at_0"] = u([](const Tensor& x) { return tg::sqrt((x * x).sum()); });
  t["rsqrt_at_0"] = u([](const Tensor& x) { return tg::rsqrt(x); });
  t["log_at_0"] = u([](const Tensor& x) { return tg::log(x); });
  t["log1p_at_minus1"] = u([](const Tensor& x) { return tg::log1p(x); });
  t["div_by_zero"] = b([](const Tensor& x, const Tensor& y) { return x / y; });
  t["div_scalar_by_zero"] = u([](const Tensor& x) { return x / 0.0; });
  t["rdiv_scalar_at_0"] = u([](const Tensor& x) { return 2.0 / x; });
  t["mul_inf_zero"] = b([](const Tensor& x, const Tensor& y) { return x * y; });
  t["sum_inf"] = u([](const Tensor& x) { return x.sum(); });
  t["mean_nan"] = u([](const Tensor& x) { return x.mean({1}); });
  t["abs_at_0"] = u([](const Tensor& x) { return tg::abs(x); });
  t["tanh_saturation"] = u([](const Tensor& x) { return tg::tanh(x); });
  t["sigmoid_saturation"] = u([](const Tensor& x) { return tg::sigmoid(x); });
  t["tanh_nan"] = u([](const Tensor& x) { return tg::tanh(x); });
  t["sigmoid_nan"] = u([](const Tensor& x) { return tg::sigmoid(x); });
  t["erf_inf"] = u([](const Tensor& x) { return tg::erf(x); });
  t["relu_nan"] = u([](const Tensor& x) { return tg::relu(x); });
  t["clamp_nan"] = u([](const Tensor& x) { return tg::clamp(x, -0.5, 0.7); });
  t["maximum_nan"] = b([](const Tensor& x, const Tensor& y) { return tg::maximum(x, y); });
  t["minimum_nan"] = b([](const Tensor& x, const Tensor& y) { return tg::minimum(x, y); });
  t["amax_nan"] = u([](const Tensor& x) { return x.max({1}); });
  t["amax_inf"] = u([](const Tensor& x) { return x.max({1}); });
  t["logsumexp_neg_inf_row"] = u([](const Tensor& x) { return tg::logsumexp(x, {1}); });
  t["logsumexp_pos_inf"] = u([](const Tensor& x) { return tg::logsumexp(x, {1}); });
  t["logsumexp_extreme"] = u([](const Tensor& x) { return tg::logsumexp(x, {1}); });
  t["atan2_at_origin"] = b([](const Tensor& y, const Tensor& x) { return tg::atan2(y, x); });
  t["var_single"] = u([](const Tensor& x) { return tg::var(x, {1}); });
  t["std_constant"] = u([](const Tensor& x) { return tg::std(x, {1}); });
  t["softplus_extreme"] = u([](const Tensor& x) { return F::softplus(x); });
  t["cumsum_inf"] = u([](const Tensor& x) { return x.cumsum(0); });

  // ---- softmax and log-softmax ----
  t["log_softmax_extreme"] = u([](const Tensor& x) { return F::log_softmax(x, 1); });
  t["softmax_extreme"] = u([](const Tensor& x) { return F::softmax(x, 1); });
  t["log_softmax_extreme_dim0"] = u([](const Tensor& x) { return F::log_softmax(x, 0); });
  t["softmax_neg_inf_partial"] = u([](const Tensor& x) { return F::softmax(x, 1); });
  t["log_softmax_neg_inf_partial"] = u([](const Tensor& x) { return F::log_softmax(x, 1); });
  t["softmax_neg_inf_row"] = u([](const Tensor& x) { return F::softmax(x, 1); });
  t["log_softmax_neg_inf_row"] = u([](const Tensor& x) { return F::log_softmax(x, 1); });
  t["softmax_pos_inf"] = u([](const Tensor& x) { return F::softmax(x, 1); });

  // ---- cross-entropy ----
  using CE = F::CrossEntropyOptions;
  auto ce = b([](const Tensor& x, const Tensor& y) { return F::cross_entropy(x, y); }, "cross_entropy");
  t["cross_entropy_extreme"] = ce;
  t["cross_entropy_extreme_none"] = b([](const Tensor& x, const Tensor& y) {
    return F::cross_entropy(x, y, CE().reduction(tg::kNone));
  });
  t["cross_entropy_extreme_smooth"] = b([](const Tensor& x, const Tensor& y) {
    return F::cross_entropy(x, y, CE().label_smoothing(0.1));
  });
  t["cross_entropy_extreme_weight"] = c([](const Tensor& x, const Tensor& y, const Tensor& w) {
    return F::cross_entropy(x, y, CE().weight(w));
  });
  t["cross_entropy_neg_inf_logit"] = ce;
  t["cross_entropy_neg_inf_logit_smooth"] = b([](const Tensor& x, const Tensor& y) {
    return F::cross_entropy(x, y, CE().label_smoothing(0.1));
  });
  t["cross_entropy_neg_inf_at_target"] = ce;
  t["cross_entropy_nan_logit"] = ce;
  t["cross_entropy_all_ignored"] = b([](const Tensor& x, const Tensor& y) {
    return F::cross_entropy(x, y, CE().ignore_index(2));
  });
  t["cross_entropy_all_ignored_smooth"] = b([](const Tensor& x, const Tensor& y) {
    return F::cross_entropy(x, y, CE().ignore_index(2).label_smoothing(0.1));
  });
  t["nll_loss_all_ignored"] = b([](const Tensor& x, const Tensor& y) { return F::nll_loss(x, y, CE().ignore_index(1)); });
  t["cross_entropy_target_too_large"] = ce;
  t["cross_entropy_target_negative"] = ce;
  t["cross_entropy_spatial_target_too_large"] = ce;
  t["nll_loss_target_too_large"] = b([](const Tensor& x, const Tensor& y) { return F::nll_loss(x, y); }, "nll_loss");
  t["cross_entropy_nan_labels"] = ce;

  // ---- normalisation ----
  auto bn_train = c([](const Tensor& x, const Tensor& w, const Tensor& bb) {
    Tensor rm = tg::zeros({x.size(1)}, x.dtype()), rv = tg::ones({x.size(1)}, x.dtype());
    return F::batch_norm(x, rm, rv, w, bb, true, 0.1, 1e-5);
  }, "batch_norm");
  t["batch_norm_constant_channel"] = bn_train;
  t["batch_norm_constant_channel_1d"] = bn_train;
  t["batch_norm_all_constant"] = bn_train;
  t["batch_norm_eval_zero_var"] = c([](const Tensor& x, const Tensor& w, const Tensor& bb) {
    Tensor rm = tg::zeros({x.size(1)}, x.dtype()), rv = tg::zeros({x.size(1)}, x.dtype());
    return F::batch_norm(x, rm, rv, w, bb, false, 0.1, 1e-5);
  });
  t["batch_norm_one_value_per_channel"] = bn_train;
  t["batch_norm_one_value_per_channel_2d"] = bn_train;
  t["layer_norm_constant"] = c([](const Tensor& x, const Tensor& w, const Tensor& bb) {
    return F::layer_norm(x, {4}, w, bb);
  });
  t["group_norm_constant"] = c([](const Tensor& x, const Tensor& w, const Tensor& bb) {
    return F::group_norm(x, 2, w, bb);
  });

  // ---- regression and binary losses ----
  t["mse_loss_overflow"] = b([](const Tensor& x, const Tensor& y) { return F::mse_loss(x, y); });
  t["mse_loss_nan_target"] = t["mse_loss_overflow"];
  t["mse_loss_inf_input"] = t["mse_loss_overflow"];
  t["mse_loss_inf_target"] = b([](const Tensor& x, const Tensor& y) { return F::mse_loss(x, y, tg::kNone); });
  t["l1_loss_nan_target"] = b([](const Tensor& x, const Tensor& y) { return F::l1_loss(x, y); });
  t["bce_with_logits_extreme"] = b([](const Tensor& x, const Tensor& y) {
    return F::binary_cross_entropy_with_logits(x, y, {}, {}, tg::kNone);
  });
  t["bce_with_logits_extreme_mean"] = b([](const Tensor& x, const Tensor& y) {
    return F::binary_cross_entropy_with_logits(x, y);
  });
  t["bce_with_logits_extreme_pos_weight"] = c([](const Tensor& x, const Tensor& y, const Tensor& pw) {
    return F::binary_cross_entropy_with_logits(x, y, {}, pw, tg::kNone);
  });
  t["bce_with_logits_at_0"] = t["bce_with_logits_extreme_mean"];
  t["bce_with_logits_nan_target"] = t["bce_with_logits_extreme"];
  t["binary_cross_entropy_at_bounds"] = b([](const Tensor& p, const Tensor& y) {
    return F::binary_cross_entropy(p, y, {}, tg::kNone);
  });
  auto bce = b([](const Tensor& p, const Tensor& y) { return F::binary_cross_entropy(p, y); }, "binary_cross_entropy");
  t["binary_cross_entropy_out_of_range"] = bce;
  t["binary_cross_entropy_nan_input"] = bce;

  // ---- activations ----
  t["elu_extreme"] = u([](const Tensor& x) { return F::elu(x); });
  t["gelu_extreme"] = u([](const Tensor& x) { return F::gelu(x); });
  t["leaky_relu_inf"] = u([](const Tensor& x) { return F::leaky_relu(x, 0.1); });
  return t;
}

const std::vector<golden::Case>& cases() {
  static const std::vector<golden::Case> c = golden::load(std::string(TAPEGRAD_GOLDEN_DIR) + "/edge.txt");
  return c;
}

golden::Table fns(const std::map<std::string, Row>& t) {
  golden::Table out;
  for (const auto& r : t) out[r.first] = r.second.fn;
  return out;
}

// The cases PyTorch computes in `dtype`; the raising ones are checked apart.
std::vector<golden::Case> computed(tg::Dtype dtype) {
  std::vector<golden::Case> out;
  for (const auto& c : cases())
    if (c.raises.empty() && c.known_difference.empty() && (dtype == tg::kFloat64 || !c.float64_only))
      out.push_back(c);
  return out;
}

// The inputs as the row takes them in `dtype` (int64 stays).
std::vector<Tensor> inputs_in(const golden::Case& c, tg::Dtype dtype) {
  std::vector<Tensor> xs;
  for (const auto& x : c.inputs) xs.push_back(x.dtype() == tg::kInt64 ? x : x.to(dtype));
  return xs;
}

}  // namespace

TEST_CASE("edge golden: every PyTorch case has a row and every row a case") {
  golden::check_coverage(fns(make_table()), cases(), 80);
}

TEST_CASE("edge golden: forward and gradients match PyTorch in float64 (NaN and Inf included)") {
  golden::check_all(fns(make_table()), computed(tg::kFloat64), tg::kFloat64, 1e-10, 1e-8);
}

TEST_CASE("edge golden: forward and gradients match PyTorch in float32 (NaN and Inf included)") {
  golden::check_all(fns(make_table()), computed(tg::kFloat32), tg::kFloat32, 5e-5, 5e-4);
}

// The documented differences (docs/reliability.md): the forward is PyTorch's, the gradients
// finite where PyTorch's are large or infinite.
TEST_CASE("edge golden: known differences keep PyTorch's forward and finite gradients") {
  auto table = make_table();
  int known = 0;
  for (const auto& c : cases()) {
    if (c.known_difference.empty() || !table.count(c.name)) continue;
    ++known;
    INFO("case ", c.name, " (", c.known_difference, ")");
    for (tg::Dtype d : {tg::kFloat64, tg::kFloat32}) {
      std::vector<Tensor> xs = inputs_in(c, d), wrt;
      for (size_t i = 0; i < xs.size(); ++i)
        if (xs[i].dtype() != tg::kInt64 && !c.constant[i]) wrt.push_back(xs[i] = xs[i].detach().requires_grad_());
      Tensor y = table.at(c.name).fn(xs);
      CHECK(golden::mismatch(y, c.output, 1e-6, 1e-6) <= 1.0);
      for (const Tensor& g : tg::autograd::grad({(y * c.weight.to(d)).sum()}, wrt))
        for (double v : g.to_vector<double>()) CHECK(std::isfinite(v));
    }
  }
  CHECK(known == 1);
}

TEST_CASE("edge golden: where PyTorch raises, tg::Error names the op") {
  auto table = make_table();
  int raising = 0;
  for (const auto& c : cases()) {
    if (c.raises.empty() || !table.count(c.name)) continue;
    ++raising;
    const Row& row = table.at(c.name);
    INFO("case ", c.name, " (PyTorch: ", c.raises, ")");
    REQUIRE_MESSAGE(!row.op.empty(), "the row names no op for its error");
    for (tg::Dtype d : {tg::kFloat64, tg::kFloat32}) {
      std::string msg;
      try {
        (void)row.fn(inputs_in(c, d));
      } catch (const tg::Error& e) {
        msg = e.what();
      }
      REQUIRE_MESSAGE(!msg.empty(), "no tg::Error thrown");
      CHECK_MESSAGE(msg.rfind(row.op + ":", 0) == 0, "message '", msg, "' does not start with '", row.op, ":'");
    }
  }
  CHECK(raising >= 8);
}

TEST_CASE("edge golden: gradcheck and gradgradcheck in float64 where the function is smooth") {
  auto table = make_table();
  int smooth = 0;
  for (const auto& c : cases()) {
    if (!c.smooth || !table.count(c.name)) continue;
    ++smooth;
    INFO("case ", c.name);
    auto [fn, inputs] = golden::bind_constants(c, table.at(c.name).fn);
    tg::GradcheckResult r = tg::gradcheck(fn, inputs);
    CHECK_MESSAGE(r.ok, r.message);
    tg::GradcheckResult rr = tg::gradgradcheck(fn, inputs);
    CHECK_MESSAGE(rr.ok, rr.message);
  }
  CHECK(smooth >= 10);
}
