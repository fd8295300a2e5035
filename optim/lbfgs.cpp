// L-BFGS with an optional strong-Wolfe line search, following torch.optim.LBFGS (PyTorch 1.13)
// decision for decision, so float64 runs take the same iterations and stop at the same places.
// The flat vectors are 1-D tensors of the parameters' dtype worked on with plain loops; the
// scalars (dot products, step lengths, losses) are doubles. `a.add_(b, alpha)` in ATen is a
// fused multiply-add on CPUs with FMA, so the updates here use std::fma to match it.
#include "lbfgs.hpp"

#include <array>
#include <cmath>
#include <tuple>
#include <utility>

#include "../autograd/autograd.hpp"
#include "detail.hpp"

namespace tg::optim {
namespace {

// ---- flat vectors ----
// a·b, summed in the vectors' dtype in index order.
double dot(const Tensor& a, const Tensor& b) {
  double r = 0;
  detail::dispatch_param(a, [&](auto z) {
    using T = decltype(z);
    const T* x = a.data_ptr<T>();
    const T* y = b.data_ptr<T>();
    T s = 0;
    for (int64_t i = 0, n = a.numel(); i < n; ++i) s += x[i] * y[i];
    r = double(s);
  });
  return r;
}

// max_i |scale·v_i| (scale = 1: the max norm), as torch's v.mul(scale).abs().max().
double abs_max(const Tensor& v, double scale = 1) {
  double r = 0;
  detail::dispatch_param(v, [&](auto z) {
    using T = decltype(z);
    const T* x = v.data_ptr<T>();
    const T s = T(scale);
    T m = 0;
    for (int64_t i = 0, n = v.numel(); i < n; ++i) m = std::max(m, std::abs(x[i] * s));
    r = double(m);
  });
  return r;
}

double abs_sum(const Tensor& v) {
  double r = 0;
  detail::dispatch_param(v, [&](auto z) {
    using T = decltype(z);
    const T* x = v.data_ptr<T>();
    T s = 0;
    for (int64_t i = 0, n = v.numel(); i < n; ++i) s += std::abs(x[i]);
    r = double(s);
  });
  return r;
}

// A new vector with out_i = f(i, T).
template <typename F>
Tensor map(const Tensor& like, F&& f) {
  Tensor out = tg::empty(like.shape(), like.dtype());
  detail::dispatch_param(like, [&](auto z) {
    using T = decltype(z);
    T* o = out.data_ptr<T>();
    for (int64_t i = 0, n = like.numel(); i < n; ++i) o[i] = f(i, z);
  });
  return out;
}

Tensor negated(const Tensor& v) {
  return map(v, [&](int64_t i, auto z) { return -v.data_ptr<decltype(z)>()[i]; });
}
Tensor minus(const Tensor& a, const Tensor& b) {
  return map(a, [&](int64_t i, auto z) { return a.data_ptr<decltype(z)>()[i] - b.data_ptr<decltype(z)>()[i]; });
}
Tensor scaled(const Tensor& v, double s) {
  return map(v, [&](int64_t i, auto z) { return v.data_ptr<decltype(z)>()[i] * decltype(z)(s); });
}

// y += alpha·x, fused (torch's y.add_(x, alpha=alpha)).
void axpy(Tensor& y, double alpha, const Tensor& x) {
  detail::dispatch_param(y, [&](auto z) {
    using T = decltype(z);
    T* p = y.data_ptr<T>();
    const T* q = x.data_ptr<T>();
    const T a = T(alpha);
    for (int64_t i = 0, n = y.numel(); i < n; ++i) p[i] = std::fma(a, q[i], p[i]);
  });
}

// Python's min(a, b) and max(a, b): the first argument unless the second is strictly better,
// which decides what a NaN gives.
double py_min(double a, double b) { return b < a ? b : a; }
double py_max(double a, double b) { return b > a ? b : a; }

// ---- the line search (Moré-Thuente style, as minFunc's and torch/optim's lswolfe.lua) ----

// The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to the bounds
// (default: the interval between the points); their midpoint when the cubic has no minimum.
double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                         std::optional<std::pair<double, double>> bounds = std::nullopt) {
  auto [lo, hi] = bounds ? *bounds : (x1 <= x2 ? std::make_pair(x1, x2) : std::make_pair(x2, x1));
  const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const double d2_square = d1 * d1 - g1 * g2;
  if (d2_square >= 0) {
    const double d2 = std::sqrt(d2_square);
    const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                                    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    return py_min(py_max(min_pos, lo), hi);
  }
  return (lo + hi) / 2.;
}

// A trial point of the line search: step t, loss f, gradient g, directional derivative gtd.
struct Point {
  double t, f;
  Tensor g;
  double gtd;
};

struct SearchResult {
  double f;
  Tensor g;
  double t;
  int64_t evals;
};

// Finds t along d satisfying the strong Wolfe conditions f(t) <= f + c1·t·gtd and
// |g(t)·d| <= −c2·gtd: first bracket such a t (extrapolating by cubic interpolation), then
// zoom in on it. eval(t) returns (loss, flat gradient) at x + t·d and leaves x unchanged.
template <typename Eval>
SearchResult strong_wolfe(Eval&& eval, double t, const Tensor& d, double f, const Tensor& g, double gtd) {
  constexpr double c1 = 1e-4, c2 = 0.9;
  // PyTorch's LBFGS does not pass its tolerance_change here, so the search uses the default.
  constexpr double tolerance_change = 1e-9;
  constexpr int max_ls = 25;
  const double d_norm = abs_max(d);
  auto [f_new, g_new] = eval(t);
  int64_t evals = 1;
  double gtd_new = dot(g_new, d);

  Point prev{0, f, g, gtd};
  std::array<Point, 2> bracket{};
  int size = 0;  // points in the bracket: 1 when the first phase already satisfied the conditions
  bool done = false;
  int ls_iter = 0;
  while (ls_iter < max_ls) {
    if (f_new > f + c1 * t * gtd || (ls_iter > 1 && f_new >= prev.f)) {
      bracket = {prev, Point{t, f_new, g_new, gtd_new}};
      size = 2;
      break;
    }
    if (std::abs(gtd_new) <= -c2 * gtd) {
      bracket[0] = Point{t, f_new, g_new, gtd_new};
      size = 1;
      done = true;
      break;
    }
    if (gtd_new >= 0) {
      bracket = {prev, Point{t, f_new, g_new, gtd_new}};
      size = 2;
      break;
    }
    // Extrapolate: the cubic's minimiser within [t + 0.01 (t - t_prev), 10 t].
    const double min_step = t + 0.01 * (t - prev.t);
    const double max_step = t * 10;
    const double tmp = t;
    t = cubic_interpolate(prev.t, prev.f, prev.gtd, t, f_new, gtd_new, std::make_pair(min_step, max_step));
    prev = Point{tmp, f_new, g_new, gtd_new};
    std::tie(f_new, g_new) = eval(t);
    ++evals;
    gtd_new = dot(g_new, d);
    ++ls_iter;
  }
  if (ls_iter == max_ls) {  // no bracket: choose between the start and the last point
    bracket = {Point{0, f, g, 0}, Point{t, f_new, g_new, 0}};
    size = 2;
  }

  // Zoom: shrink the bracket [low, high] (f(low) <= f(high)) around a point meeting the conditions.
  bool insufficient_progress = false;
  int low = bracket[0].f <= bracket[size - 1].f ? 0 : 1, high = 1 - low;
  while (!done && ls_iter < max_ls) {
    if (std::abs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change) break;
    t = cubic_interpolate(bracket[0].t, bracket[0].f, bracket[0].gtd, bracket[1].t, bracket[1].f, bracket[1].gtd);
    // A trial too close to an end twice in a row (or at or past one) moves to 0.1 of the
    // bracket's length from the nearer end.
    const double b_max = py_max(bracket[0].t, bracket[1].t), b_min = py_min(bracket[0].t, bracket[1].t);
    const double eps = 0.1 * (b_max - b_min);
    if (py_min(b_max - t, t - b_min) < eps) {
      if (insufficient_progress || t >= b_max || t <= b_min) {
        t = std::abs(t - b_max) < std::abs(t - b_min) ? b_max - eps : b_min + eps;
        insufficient_progress = false;
      } else {
        insufficient_progress = true;
      }
    } else {
      insufficient_progress = false;
    }
    std::tie(f_new, g_new) = eval(t);
    ++evals;
    gtd_new = dot(g_new, d);
    ++ls_iter;
    const Point trial{t, f_new, g_new, gtd_new};
    if (f_new > f + c1 * t * gtd || f_new >= bracket[low].f) {  // not sufficiently lower: the new high
      bracket[high] = trial;
      low = bracket[0].f <= bracket[1].f ? 0 : 1;
      high = 1 - low;
    } else {
      if (std::abs(gtd_new) <= -c2 * gtd) {
        done = true;
      } else if (gtd_new * (bracket[high].t - bracket[low].t) >= 0) {
        bracket[high] = bracket[low];  // the old low becomes the high
      }
      bracket[low] = trial;
    }
  }
  return {bracket[low].f, bracket[low].g, bracket[low].t, evals};
}

int64_t as_count(double v, const char* option) {
  if (!(v >= 0 && v < 9.2e18) || v != std::floor(v))
    throw Error(fmt::format("LBFGS: invalid {} {} (expected a non-negative integer)", option, v));
  return int64_t(v);
}

}  // namespace

