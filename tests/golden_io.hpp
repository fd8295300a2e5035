#pragma once
// Reader of tests/golden/ops.txt (written by tests/golden/generate.py with PyTorch).
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <tapegrad.hpp>

namespace golden {

struct Case {
  std::string name;
  std::vector<tg::Tensor> inputs;  // float64 or int64
  std::vector<bool> constant;      // takes no gradient (class weights...)
  tg::Tensor output, weight;
  std::vector<tg::Tensor> grads;   // one per floating input
  std::string raises;              // PyTorch raised (edge.txt): its exception and message
  bool smooth = false;             // edge.txt: smooth at the inputs, so gradcheck applies
  bool float64_only = false;       // edge.txt: compared in float64 only
  std::string known_difference;    // edge.txt: forward matches, gradients are not PyTorch's (why)
};

/// The rest of a line's numbers.
inline std::vector<double> numbers(std::istringstream& is) {
  std::vector<double> v;
  for (std::string tok; is >> tok;) v.push_back(std::stod(tok));
  return v;
}

/// A shape written as "[2,3]" ("[]" for 0-d).
inline tg::Shape parse_shape(const std::string& dims) {
  tg::Shape shape;
  std::stringstream ds(dims.substr(1, dims.size() - 2));
  for (std::string tok; std::getline(ds, tok, ',');)
    if (!tok.empty()) shape.push_back(std::stoll(tok));
  return shape;
}

/// The rest of a line's key=value tokens.
inline std::map<std::string, std::string> fields(std::istringstream& is) {
  std::map<std::string, std::string> out;
  for (std::string tok; is >> tok;) {
    const auto eq = tok.find('=');
    out[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return out;
}

inline tg::Tensor parse_tensor(std::istringstream& is) {
  std::string dims, dtype;
  is >> dims >> dtype;
  return tg::tensor(numbers(is), parse_shape(dims), dtype == "int64" ? tg::kInt64 : tg::kFloat64);
}

/// A file of "<name> [dims] dtype values" lines (modules.txt, multi_output.txt), by name.
inline std::map<std::string, tg::Tensor> named_tensors(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open golden file " + path);
  std::map<std::string, tg::Tensor> m;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string name;
    is >> name;
    m[name] = parse_tensor(is);
  }
  return m;
}

inline std::vector<Case> load(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open golden file " + path);
  std::vector<Case> cases;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string kind;
    is >> kind;
    if (kind == "case") {
      cases.emplace_back();
      is >> cases.back().name;
    } else if (kind == "input" || kind == "constant") {
      cases.back().inputs.push_back(parse_tensor(is));
      cases.back().constant.push_back(kind == "constant");
    } else if (kind == "output") {
      cases.back().output = parse_tensor(is);
    } else if (kind == "weight") {
      cases.back().weight = parse_tensor(is);
    } else if (kind == "grad") {
      cases.back().grads.push_back(parse_tensor(is));
    } else if (kind == "raises") {
      std::getline(is >> std::ws, cases.back().raises);
    } else if (kind == "smooth") {
      cases.back().smooth = true;
    } else if (kind == "float64_only") {
      cases.back().float64_only = true;
    } else if (kind == "known_difference") {
      std::getline(is >> std::ws, cases.back().known_difference);
    }
  }
  return cases;
}

// Needs doctest included before this header.
// Largest violation of |a - b| <= atol + rtol |b|, as a ratio (<= 1 passes). NaN matches only
// NaN and an infinity only the same infinity.
inline double mismatch(const tg::Tensor& a, const tg::Tensor& b, double atol, double rtol) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i]))) continue;
    double err = std::abs(x[i] - y[i]) / (atol + rtol * std::abs(y[i]));
    if (!(err <= worst)) worst = err;  // NaN-aware
  }
  return worst;
}

// Runs one case in `dtype`: forward against the golden output, gradients of sum(out * R).
inline void check_against_golden(const Case& c, const std::function<tg::Tensor(const std::vector<tg::Tensor>&)>& fn, tg::Dtype dtype, double atol, double rtol) {
  std::vector<tg::Tensor> xs;
  std::vector<tg::Tensor> wrt;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const tg::Tensor& g = c.inputs[i];
    if (g.dtype() == tg::kInt64) {
      xs.push_back(g);
      continue;
    }
    if (c.constant[i]) {
      xs.push_back(g.to(dtype));
      continue;
    }
    xs.push_back(g.to(dtype).detach().clone().requires_grad_());
    wrt.push_back(xs.back());
  }
  tg::Tensor y = fn(xs);
  REQUIRE(y.defined());
  CHECK(y.dtype() == dtype);
  REQUIRE_MESSAGE(y.shape() == c.output.shape(), "shape ", tg::shape_str(y.shape()), " vs torch ",
                  tg::shape_str(c.output.shape()));
  CHECK_MESSAGE(mismatch(y, c.output, atol, rtol) <= 1.0, "forward differs from PyTorch: ", y, " vs ", c.output);
  tg::Tensor loss = (y * c.weight.to(dtype)).sum();
  auto grads = tg::autograd::grad({loss}, wrt, {}, false, false, /*allow_unused=*/true);
  REQUIRE(grads.size() == c.grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    tg::Tensor g = grads[i].defined() ? grads[i] : tg::zeros(wrt[i].shape(), dtype);
    REQUIRE(g.shape() == c.grads[i].shape());
    CHECK_MESSAGE(mismatch(g, c.grads[i], atol, rtol) <= 1.0, "gradient of input ", i, " differs from PyTorch: ", g,
                  " vs ", c.grads[i]);
  }
}


using Table = std::map<std::string, std::function<tg::Tensor(const std::vector<tg::Tensor>&)>>;

// Every golden case has a C++ row and every row a golden case.
inline void check_coverage(const Table& table, const std::vector<Case>& cases, size_t at_least) {
  std::set<std::string> names;
  for (const auto& c : cases) {
    names.insert(c.name);
    CHECK_MESSAGE(table.count(c.name) == 1, "no C++ row for golden case ", c.name);
  }
  for (const auto& row : table)  // no structured binding: doctest's macros capture in lambdas
    CHECK_MESSAGE(names.count(row.first) == 1, "row without golden values: ", row.first);
  CHECK(cases.size() >= at_least);
}

// Every row against its golden values in one dtype.
inline void check_all(const Table& table, const std::vector<Case>& cases, tg::Dtype dtype, double atol, double rtol) {
  for (const auto& c : cases) {
    INFO("case ", c.name);
    if (table.count(c.name)) check_against_golden(c, table.at(c.name), dtype, atol, rtol);
  }
}

using Fn = std::function<tg::Tensor(const std::vector<tg::Tensor>&)>;

// gradcheck over the inputs that take gradients; constants are bound into the function.
inline std::pair<Fn, std::vector<tg::Tensor>> bind_constants(const Case& c, const Fn& fn) {
  std::vector<tg::Tensor> free;
  std::vector<int> slot;
  for (size_t i = 0; i < c.inputs.size(); ++i)
    if (!c.constant[i]) {
      slot.push_back(int(i));
      free.push_back(c.inputs[i]);
    }
  auto all = c.inputs;
  Fn bound = [fn, all, slot](const std::vector<tg::Tensor>& in) {
    std::vector<tg::Tensor> args = all;
    for (size_t k = 0; k < slot.size(); ++k) args[size_t(slot[k])] = in[k];
    for (auto& a : args)
      if (a.dtype() != tg::kInt64 && a.dtype() != in[0].dtype()) a = a.to(in[0].dtype());
    return fn(args);
  };
  return {bound, free};
}

}  // namespace golden
