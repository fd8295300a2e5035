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
#include <memory>
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

/// The samples of `dataset` at `indices`, in that order, as torch.utils.data.Subset: sample i
/// is dataset->get(indices[i]); batches go through the dataset's own get_batch. Every index
/// must be in [0, dataset->size()) (checked here: a tg::Error names the first one that is not).
///
///   auto first_1000 = std::make_shared<tg::data::Subset>(train, tg::data::Subset::range(1000));
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices);
  int64_t size() const override { return int64_t(indices_.size()); }
  Example get(int64_t index) const override;
  Example get_batch(const std::vector<int64_t>& indices) const override;
  const std::vector<int64_t>& indices() const { return indices_; }
  const std::shared_ptr<const Dataset>& dataset() const { return dataset_; }
  /// 0, 1, ..., n - 1: the first n samples.
  static std::vector<int64_t> range(int64_t n);

 private:
  int64_t check(int64_t index) const;
  std::shared_ptr<const Dataset> dataset_;
  std::vector<int64_t> indices_;
};

/// Stacks samples into a batch: data [B, ...] and target [B, ...] (a 0-d target gives [B]).
/// Every sample's data must have the same shape and dtype, and so must every target.
Example collate(const std::vector<Example>& samples);

}  // namespace tg::data
