// The loader's epoch: a sample order fixed when it starts, and workers that claim batch numbers
// in order, build each batch independently (its contents depend only on its number), and hand it
// over in a map keyed by that number. The consumer takes batch k when it is there, so the stream
// is the same whatever the threads' timing; a worker may claim batch k only while
// k < next_consume + prefetch, which bounds the batches held in memory.
#include "dataloader.hpp"

#include <condition_variable>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "random.hpp"

namespace tg::data {
namespace {
// Streams derived from (seed, epoch): one for the order, one for the transforms.
constexpr uint64_t kOrderStream = 0, kTransformStream = 1, kBatchTransformStream = 2;
}  // namespace

struct DataLoader::Epoch {
  // Fixed when the epoch starts; the workers only read these.
  std::shared_ptr<const Dataset> dataset;
  std::vector<int64_t> order;
  int64_t batch_size = 1, num_batches = 0;
  int64_t capacity = 1;
  uint64_t transform_seed = 0, batch_transform_seed = 0;
  Transform transform;
  BatchTransform batch_transform;

  struct Slot {
    Example batch;
    std::exception_ptr error;
  };
  std::mutex mu;
  std::condition_variable produced, space;
  int64_t next_claim = 0, next_consume = 0;  // guarded by mu
  bool stop = false;                         // guarded by mu
  std::map<int64_t, Slot> ready;             // guarded by mu
  std::vector<std::thread> workers;

  Example make_batch(int64_t k) const {
    int64_t begin = k * batch_size, end = std::min<int64_t>(begin + batch_size, int64_t(order.size()));
    std::vector<int64_t> indices(order.begin() + begin, order.begin() + end);
    Example batch = transform ? collate(transformed(indices)) : dataset->get_batch(indices);
    if (!batch_transform) return batch;
    // Seeded by the batch's position in the epoch: the same (seed, epoch, k) gives the same
    // result whichever worker makes it.
    std::mt19937_64 gen(mix_seed(batch_transform_seed, uint64_t(k)));
    return batch_transform(std::move(batch), gen);
  }

  std::vector<Example> transformed(const std::vector<int64_t>& indices) const {
    std::vector<Example> samples;
    samples.reserve(indices.size());
    for (int64_t i : indices) {
      Example ex = dataset->get(i);
      // Seeded by the sample, not by the thread or the position: the same (seed, epoch, index)
      // gives the same augmentation however the work is spread.
      std::mt19937_64 gen(mix_seed(transform_seed, uint64_t(i)));
      ex.data = transform(ex.data, gen);
      samples.push_back(std::move(ex));
    }
    return samples;
  }

  void work() {
    for (;;) {
      int64_t k;
      {
        std::unique_lock<std::mutex> lock(mu);
        space.wait(lock, [&] { return stop || next_claim >= num_batches || next_claim < next_consume + capacity; });
        if (stop || next_claim >= num_batches) return;
        k = next_claim++;
      }
      Slot slot;
      try {
        slot.batch = make_batch(k);
      } catch (...) {
        slot.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        ready.emplace(k, std::move(slot));
      }
      produced.notify_one();
    }
  }