// ---- options ----
void LBFGSOptions::validate(const std::string& who) const {
  detail::check_non_negative(who, "lr", lr_);
  detail::check(max_iter_ >= 1, who, "max_iter", double(max_iter_), ">= 1");
  if (max_eval_) detail::check(*max_eval_ >= 1, who, "max_eval", double(*max_eval_), ">= 1");
  detail::check_non_negative(who, "tolerance_grad", tolerance_grad_);
  detail::check_non_negative(who, "tolerance_change", tolerance_change_);
  detail::check(history_size_ >= 1, who, "history_size", double(history_size_), ">= 1");
  if (!line_search_fn_.empty() && line_search_fn_ != "strong_wolfe")
    throw Error(fmt::format("{}: invalid line_search_fn '{}' (expected \"\" or \"strong_wolfe\")", who,
                            line_search_fn_));
}

void LBFGSOptions::visit(const Visitor& f) {
  double max_iter = double(max_iter_), history = double(history_size_);
  double max_eval = double(max_eval_.value_or(max_iter_ * 5 / 4));
  double strong_wolfe = line_search_fn_ == "strong_wolfe" ? 1 : 0;
  f("lr", &lr_, 1);
  f("max_iter", &max_iter, 1);
  f("max_eval", &max_eval, 1);
  f("tolerance_grad", &tolerance_grad_, 1);
  f("tolerance_change", &tolerance_change_, 1);
  f("history_size", &history, 1);
  f("line_search_fn", &strong_wolfe, 1);
  max_iter_ = as_count(max_iter, "max_iter");
  max_eval_ = as_count(max_eval, "max_eval");
  history_size_ = as_count(history, "history_size");
  if (strong_wolfe != 0 && strong_wolfe != 1)
    throw Error(fmt::format("LBFGS: invalid line_search_fn {} (expected 0 for none or 1 for strong_wolfe)",
                            strong_wolfe));
  line_search_fn_ = strong_wolfe == 1 ? "strong_wolfe" : "";
}

