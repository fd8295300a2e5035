#pragma once
// The module the safetensors and checkpoint harnesses load into, and their seeds are saved
// from: a Linear and a BatchNorm1d, so float parameters, float buffers and an int64 buffer
// (num_batches_tracked) are all present, yet small enough for fast runs.
#include <tapegrad.hpp>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fuzz {

inline std::shared_ptr<tg::nn::Sequential> tiny_model() {
  auto m = std::make_shared<tg::nn::Sequential>();
  m->push_back(std::make_shared<tg::nn::Linear>(3, 2));
  m->push_back(std::make_shared<tg::nn::BatchNorm1d>(2));
  return m;
}

/// Every value of the state dict, bit for bit (NaN included), for "unchanged" checks.
inline std::map<std::string, std::vector<double>> snapshot(const tg::nn::Module& m) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& kv : m.state_dict()) out[kv.first] = kv.second.to_vector<double>();
  return out;
}
inline bool same_bits(const std::map<std::string, std::vector<double>>& a,
                      const std::map<std::string, std::vector<double>>& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || ia->second.size() != ib->second.size() ||
        std::memcmp(ia->second.data(), ib->second.data(), ia->second.size() * sizeof(double)) != 0)
      return false;
  return true;
}

}  // namespace fuzz