  ~Epoch() {
    if (!workers.empty()) shutdown();
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    space.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  if (!dataset_) throw Error("DataLoader: the dataset is null");
  if (options_.batch_size() < 1)
    throw Error(fmt::format("DataLoader: expects batch_size >= 1, got {}", options_.batch_size()));
  if (options_.num_workers() < 0)
    throw Error(fmt::format("DataLoader: expects num_workers >= 0, got {}", options_.num_workers()));
  if (options_.prefetch() < 1)
    throw Error(fmt::format("DataLoader: expects prefetch >= 1, got {}", options_.prefetch()));
  if (dataset_->size() < 0) throw Error(fmt::format("DataLoader: the dataset has size {}", dataset_->size()));
  if (options_.sampler() && options_.shuffle())
    throw Error("DataLoader: sampler and shuffle(true) are exclusive (the sampler decides the order)");
  seed_ = options_.seed() ? *options_.seed()
                          : uint64_t(randint(0, std::numeric_limits<int64_t>::max(), {}).item<int64_t>());
}

DataLoader::~DataLoader() { stop_epoch(); }
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&& other) noexcept {
  if (this != &other) {
    stop_epoch();
    dataset_ = std::move(other.dataset_);
    options_ = std::move(other.options_);
    seed_ = other.seed_;
    next_epoch_ = other.next_epoch_;
    current_ = std::move(other.current_);
  }
  return *this;
}

int64_t DataLoader::size() const {
  int64_t n = options_.sampler() ? options_.sampler()->size() : dataset_->size(), b = options_.batch_size();
  return options_.drop_last() ? n / b : (n + b - 1) / b;
}

void DataLoader::set_epoch(int64_t e) {
  if (e < 0) throw Error(fmt::format("DataLoader::set_epoch: expects an epoch >= 0, got {}", e));
  next_epoch_ = e;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  const int64_t n = dataset_->size();
  if (const auto& sampler = options_.sampler()) {
    std::vector<int64_t> idx = sampler->indices(epoch);
    if (int64_t(idx.size()) != sampler->size())
      throw Error(fmt::format("DataLoader: the sampler's size() is {} but indices({}) gave {}", sampler->size(), epoch,
                              idx.size()));
    for (int64_t i : idx)
      if (i < 0 || i >= n)
        throw Error(fmt::format("DataLoader: the sampler gave index {} for a dataset of size {}", i, n));
    return idx;
  }
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = i;
  if (!options_.shuffle()) return perm;
  // Fisher-Yates with our own bounded draws: std::shuffle's output differs between libraries.
  std::mt19937_64 gen(mix_seed(mix_seed(seed_, uint64_t(epoch)), kOrderStream));
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[size_t(uniform_int(gen, 0, i))]);
  return perm;
}

void DataLoader::start_epoch() {
  stop_epoch();
  int64_t epoch = next_epoch_++;
  auto e = std::make_unique<Epoch>();
  e->dataset = dataset_;
  e->order = order(epoch);
  e->batch_size = options_.batch_size();
  e->num_batches = size();
  e->capacity = options_.prefetch();
  e->transform_seed = mix_seed(mix_seed(seed_, uint64_t(epoch)), kTransformStream);
  e->transform = options_.transform();
  e->batch_transform_seed = mix_seed(mix_seed(seed_, uint64_t(epoch)), kBatchTransformStream);
  e->batch_transform = options_.batch_transform();
  int workers = int(std::min<int64_t>(options_.num_workers(), e->num_batches));
  try {
    for (int i = 0; i < workers; ++i) e->workers.emplace_back(&Epoch::work, e.get());
  } catch (...) {
    e->shutdown();
    throw;
  }
  current_ = std::move(e);
}

void DataLoader::stop_epoch() {
  if (!current_) return;
  current_->shutdown();
  current_.reset();
}

void DataLoader::reset() { stop_epoch(); }

std::optional<Example> DataLoader::next() {
  if (!current_) start_epoch();
  Epoch& e = *current_;
  if (e.next_consume >= e.num_batches) {
    stop_epoch();
    return std::nullopt;
  }
  Epoch::Slot slot;
  if (e.workers.empty()) {  // num_workers(0): build the batch here
    try {
      slot.batch = e.make_batch(e.next_consume++);
    } catch (...) {
      slot.error = std::current_exception();
    }
  } else {
    std::unique_lock<std::mutex> lock(e.mu);
    e.produced.wait(lock, [&] { return e.ready.count(e.next_consume) > 0; });
    auto it = e.ready.find(e.next_consume);
    slot = std::move(it->second);
    e.ready.erase(it);
    ++e.next_consume;
    lock.unlock();
    e.space.notify_all();
  }
  if (slot.error) {
    stop_epoch();
    std::rethrow_exception(slot.error);
  }
  return std::move(slot.batch);
}

DataLoader::Iterator DataLoader::begin() {
  start_epoch();
  Iterator it;
  it.loader_ = this;
  it.batch_ = next();
  return it;
}

}  // namespace tg::data
