#pragma once
/// Dataset: the small interface the DataLoader reads from. Implement size() and get(i) to plug
/// in your own data; override get_batch() too when a batch can be built faster than sample by
/// sample (MNIST does).
///
///   struct Squares : tg::data::Dataset {
///     int64_t size() const override { return 100; }
///     tg::data::Example get(int64_t i) const override {
///       return {tg::full({1}, double(i)), tg::scalar_tensor(double(i * i), tg::kInt64)};
///     }
///   };
#include <cstdint>
#include <vector>

#include "autograd/tensor.hpp"

namespace tg::data {

/// One sample ({image, label}) or one batch ({[B, ...] data, [B, ...] target}), as libtorch's
/// torch::data::Example.
struct Example {
  Tensor data;
  Tensor target;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of samples.
  virtual int64_t size() const = 0;
  /// Sample i, 0 <= i < size(). The DataLoader calls this from its worker thread(s), possibly
  /// several at once: it must be safe to call concurrently (reading immutable data is).
  virtual Example get(int64_t index) const = 0;
  /// The samples at `indices` stacked along a new first dimension. The default calls get() for
  /// each index and stacks with collate().
  virtual Example get_batch(const std::vector<int64_t>& indices) const;
};

/// Stacks samples into a batch: data [B, ...] and target [B, ...] (a 0-d target gives [B]).
/// Every sample's data must have the same shape and dtype, and so must every target.
Example collate(const std::vector<Example>& samples);

}  // namespace tg::data
