// gradcheck / gradgradcheck: analytic vector-Jacobian products against central differences.
#include "gradcheck.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "autograd.hpp"
#include "tensor_impl.hpp"

namespace tg {
namespace {

double dot(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

Tensor random_like(const Shape& s, std::mt19937_64& gen) {
  std::normal_distribution<double> dist;
  std::vector<double> v(size_t(shape_numel(s)));
  for (auto& x : v) x = dist(gen);
  return tensor(v, s, kFloat64);
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& raw, const GradcheckOptions& o) {
  std::mt19937_64 gen(o.seed());
  std::vector<Tensor> xs;
  std::vector<size_t> diff;  // indices of the inputs being checked
  for (size_t i = 0; i < raw.size(); ++i) {
    if (!raw[i].defined() || !is_floating(raw[i].dtype())) {
      xs.push_back(raw[i]);
      continue;
    }
    Tensor x = raw[i].detach().to(kFloat64);
    if (x.impl()->storage == raw[i].impl()->storage) x = x.clone().detach();  // never perturb the caller's data
    x.requires_grad_(true);
    xs.push_back(x);
    diff.push_back(i);
  }
  if (diff.empty()) return {false, "gradcheck: no floating input to check"};

  Tensor y = fn(xs);
  if (!y.defined()) return {false, "gradcheck: the function returned an undefined tensor"};
  if (y.dtype() != kFloat64)
    return {false, fmt::format("gradcheck: expected a float64 output for float64 inputs, got {}", dtype_name(y.dtype()))};

  // Output directions: the basis for small outputs (the full Jacobian), random ones otherwise.
  std::vector<Tensor> dirs;
  const bool full = y.numel() <= std::max<int64_t>(o.projections(), 16);
  for (int64_t k = 0; k < (full ? y.numel() : o.projections()); ++k) {
    if (full) {
      Tensor e = zeros(y.shape(), kFloat64);
      e.data_ptr<double>()[k] = 1.0;
      dirs.push_back(e);
    } else {
      dirs.push_back(random_like(y.shape(), gen));
    }
  }
  std::vector<Tensor> wrt;
  for (size_t i : diff) wrt.push_back(xs[i]);
  std::vector<std::vector<Tensor>> analytic;  // [direction][input]
  if (y.requires_grad()) {
    for (const Tensor& v : dirs) {
      auto g = autograd::grad({y}, wrt, {v}, /*retain_graph=*/1, false, /*allow_unused=*/true);
      for (size_t j = 0; j < g.size(); ++j)
        if (!g[j].defined()) g[j] = zeros(wrt[j].shape(), kFloat64);
      analytic.push_back(g);
    }
  } else {
    for (size_t k = 0; k < dirs.size(); ++k) {
      analytic.emplace_back();
      for (const Tensor& w : wrt) analytic.back().push_back(zeros(w.shape(), kFloat64));
    }
  }

  // Numeric evaluations keep grad mode on: fn may itself differentiate (gradgradcheck does).
  const double eps = o.eps();
  for (size_t j = 0; j < diff.size(); ++j) {
    Tensor& x = xs[diff[j]];
    double* p = x.data_ptr<double>();
    const int64_t n = x.numel();
    const bool per_element = n <= o.max_elements();
    const int64_t count = per_element ? n : o.projections();
    for (int64_t e = 0; e < count; ++e) {
      Tensor u;
      if (!per_element) u = random_like(x.shape(), gen);
      auto shift = [&](double s) {
        if (per_element)
          p[e] += s;
        else
          x.add_(u, s);
      };
      std::vector<double> saved(p, p + n);
      // Outputs are copied out at once: fn may return a view of its input (reshape).
      shift(eps);
      std::vector<double> dp = fn(xs).to_vector<double>();
      std::copy(saved.begin(), saved.end(), p);
      shift(-eps);
      std::vector<double> dm = fn(xs).to_vector<double>();
      std::copy(saved.begin(), saved.end(), p);
      for (size_t k = 0; k < dirs.size(); ++k) {
        auto v = dirs[k].to_vector<double>();
        double numeric = 0;
        for (size_t t = 0; t < v.size(); ++t) numeric += v[t] * (dp[t] - dm[t]) / (2 * eps);
        double a = per_element ? analytic[k][j].data_ptr<double>()[e] : dot(analytic[k][j], u);
        if (!(std::abs(a - numeric) <= o.atol() + o.rtol() * std::abs(numeric))) {
          std::string where = per_element ? fmt::format("element {}", e) : fmt::format("random direction {}", e);
          std::string out = full ? fmt::format("output element {}", k) : fmt::format("random output direction {}", k);
          return {false, fmt::format("gradcheck: Jacobian mismatch for input {} (shape {}), {}, {}: analytic {:.10g} "
                                     "vs numeric {:.10g} (atol {}, rtol {})",
                                     diff[j], shape_str(x.shape()), where, out, a, numeric, o.atol(), o.rtol())};
        }
      }
    }
  }
  return {true, ""};
}

GradcheckResult gradgradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
  std::mt19937_64 gen(o.seed() + 1);
  std::vector<Tensor> xs;
  std::vector<size_t> diff;
  for (size_t i = 0; i < inputs.size(); ++i) {
    bool floating = inputs[i].defined() && is_floating(inputs[i].dtype());
    xs.push_back(floating ? inputs[i].detach().to(kFloat64) : inputs[i]);
    if (floating) diff.push_back(i);
  }
  Tensor y0;
  {
    NoGradGuard g;
    y0 = fn(xs);
  }
  if (!y0.defined()) return {false, "gradgradcheck: the function returned an undefined tensor"};
  xs.push_back(random_like(y0.shape(), gen));  // the output gradient is an input too
  auto first_derivative = [&fn, diff](const std::vector<Tensor>& in) {
    std::vector<Tensor> args(in.begin(), in.end() - 1);
    std::vector<Tensor> wrt;
    for (size_t i : diff) wrt.push_back(args[i]);
    Tensor y = fn(args);
    std::vector<Tensor> flat;
    if (y.requires_grad()) {
      auto g = autograd::grad({y}, wrt, {in.back()}, true, /*create_graph=*/true, /*allow_unused=*/true);
      for (size_t j = 0; j < g.size(); ++j) flat.push_back(g[j].defined() ? g[j].reshape({-1}) : zeros({wrt[j].numel()}, kFloat64));
    } else {
      for (const Tensor& w : wrt) flat.push_back(zeros({w.numel()}, kFloat64));
    }
    return cat(flat, 0);
  };
  GradcheckResult r = gradcheck(first_derivative, xs, o);
  if (!r.ok) r.message = "gradgradcheck (second derivatives): " + r.message;
  return r;
}

}  // namespace tg
