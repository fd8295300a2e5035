#include "sampler.hpp"

#include <fmt/format.h>

#include <random>
#include <utility>

#include "random.hpp"

namespace tg::data {

DistributedSampler::DistributedSampler(int64_t dataset_size, int64_t num_replicas, int64_t rank,
                                       DistributedSamplerOptions options)
    : dataset_size_(dataset_size), num_replicas_(num_replicas), rank_(rank), options_(std::move(options)) {
  if (dataset_size < 0)
    throw Error(fmt::format("DistributedSampler: expects dataset_size >= 0, got {}", dataset_size));
  if (num_replicas < 1)
    throw Error(fmt::format("DistributedSampler: expects num_replicas >= 1, got {}", num_replicas));
  if (rank < 0 || rank >= num_replicas)
    throw Error(fmt::format("DistributedSampler: expects a rank in [0, {}), got {}", num_replicas, rank));
  num_samples_ = options_.drop_last() ? dataset_size / num_replicas : (dataset_size + num_replicas - 1) / num_replicas;
}

void DistributedSampler::set_epoch(int64_t epoch) {
  if (epoch < 0) throw Error(fmt::format("DistributedSampler::set_epoch: expects an epoch >= 0, got {}", epoch));
  epoch_ = epoch;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  if (epoch < 0) throw Error(fmt::format("DistributedSampler::indices: expects an epoch >= 0, got {}", epoch));
  const int64_t n = dataset_size_;
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  if (options_.shuffle()) {
    std::mt19937_64 gen(mix_seed(options_.seed(), uint64_t(epoch)));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(uniform_int(gen, 0, i))]);
  }
  const int64_t total = total_size();
  std::vector<int64_t> mine;
  mine.reserve(size_t(num_samples_));
  // Position k of the padded order is order[k mod n] (PyTorch repeats the order from its start,
  // as many times as the padding needs).
  for (int64_t k = rank_; k < total; k += num_replicas_) mine.push_back(order[size_t(k % n)]);
  return mine;
}

}  // namespace tg::data