// ---- the optimizer ----
namespace {
LBFGSOptions with_max_eval(LBFGSOptions o) {
  if (!o.max_eval()) o.max_eval(o.max_iter() * 5 / 4);
  return o;
}
}  // namespace

LBFGS::LBFGS(std::vector<Tensor> params, const LBFGSOptions& defaults)
    : LBFGS(std::vector<ParamGroup>{ParamGroup(std::move(params))}, defaults) {}

LBFGS::LBFGS(std::vector<ParamGroup> groups, const LBFGSOptions& defaults)
    : Optimizer("LBFGS", with_max_eval(defaults)) {
  if (groups.size() != 1)
    throw Error(fmt::format("LBFGS: doesn't support per-parameter options (parameter groups): got {} groups, "
                            "expected 1",
                            groups.size()));
  init(std::move(groups));
  auto& o = static_cast<LBFGSOptions&>(param_groups()[0].options());
  if (!o.max_eval()) o.max_eval(o.max_iter() * 5 / 4);
  const std::vector<Tensor>& params = param_groups()[0].params();
  for (size_t i = 1; i < params.size(); ++i)
    if (params[i].dtype() != params[0].dtype())
      throw Error(fmt::format("LBFGS: all parameters must have one dtype (they form one vector): parameter 0 is {}, "
                              "parameter {} is {}",
                              dtype_name(params[0].dtype()), i, dtype_name(params[i].dtype())));
}

