#include "dataset.hpp"

#include <cstring>

#include <fmt/format.h>

namespace tg::data {

Example Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Example> samples;
  samples.reserve(indices.size());
  for (int64_t i : indices) samples.push_back(get(i));
  return collate(samples);
}

namespace {

// Copies the `field` of every sample into one [B, ...] tensor, checking shapes and dtypes.
Tensor stack_field(const std::vector<Example>& samples, Tensor Example::*field, const char* name) {
  const Tensor& first = samples.front().*field;
  if (!first.defined()) throw Error(fmt::format("collate: sample 0 has an undefined {}", name));
  Shape shape = first.shape();
  Dtype dtype = first.dtype();
  size_t bytes = size_t(first.numel()) * element_size(dtype);
  Shape out_shape{int64_t(samples.size())};
  out_shape.insert(out_shape.end(), shape.begin(), shape.end());
  Tensor out = empty(out_shape, dtype);
  auto* dst = static_cast<char*>(out.impl()->data());
  for (size_t i = 0; i < samples.size(); ++i) {
    const Tensor& t = samples[i].*field;
    if (!t.defined()) throw Error(fmt::format("collate: sample {} has an undefined {}", i, name));
    if (t.shape() != shape || t.dtype() != dtype)
      throw Error(fmt::format("collate: sample {} has {} {} {}, sample 0 has {} {}: every sample in a batch "
                              "must match",
                              i, name, dtype_name(t.dtype()), shape_str(t.shape()), dtype_name(dtype),
                              shape_str(shape)));
    std::memcpy(dst + i * bytes, t.impl()->data(), bytes);
  }
  return out;
}

}  // namespace

Subset::Subset(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices)
    : dataset_(std::move(dataset)), indices_(std::move(indices)) {
  if (!dataset_) throw Error("Subset: the dataset is null");
  const int64_t n = dataset_->size();
  for (size_t i = 0; i < indices_.size(); ++i)
    if (indices_[i] < 0 || indices_[i] >= n)
      throw Error(fmt::format("Subset: index {} (position {}) is out of range for a dataset of {} samples", indices_[i],
                              i, n));
}

int64_t Subset::check(int64_t index) const {
  if (index < 0 || index >= size())
    throw Error(fmt::format("Subset: sample {} is out of range for a subset of {} samples", index, size()));
  return indices_[size_t(index)];
}

Example Subset::get(int64_t index) const { return dataset_->get(check(index)); }

Example Subset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> mapped;
  mapped.reserve(indices.size());
  for (int64_t i : indices) mapped.push_back(check(i));
  return dataset_->get_batch(mapped);
}

std::vector<int64_t> Subset::range(int64_t n) {
  if (n < 0) throw Error(fmt::format("Subset::range: expected n >= 0, got {}", n));
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = i;
  return out;
}

Example collate(const std::vector<Example>& samples) {
  if (samples.empty()) throw Error("collate: expected at least one sample, got none");
  return {stack_field(samples, &Example::data, "data"), stack_field(samples, &Example::target, "target")};
}

}  // namespace tg::data
