#pragma once
/// tg::distributed: data-parallel training over MPI (built when CMake finds an MPI: TAPEGRAD_MPI).
/// One process per rank, started by mpirun; see docs/distributed.md.
///
///   tg::distributed::init(&argc, &argv);
///   auto ddp = std::make_shared<tg::distributed::DistributedDataParallel>(model);
///   tg::optim::SGD opt(ddp->parameters(), tg::optim::SGDOptions(0.1));
///   loss = tg::nn::functional::cross_entropy(ddp->forward(x), y);   // x: this rank's shard
///   opt.zero_grad(); loss.backward(); opt.step();  // backward returns with averaged gradients
///   tg::distributed::finalize();
///
/// This header does not include mpi.h.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "autograd/tensor.hpp"
#include "nn/module.hpp"

namespace tg::distributed {

/// Starts MPI (MPI_Init_thread, funneled) unless the program already did, sets MPI_ERRORS_RETURN
/// on the world communicator so that MPI failures become tg::Error, and installs a terminate
/// handler: an exception that escapes main on any rank prints "rank r of n: ..." and calls
/// MPI_Abort, so the whole job ends instead of the other ranks waiting forever.
void init(int* argc, char*** argv);
/// True between init() and finalize().
bool is_initialized();
/// MPI_Finalize (when init() started MPI). Every rank must call it; a no-op when not initialized.
void finalize();
/// This process's rank in [0, world_size()).
int rank();
/// The number of processes in the job.
int world_size();
/// Waits until every rank has reached the barrier.
void barrier();

enum class ReduceOp { Sum, Product, Min, Max };

/// Reduces t element-wise across all ranks, in place: afterwards every rank holds the sum (or
/// product, min, max) of every rank's t. float32, float64 or int64; every rank passes the same
/// shape and dtype. Not recorded on the tape (as copy_). Returns t.
const Tensor& all_reduce(const Tensor& t, ReduceOp op = ReduceOp::Sum);
/// Overwrites t, in place, with rank `root`'s t on every rank. Returns t.
const Tensor& broadcast(const Tensor& t, int root = 0);

class DistributedDataParallelOptions {
 public:
  /// Bucket size in MiB: gradients are all-reduced in buckets of about this many bytes (a
  /// parameter larger than a bucket gets one of its own).
  DistributedDataParallelOptions& bucket_cap_mb(double v) { bucket_cap_mb_ = v; return *this; }
  /// Broadcast rank 0's buffers (BatchNorm running statistics) before each forward in training.
  DistributedDataParallelOptions& broadcast_buffers(bool v) { broadcast_buffers_ = v; return *this; }
  double bucket_cap_mb() const { return bucket_cap_mb_; }
  bool broadcast_buffers() const { return broadcast_buffers_; }

 private:
  double bucket_cap_mb_ = 4.0;
  bool broadcast_buffers_ = true;
};

/// Wraps a model for data-parallel training, as torch.nn.parallel.DistributedDataParallel: at
/// construction every rank receives rank 0's parameters and buffers; forward(x) runs the model;
/// during backward the gradients are summed across ranks in buckets (reverse registration
/// order, MPI_Iallreduce started as soon as a bucket's gradients are all in, so communication
/// overlaps the rest of backward) and, when backward returns, every rank's .grad() holds the
/// average over ranks. The model is registered as the child "module", so parameters are named
/// "module.fc.weight" as in PyTorch; an optimizer takes ddp->parameters().
///
/// Every rank must run the same forward/backward sequence. A parameter that gets no gradient on
/// a rank contributes zeros (its .grad() becomes the average of the others').
class DistributedDataParallel : public nn::Module {
 public:
  explicit DistributedDataParallel(std::shared_ptr<nn::Module> module, DistributedDataParallelOptions options = {});
  ~DistributedDataParallel() override;

  Tensor forward(const Tensor& x) override;
  const std::shared_ptr<nn::Module>& module() const { return module_; }
  /// How many buckets the gradients are reduced in.
  size_t bucket_count() const;
  /// Of the last backward: how many buckets started their all-reduce from a gradient hook, while
  /// backward was still running (the others started when it ended).
  size_t buckets_started_in_backward() const;
  /// Of the last backward: the seconds its end spent starting the buckets still waiting and
  /// waiting for every all-reduce to complete: the communication that backward did not hide.
  double last_wait_seconds() const;
  /// Elements of each bucket, in the order they are reduced.
  std::vector<int64_t> bucket_numels() const;

 private:
  struct Reducer;
  std::shared_ptr<nn::Module> module_;
  DistributedDataParallelOptions options_;
  std::unique_ptr<Reducer> reducer_;
};

}  // namespace tg::distributed