void LBFGS::update(Tensor&, const Tensor&, ParamState&, const OptimizerOptions&) {
  throw Error("LBFGS: internal error: the per-parameter update is not used (step(closure) does the work)");
}

Tensor LBFGS::step(const LossClosure& closure) {
  if (!closure)
    throw Error("LBFGS.step: needs a closure that zeroes the gradients, computes the loss, calls backward and "
                "returns the loss");
  if (param_groups().size() != 1)
    throw Error(fmt::format("LBFGS.step: doesn't support parameter groups, the optimizer has {} (add_param_group?)",
                            param_groups().size()));
  const auto& o = static_cast<const LBFGSOptions&>(param_groups()[0].options());
  std::vector<Tensor> params = param_groups()[0].params();  // handles to the parameters
  const Dtype dtype = params[0].dtype();
  int64_t numel = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].dtype() != dtype)
      throw Error(fmt::format("LBFGS.step: parameter {} is {}, parameter 0 is {} (they form one vector)", i,
                              dtype_name(params[i].dtype()), dtype_name(dtype)));
    numel += params[i].numel();
  }
  State& s = lbfgs_;
  if (s.d.defined() && s.d.numel() != numel)
    throw Error(fmt::format("LBFGS.step: the parameters have {} elements in all, the optimizer's state {}", numel,
                            s.d.numel()));
  if (s.d.defined() && s.d.dtype() != dtype) {  // the parameters were converted (Module::to)
    s.d = s.d.to(dtype);
    s.prev_flat_grad = s.prev_flat_grad.to(dtype);
    for (auto* list : {&s.old_dirs, &s.old_stps})
      for (Tensor& v : *list) v = v.to(dtype);
  }
  NoGradGuard no_grad;

  // The closure's loss as a double (torch: float(closure())), keeping the first loss tensor.
  auto evaluate = [&](Tensor* keep) {
    Tensor loss;
    {
      GradModeGuard on(true);
      loss = closure();
    }
    if (!loss.defined() || loss.numel() != 1)
      throw Error(fmt::format("LBFGS.step: the closure should return the loss, a one-element tensor; got {}",
                              loss.defined() ? shape_str(loss.shape()) : "an undefined tensor"));
    if (keep) *keep = loss;
    return loss.item<double>();
  };
  auto flat_grad = [&] {
    Tensor flat = tg::empty({numel}, dtype);
    detail::dispatch_param(flat, [&](auto z) {
      using T = decltype(z);
      T* out = flat.data_ptr<T>();
      for (size_t i = 0; i < params.size(); ++i) {
        const Tensor& p = params[i];
        const Tensor& g = p.grad();
        const int64_t n = p.numel();
        if (!g.defined()) {
          std::fill(out, out + n, T(0));  // as torch: a parameter without a gradient counts as zeros
        } else {
          if (g.shape() != p.shape() || g.dtype() != p.dtype())
            throw Error(fmt::format("LBFGS.step: parameter {} is {} {} but its gradient is {} {}", i,
                                    dtype_name(p.dtype()), shape_str(p.shape()), dtype_name(g.dtype()),
                                    shape_str(g.shape())));
          std::copy(g.data_ptr<T>(), g.data_ptr<T>() + n, out);
        }
        out += n;
      }
    });
    return flat;
  };
  // x += t·d over the parameters (torch's p.add_(d_slice, alpha=t)).
  auto add_to_params = [&](double t, const Tensor& d) {
    detail::dispatch_param(d, [&](auto z) {
      using T = decltype(z);
      const T* dir = d.data_ptr<T>();
      const T a = T(t);
      for (Tensor& p : params) {
        T* x = p.data_ptr<T>();
        for (int64_t i = 0, n = p.numel(); i < n; ++i) x[i] = std::fma(a, dir[i], x[i]);
        dir += p.numel();
      }
    });
  };

  const int64_t max_iter = o.max_iter(), max_eval = o.max_eval().value_or(max_iter * 5 / 4);
  const double lr = o.lr(), tolerance_grad = o.tolerance_grad(), tolerance_change = o.tolerance_change();

  Tensor orig_loss;
  double loss = evaluate(&orig_loss);
  int64_t current_evals = 1;
  ++s.func_evals;
  Tensor g = flat_grad();
  bool opt_cond = abs_max(g) <= tolerance_grad;
  if (opt_cond) return orig_loss;

  for (int64_t n_iter = 1; n_iter <= max_iter; ++n_iter) {
    ++s.n_iter;
    // ---- the direction ----
    if (s.n_iter == 1) {
      s.d = negated(g);
      s.old_dirs.clear();
      s.old_stps.clear();
      s.ro.clear();
      s.H_diag = 1;
    } else {
      Tensor y = minus(g, s.prev_flat_grad);
      Tensor step = scaled(s.d, s.t);
      const double ys = dot(y, step);
      if (ys > 1e-10) {  // keep the pair only where the curvature is positive
        while (int64_t(s.old_dirs.size()) >= o.history_size()) {
          s.old_dirs.pop_front();
          s.old_stps.pop_front();
          s.ro.pop_front();
        }
        s.old_dirs.push_back(y);
        s.old_stps.push_back(step);
        s.ro.push_back(1. / ys);
        s.H_diag = ys / dot(y, y);
      }
      // Two-loop recursion: d = −H g with H from the pairs, newest first then oldest first.
      const size_t k = s.old_dirs.size();
      std::vector<double> al(k);
      Tensor q = negated(g);
      for (size_t i = k; i-- > 0;) {
        al[i] = dot(s.old_stps[i], q) * s.ro[i];
        axpy(q, -al[i], s.old_dirs[i]);
      }
      s.d = scaled(q, s.H_diag);
      for (size_t i = 0; i < k; ++i) {
        const double be_i = dot(s.old_dirs[i], s.d) * s.ro[i];
        axpy(s.d, al[i] - be_i, s.old_stps[i]);
      }
    }
    if (!s.prev_flat_grad.defined())
      s.prev_flat_grad = g.clone();
    else
      s.prev_flat_grad.copy_(g);
    s.prev_loss = loss;

    // ---- the step length ----
    s.t = s.n_iter == 1 ? py_min(1., 1. / abs_sum(g)) * lr : lr;
    const double gtd = dot(g, s.d);
    if (gtd > -tolerance_change) break;  // not a descent direction (any more)

    int64_t ls_func_evals = 0;
    if (o.line_search_fn() == "strong_wolfe") {
      std::vector<Tensor> x_init;
      for (const Tensor& p : params) x_init.push_back(p.clone());
      auto eval = [&](double t) {
        add_to_params(t, s.d);
        double f = evaluate(nullptr);
        Tensor fg = flat_grad();
        for (size_t i = 0; i < params.size(); ++i) params[i].copy_(x_init[i]);
        return std::make_pair(f, fg);
      };
      SearchResult r = strong_wolfe(eval, s.t, s.d, loss, g, gtd);
      loss = r.f;
      g = r.g;
      s.t = r.t;
      ls_func_evals = r.evals;
      add_to_params(s.t, s.d);
      opt_cond = abs_max(g) <= tolerance_grad;
    } else {
      add_to_params(s.t, s.d);
      if (n_iter != max_iter) {  // as torch: the last iteration's point is not evaluated
        loss = evaluate(nullptr);
        g = flat_grad();
        opt_cond = abs_max(g) <= tolerance_grad;
        ls_func_evals = 1;
      }
    }
    current_evals += ls_func_evals;
    s.func_evals += ls_func_evals;

    // ---- stopping ----
    if (n_iter == max_iter || current_evals >= max_eval || opt_cond) break;
    if (abs_max(s.d, s.t) <= tolerance_change) break;  // the step is too small
    if (std::abs(loss - s.prev_loss) < tolerance_change) break;
  }
  return orig_loss;
}

