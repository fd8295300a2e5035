#pragma once
/// DataLoader: batches of a Dataset, shuffled per epoch, prepared by background worker threads
/// while the current batch trains.
///
///   tg::data::MNIST train;
///   tg::data::DataLoader loader(train, tg::data::DataLoaderOptions().batch_size(64).shuffle(true).seed(1)
///                                          .transform(tg::data::Normalize(0.2860, 0.3530)));
///   for (int epoch = 0; epoch < 10; ++epoch)
///     for (auto& batch : loader)                // each range-for is one epoch
///       train_step(batch.data, batch.target);   // float32 [64, 1, 28, 28], int64 [64]
///
/// Determinism: the batches (order, contents and augmentation) depend only on the seed, the
/// epoch number and the dataset, never on thread timing or on the global tg generator.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "../autograd/arg.hpp"
#include "dataset.hpp"
#include "sampler.hpp"
#include "transforms.hpp"

namespace tg::data {

class DataLoaderOptions {
  TG_ARG(int64_t, batch_size) = 1;
  /// Visit the samples in a new random order each epoch.
  TG_ARG(bool, shuffle) = false;
  /// Drop the last batch when it is smaller than batch_size.
  TG_ARG(bool, drop_last) = false;
  /// Background threads preparing batches; 0 prepares each batch in next() on the caller's thread.
  TG_ARG(int, num_workers) = 1;
  /// Batches prepared ahead of the one being consumed (the queue's bound), at least 1.
  TG_ARG(int, prefetch) = 2;
  /// The sample order of each epoch comes from sampler->indices(epoch) instead of 0..n-1 (or a
  /// shuffle): a DistributedSampler gives each rank its shard. Exclusive with shuffle(true).
  TG_ARG(std::shared_ptr<const Sampler>, sampler);
  /// Applied to each sample's data in a worker, with a generator seeded from (seed, epoch, index).
  TG_ARG(Transform, transform);
  /// Applied to each whole batch (data and target, after the per-sample transform and
  /// stacking) in a worker, with a generator seeded from (seed, epoch, batch position): mixup,
  /// batch-wide normalisation, a change of dtype, ...
  TG_ARG(BatchTransform, batch_transform);

 public:
  /// Seed of the shuffle and of the transforms. Unset, it is drawn once from the global tg
  /// generator when the loader is made (so tg::manual_seed still makes runs repeatable).
  DataLoaderOptions& seed(uint64_t v) { seed_ = v; return *this; }
  const std::optional<uint64_t>& seed() const { return seed_; }

 private:
  std::optional<uint64_t> seed_;
};

class DataLoader {
 public:
  /// Shares the dataset with the caller.
  explicit DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {});
  /// Keeps its own copy of the dataset (an MNIST copy shares the pixels, so it is cheap).
  template <typename D, typename = std::enable_if_t<std::is_base_of_v<Dataset, std::decay_t<D>>>>
  explicit DataLoader(D&& dataset, DataLoaderOptions options = {})
      : DataLoader(std::make_shared<std::decay_t<D>>(std::forward<D>(dataset)), std::move(options)) {}
  /// Stops the workers (mid-epoch too) and waits for them; nothing is left running.
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;
  /// Moving keeps the epoch under way (its workers never touch the loader object itself).
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;

  /// The next batch of the current epoch, or nullopt once it is exhausted. With no epoch under
  /// way it starts the next one, so `while (auto b = loader.next())` walks one epoch per loop.
  /// An exception thrown while preparing a batch (by the dataset or a transform) is rethrown
  /// here, when that batch is due, and ends the epoch.
  std::optional<Example> next();
  /// Ends the current epoch early (the next batch starts a new one).
  void reset();

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Example;
    using difference_type = std::ptrdiff_t;
    using pointer = Example*;
    using reference = Example&;
    Example& operator*() { return *batch_; }
    Example* operator->() { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->next();
      return *this;
    }
    bool operator==(const Iterator& o) const { return batch_.has_value() == o.batch_.has_value(); }
    bool operator!=(const Iterator& o) const { return !(*this == o); }

   private:
    friend class DataLoader;
    DataLoader* loader_ = nullptr;
    std::optional<Example> batch_;
  };
  /// Starts a new epoch (ending any epoch under way) and returns its first batch.
  Iterator begin();
  Iterator end() { return {}; }

  /// Batches per epoch (of the sampler's indices when there is one).
  int64_t size() const;
  const Dataset& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }
  uint64_t seed() const { return seed_; }
  /// The number of the epoch under way (or the last one started); -1 before the first.
  int64_t epoch() const { return next_epoch_ - 1; }
  /// Sets the number of the next epoch to start (to resume a run where it stopped); epochs count
  /// from 0 and go up by one each time one starts.
  void set_epoch(int64_t e);
  /// The sample order of epoch e (the identity when not shuffling, the sampler's indices(e) when
  /// there is one); exposed for tests and resumes.
  std::vector<int64_t> order(int64_t epoch) const;

 private:
  struct Epoch;
  void start_epoch();
  void stop_epoch();

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  uint64_t seed_ = 0;
  int64_t next_epoch_ = 0;
  std::unique_ptr<Epoch> current_;
};

}  // namespace tg::data
