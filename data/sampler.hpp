#pragma once
/// Samplers: the order in which a DataLoader visits a dataset's samples, per epoch.
///
///   // each rank of a distributed job reads its own quarter of every epoch's shuffled order:
///   auto sampler = std::make_shared<tg::data::DistributedSampler>(train.size(), /*num_replicas=*/4, /*rank=*/r);
///   tg::data::DataLoader loader(train, tg::data::DataLoaderOptions().batch_size(32).sampler(sampler));
///
/// A DataLoader with a sampler passes its own epoch number to indices(epoch), so its epochs
/// reshuffle without set_epoch; set_epoch and indices() serve code that walks a sampler itself,
/// as PyTorch's DistributedSampler.set_epoch does.
#include <cstdint>
#include <vector>

#include "autograd/error.hpp"


namespace tg::data {

class Sampler {
 public:
  virtual ~Sampler() = default;
  /// How many indices each epoch yields.
  virtual int64_t size() const = 0;
  /// The sample indices of epoch `epoch`, in visiting order (size() of them).
  virtual std::vector<int64_t> indices(int64_t epoch) const = 0;
};

class DistributedSamplerOptions {
 public:
  /// Shuffle each epoch (the same permutation on every rank: it depends on seed and epoch only).
  DistributedSamplerOptions& shuffle(bool v) { shuffle_ = v; return *this; }
  DistributedSamplerOptions& seed(uint64_t v) { seed_ = v; return *this; }
  /// Drop the tail that does not divide evenly across ranks, instead of padding by repeating
  /// indices from the start of the order.
  DistributedSamplerOptions& drop_last(bool v) { drop_last_ = v; return *this; }
  bool shuffle() const { return shuffle_; }
  uint64_t seed() const { return seed_; }
  bool drop_last() const { return drop_last_; }

 private:
  bool shuffle_ = true;
  uint64_t seed_ = 0;
  bool drop_last_ = false;
};

/// As torch.utils.data.distributed.DistributedSampler: every rank draws the same permutation of
/// [0, dataset_size) from (seed, epoch), pads it (repeating from its start) to a multiple of
/// num_replicas, or cuts it when drop_last, and takes positions rank, rank + num_replicas, ...
/// The shards are disjoint and of equal size, ceil(n / num_replicas) (floor with drop_last).
/// The permutation is tapegrad's portable Fisher-Yates, not torch.randperm's.
class DistributedSampler : public Sampler {
 public:
  DistributedSampler(int64_t dataset_size, int64_t num_replicas, int64_t rank, DistributedSamplerOptions options = {});
  int64_t size() const override { return num_samples_; }
  std::vector<int64_t> indices(int64_t epoch) const override;
  /// indices(epoch()).
  std::vector<int64_t> indices() const { return indices(epoch_); }
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  /// num_replicas * size(): the padded (or cut) length of the whole order.
  int64_t total_size() const { return num_samples_ * num_replicas_; }

 private:
  int64_t dataset_size_, num_replicas_, rank_;
  DistributedSamplerOptions options_;
  int64_t num_samples_ = 0;
  int64_t epoch_ = 0;
};

}  // namespace tg::data