// ---- state dict ----
namespace {
const char* const kStateKeys[] = {"func_evals", "n_iter", "d",     "t",          "old_dirs",
                                  "old_stps",   "ro",     "H_diag", "prev_flat_grad", "prev_loss"};

Tensor stack_rows(const std::deque<Tensor>& rows, int64_t n, Dtype dtype) {
  Tensor out = tg::empty({int64_t(rows.size()), n}, dtype);
  detail::dispatch_param(out, [&](auto z) {
    using T = decltype(z);
    T* o = out.data_ptr<T>();
    for (const Tensor& r : rows) o = std::copy(r.data_ptr<T>(), r.data_ptr<T>() + n, o);
  });
  return out;
}
}  // namespace

StateDict LBFGS::state_dict() const {
  StateDict sd = Optimizer::state_dict();
  const State& s = lbfgs_;
  if (s.func_evals == 0) return sd;  // no step yet: no state, as torch
  auto scalar = [](double v, Dtype d) { return tg::scalar_tensor(v, d); };
  sd["state.0.func_evals"] = scalar(double(s.func_evals), kInt64);
  sd["state.0.n_iter"] = scalar(double(s.n_iter), kInt64);
  if (!s.d.defined()) return sd;  // every step so far stopped before its first iteration
  const int64_t n = s.d.numel();
  sd["state.0.d"] = s.d.clone();
  sd["state.0.t"] = scalar(s.t, kFloat64);
  sd["state.0.old_dirs"] = stack_rows(s.old_dirs, n, s.d.dtype());
  sd["state.0.old_stps"] = stack_rows(s.old_stps, n, s.d.dtype());
  sd["state.0.ro"] = tg::tensor(std::vector<double>(s.ro.begin(), s.ro.end()), {int64_t(s.ro.size())}, kFloat64);
  sd["state.0.H_diag"] = scalar(s.H_diag, kFloat64);
  sd["state.0.prev_flat_grad"] = s.prev_flat_grad.clone();
  sd["state.0.prev_loss"] = scalar(s.prev_loss, kFloat64);
  return sd;
}

