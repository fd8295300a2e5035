#pragma once
// Reader of tests/golden/ops.txt (written by tests/golden/generate.py with PyTorch).
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <tapegrad.hpp>

namespace golden {

struct Case {
  std::string name;
  std::vector<tg::Tensor> inputs;  // float64 or int64
  tg::Tensor output, weight;
  std::vector<tg::Tensor> grads;   // one per floating input
};

inline tg::Tensor parse_tensor(std::istringstream& is) {
  std::string dims, dtype;
  is >> dims >> dtype;
  tg::Shape shape;
  std::string inner = dims.substr(1, dims.size() - 2);
  std::stringstream ds(inner);
  for (std::string tok; std::getline(ds, tok, ',');)
    if (!tok.empty()) shape.push_back(std::stoll(tok));
  std::vector<double> values;
  for (double v; is >> v;) values.push_back(v);
  return tg::tensor(values, shape, dtype == "int64" ? tg::kInt64 : tg::kFloat64);
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
    } else if (kind == "input") {
      cases.back().inputs.push_back(parse_tensor(is));
    } else if (kind == "output") {
      cases.back().output = parse_tensor(is);
    } else if (kind == "weight") {
      cases.back().weight = parse_tensor(is);
    } else if (kind == "grad") {
      cases.back().grads.push_back(parse_tensor(is));
    }
  }
  return cases;
}

}  // namespace golden