void LBFGS::load_state_dict(const StateDict& sd) {
  NoGradGuard no_grad;
  const std::string who = "LBFGS.load_state_dict";
  StateDict rest;
  std::map<std::string, Tensor> entries;
  for (const auto& [key, value] : sd) {
    if (key.rfind("state.", 0) != 0) {
      rest.emplace(key, value);
      continue;
    }
    const std::string name = key.rfind("state.0.", 0) == 0 ? key.substr(8) : "";
    bool known = false;
    for (const char* k : kStateKeys) known = known || name == k;
    if (!known)
      throw Error(fmt::format("{}: unexpected key '{}' (LBFGS keeps its state under state.0.{{{}}})", who, key,
                              "func_evals, n_iter, d, t, old_dirs, old_stps, ro, H_diag, prev_flat_grad, prev_loss"));
    if (!value.defined()) throw Error(fmt::format("{}: key '{}' holds an undefined tensor", who, key));
    entries[name] = value;
  }
  auto get = [&](const std::string& name) -> const Tensor& {
    auto it = entries.find(name);
    if (it == entries.end()) throw Error(fmt::format("{}: missing key 'state.0.{}'", who, name));
    return it->second;
  };
  auto number = [&](const std::string& name) {
    const Tensor& v = get(name);
    if (v.numel() != 1)
      throw Error(fmt::format("{}: key 'state.0.{}' should hold one value, got shape {}", who, name,
                              shape_str(v.shape())));
    return v.item<double>();
  };
  auto count = [&](const std::string& name) {
    const double v = number(name);
    if (!(v >= 0) || v != std::floor(v) || v > 9e18)
      throw Error(fmt::format("{}: key 'state.0.{}' should be a non-negative integer, got {}", who, name, v));
    return int64_t(v);
  };

  // Everything is checked and converted into `s` first; the optimizer changes only at the end.
  const std::vector<Tensor>& params = param_groups()[0].params();
  const Dtype dtype = params[0].dtype();
  int64_t numel = 0;
  for (const Tensor& p : params) numel += p.numel();
  State s;
  if (!entries.empty()) {
    s.func_evals = count("func_evals");
    s.n_iter = count("n_iter");
    if (s.n_iter == 0) {
      for (const auto& [name, v] : entries)
        if (name != "func_evals" && name != "n_iter")
          throw Error(fmt::format("{}: unexpected key 'state.0.{}' with n_iter 0 (no iteration has run)", who, name));
    } else {
      auto vector = [&](const std::string& name) {
        const Tensor& v = get(name);
        if (v.shape() != Shape{numel})
          throw Error(fmt::format("{}: key 'state.0.{}' has shape {}, expected [{}] (the parameters' total size)",
                                  who, name, shape_str(v.shape()), numel));
        return v.to(dtype).clone();
      };
      s.d = vector("d");
      s.prev_flat_grad = vector("prev_flat_grad");
      s.t = number("t");
      s.H_diag = number("H_diag");
      s.prev_loss = number("prev_loss");
      const Tensor& ro = get("ro");
      if (ro.dim() != 1)
        throw Error(fmt::format("{}: key 'state.0.ro' should be 1-D, got shape {}", who, shape_str(ro.shape())));
      const int64_t k = ro.numel();
      for (double v : ro.to_vector<double>()) s.ro.push_back(v);
      for (const char* name : {"old_dirs", "old_stps"}) {
        const Tensor& m = get(name);
        if (m.shape() != Shape{k, numel})
          throw Error(fmt::format("{}: key 'state.0.{}' has shape {}, expected [{}, {}] (ro has {} pairs)", who, name,
                                  shape_str(m.shape()), k, numel, k));
        std::deque<Tensor>& rows = std::string(name) == "old_dirs" ? s.old_dirs : s.old_stps;
        Tensor conv = m.to(dtype);
        for (int64_t r = 0; r < k; ++r) rows.push_back(conv.narrow(0, r, 1).reshape({numel}).clone());
      }
    }
  }
  Optimizer::load_state_dict(rest);  // the options; throws before changing anything
  lbfgs_ = std::move(s);
}

}  // namespace tg::optim
