// tg::distributed over MPI: the collectives on tensors, the terminate handler that turns an
// uncaught exception on one rank into MPI_Abort for the job, and DistributedDataParallel's
// gradient reducer (buckets filled by leaf hooks, reduced with MPI_Iallreduce while backward
// runs, waited for by an end-of-backward callback).
#include "distributed.hpp"

#include <fmt/format.h>
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/node.hpp"
#include "autograd/tensor_impl.hpp"

namespace tg::distributed {
namespace {

bool ready = false;           // between init() and finalize()
bool started_mpi = false;     // init() called MPI_Init_thread (so finalize() calls MPI_Finalize)
std::terminate_handler previous_terminate = nullptr;

bool mpi_running() {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  return inited && !finalized;
}

// "rank 1 of 2", for messages; safe to call at any time.
std::string where() {
  if (!mpi_running()) return "a process outside MPI";
  int r = -1, n = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return fmt::format("rank {} of {}", r, n);
}

void require_init(const char* call) {
  if (!ready) throw Error(fmt::format("distributed::{}: expects tg::distributed::init(&argc, &argv) first", call));
}

void check(int rc, const char* call, const char* mpi_fn) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(fmt::format("distributed::{}: {} failed on {}: {}", call, mpi_fn, where(), std::string(msg, size_t(len))));
}

MPI_Datatype mpi_type(Dtype d) {
  switch (d) {
    case Dtype::Float32: return MPI_FLOAT;
    case Dtype::Float64: return MPI_DOUBLE;
    default: return MPI_INT64_T;
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Product: return MPI_PROD;
    case ReduceOp::Min: return MPI_MIN;
    case ReduceOp::Max: return MPI_MAX;
    default: return MPI_SUM;
  }
}

// MPI counts are ints.
int mpi_count(const Tensor& t, const char* call) {
  if (t.numel() > INT_MAX)
    throw Error(fmt::format("distributed::{}: expects at most {} elements, got {} (shape {})", call, INT_MAX, t.numel(),
                            shape_str(t.shape())));
  return int(t.numel());
}

void require_defined(const Tensor& t, const char* call) {
  if (!t.defined()) throw Error(fmt::format("distributed::{}: expects a defined tensor, got an undefined one", call));
}

[[noreturn]] void on_terminate() {
  std::string what = "std::terminate was called without an active exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = std::string("uncaught exception: ") + ex.what();
    } catch (...) {
      what = "uncaught exception of a type not derived from std::exception";
    }
  }
  std::fprintf(stderr, "tapegrad: %s: %s; aborting the whole job (MPI_Abort)\n", where().c_str(), what.c_str());
  std::fflush(stderr);
  if (mpi_running()) MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

}  // namespace

void init(int* argc, char*** argv) {
  if (ready) throw Error("distributed::init: already initialized (finalize() first)");
  int finalized = 0, inited = 0;
  MPI_Finalized(&finalized);
  if (finalized) throw Error("distributed::init: MPI was finalized in this process and cannot be started again");
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    // Funneled: only the thread that called init makes MPI calls (backward runs hooks on the
    // thread that called it; the library's worker threads never call MPI).
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) throw Error(fmt::format("distributed::init: MPI_Init_thread failed (error code {})", rc));
    started_mpi = true;
  }
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "init", "MPI_Comm_set_errhandler");
  previous_terminate = std::set_terminate(on_terminate);
  ready = true;
}

bool is_initialized() { return ready; }

void finalize() {
  if (!ready) return;
  ready = false;
  std::set_terminate(previous_terminate);
  if (started_mpi) {
    started_mpi = false;
    check(MPI_Finalize(), "finalize", "MPI_Finalize");
  }
}

int rank() {
  require_init("rank");
  int r = 0;
  check(MPI_Comm_rank(MPI_COMM_WORLD, &r), "rank", "MPI_Comm_rank");
  return r;
}

int world_size() {
  require_init("world_size");
  int n = 0;
  check(MPI_Comm_size(MPI_COMM_WORLD, &n), "world_size", "MPI_Comm_size");
  return n;
}

void barrier() {
  require_init("barrier");
  check(MPI_Barrier(MPI_COMM_WORLD), "barrier", "MPI_Barrier");
}

const Tensor& all_reduce(const Tensor& t, ReduceOp op) {
  require_init("all_reduce");
  require_defined(t, "all_reduce");
  check(MPI_Allreduce(MPI_IN_PLACE, t.impl()->data(), mpi_count(t, "all_reduce"), mpi_type(t.dtype()), mpi_op(op),
                      MPI_COMM_WORLD),
        "all_reduce", "MPI_Allreduce");
  return t;
}

const Tensor& broadcast(const Tensor& t, int root) {
  require_init("broadcast");
  require_defined(t, "broadcast");
  const int n = world_size();
  if (root < 0 || root >= n)
    throw Error(fmt::format("distributed::broadcast: expects a root rank in [0, {}), got {}", n, root));
  check(MPI_Bcast(t.impl()->data(), mpi_count(t, "broadcast"), mpi_type(t.dtype()), root, MPI_COMM_WORLD),
        "broadcast", "MPI_Bcast");
  return t;
}

// ---- DistributedDataParallel ----

// Each trainable parameter has a slot in one bucket: a flat tensor of one dtype holding the
// gradients of consecutive parameters in reverse registration order (the order backward
// produces them). A leaf hook copies the parameter's gradient-to-be (.grad() plus the incoming
// gradient, what the engine is about to store) into its slot; when a bucket's last slot is in,
// its MPI_Iallreduce starts, buckets strictly in index order so every rank issues the same
// collectives in the same order. The first hook of a pass queues finish() to run when backward
// returns: it starts the buckets still waiting (a parameter with no gradient this pass
// contributes its .grad(), or zeros), waits for all, and writes sum / world_size into .grad().
struct DistributedDataParallel::Reducer {
  struct Slot {
    Tensor param;
    size_t bucket = 0;
    int64_t offset = 0;
    bool ready = false;
  };
  struct Bucket {
    Dtype dtype = kFloat32;
    Tensor flat;
    std::vector<size_t> slots;
    size_t pending = 0;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::vector<size_t> hook_ids;
  size_t next_launch = 0;
  // Alive while this pass's finish() is queued: a pass that throws drops its callbacks, so an
  // expired token with buckets started means that pass died and left collectives in flight.
  std::weak_ptr<int> pass_token;
  int world = 1;
  size_t started_in_hooks = 0, last_started_in_hooks = 0;
  double last_wait_seconds = 0.0;

  Reducer(const std::vector<Tensor>& params, double cap_mb) : world(world_size()) {
    const double cap_bytes = cap_mb * 1024.0 * 1024.0;
    int64_t open_bucket[3] = {-1, -1, -1};  // per dtype: the bucket being filled
    std::vector<int64_t> sizes;               // elements per bucket
    for (auto it = params.rbegin(); it != params.rend(); ++it) {
      const Tensor& p = *it;
      if (!p.requires_grad()) continue;
      int64_t& b = open_bucket[size_t(p.dtype())];
      if (b >= 0 && double(sizes[size_t(b)] + p.numel()) * double(element_size(p.dtype())) > cap_bytes) b = -1;
      if (b < 0) {
        b = int64_t(buckets.size());
        buckets.emplace_back();
        buckets.back().dtype = p.dtype();
        sizes.push_back(0);
      }
      Slot s;
      s.param = p;
      s.bucket = size_t(b);
      s.offset = sizes[size_t(b)];
      sizes[size_t(b)] += p.numel();
      buckets[size_t(b)].slots.push_back(slots.size());
      slots.push_back(std::move(s));
    }
    for (size_t b = 0; b < buckets.size(); ++b) {
      if (sizes[b] > INT_MAX)
        throw Error(fmt::format("DistributedDataParallel: a bucket of {} elements exceeds MPI's int count; "
                                "lower bucket_cap_mb",
                                sizes[b]));
      buckets[b].flat = zeros({sizes[b]}, buckets[b].dtype);
    }
    reset();
  }

  void reset() {
    for (Slot& s : slots) s.ready = false;
    for (Bucket& b : buckets) {
      b.pending = b.slots.size();
      b.request = MPI_REQUEST_NULL;
    }
    next_launch = 0;
    started_in_hooks = 0;
  }

  // What the engine is about to store in p.grad(): its .grad() plus g (or g alone, or zeros).
  static void fill_slot(const Tensor& flat, int64_t offset, const Tensor& p, const Tensor& g) {
    const Tensor& acc = p.grad();
    dispatch(flat.dtype(), [&](auto z) {
      using T = decltype(z);
      T* dst = typed<T>(flat) + offset;
      const int64_t n = p.numel();
      const bool usable = acc.defined() && acc.dtype() == p.dtype() && acc.numel() == n;
      const T* a = usable ? typed<T>(acc) : nullptr;
      const T* gi = g.defined() ? typed<T>(g) : nullptr;
      for (int64_t i = 0; i < n; ++i) dst[i] = (a ? a[i] : T(0)) + (gi ? gi[i] : T(0));
    });
  }

  Tensor on_gradient(size_t i, const Tensor& g) {
    if (detail::in_targeted_backward()) return {};  // autograd::grad leaves .grad() alone
    if (pass_token.expired()) {  // the first hook of this pass
      abandon();
      auto token = std::make_shared<int>(0);
      pass_token = token;
      autograd::queue_callback([this, token] { finish(); });
    }
    Slot& s = slots[i];
    if (g.dtype() != s.param.dtype() || g.numel() != s.param.numel())
      throw Error(fmt::format("DistributedDataParallel: a gradient of shape {} ({}) for a parameter of shape {} ({})",
                              shape_str(g.shape()), dtype_name(g.dtype()), shape_str(s.param.shape()),
                              dtype_name(s.param.dtype())));
    Bucket& b = buckets[s.bucket];
    fill_slot(b.flat, s.offset, s.param, g);
    s.ready = true;
    --b.pending;
    const size_t before = next_launch;
    launch_ready();
    started_in_hooks += next_launch - before;
    progress();
    return {};
  }

  void launch(size_t k) {
    Bucket& b = buckets[k];
    check(MPI_Iallreduce(MPI_IN_PLACE, b.flat.impl()->data(), int(b.flat.numel()), mpi_type(b.dtype), MPI_SUM,
                         MPI_COMM_WORLD, &b.request),
          "DistributedDataParallel", "MPI_Iallreduce");
  }

  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) launch(next_launch++);
  }

  // Open MPI moves a non-blocking collective on inside MPI calls: testing the ones in flight
  // from each hook lets them advance while backward computes.
  void progress() {
    for (size_t k = 0; k < next_launch; ++k) {
      if (buckets[k].request == MPI_REQUEST_NULL) continue;
      int done = 0;
      check(MPI_Test(&buckets[k].request, &done, MPI_STATUS_IGNORE), "DistributedDataParallel", "MPI_Test");
    }
  }

  void wait_all() {
    for (size_t k = 0; k < next_launch; ++k)
      if (buckets[k].request != MPI_REQUEST_NULL)
        check(MPI_Wait(&buckets[k].request, MPI_STATUS_IGNORE), "DistributedDataParallel", "MPI_Wait");
  }

  void finish() {
    // Buckets with parameters that got no gradient this pass: those contribute what they hold.
    for (size_t k = next_launch; k < buckets.size(); ++k)
      for (size_t i : buckets[k].slots)
        if (!slots[i].ready) fill_slot(buckets[k].flat, slots[i].offset, slots[i].param, Tensor());
    for (size_t k = next_launch; k < buckets.size(); ++k) buckets[k].pending = 0;
    last_started_in_hooks = started_in_hooks;
    const auto wait_start = std::chrono::steady_clock::now();
    launch_ready();
    wait_all();
    last_wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count();
    for (Slot& s : slots) {
      Tensor& grad = s.param.mutable_grad();
      if (!grad.defined() || grad.numel() != s.param.numel()) grad = zeros_like(s.param);
      const Tensor& flat = buckets[s.bucket].flat;
      dispatch(flat.dtype(), [&](auto z) {
        using T = decltype(z);
        const T* src = typed<T>(flat) + s.offset;
        T* dst = typed<T>(grad);
        const T scale = T(1) / T(world);
        for (int64_t i = 0, n = s.param.numel(); i < n; ++i) dst[i] = src[i] * scale;
      });
    }
    reset();
  }

  // After a backward that threw between hooks: collectives already started are completed (the
  // other ranks started the same ones), so the next pass starts clean.
  void abandon() {
    if (!pass_token.expired()) return;  // a pass is under way (forward inside backward: leave it)
    wait_all();
    reset();
  }
};

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<nn::Module> module,
                                                 DistributedDataParallelOptions options)
    : nn::Module("DistributedDataParallel"), module_(std::move(module)), options_(std::move(options)) {
  require_init("DistributedDataParallel");
  if (!module_) throw Error("DistributedDataParallel: the module is null");
  if (!(options_.bucket_cap_mb() > 0))
    throw Error(fmt::format("DistributedDataParallel: expects bucket_cap_mb > 0, got {}", options_.bucket_cap_mb()));
  register_module("module", module_);
  for (const Tensor& p : module_->parameters()) broadcast(p.detach(), 0);
  for (const Tensor& b : module_->buffers()) broadcast(b, 0);
  const std::vector<Tensor> params = module_->parameters();
  reducer_ = std::make_unique<Reducer>(params, options_.bucket_cap_mb());
  Reducer* r = reducer_.get();
  for (size_t i = 0; i < r->slots.size(); ++i)
    r->hook_ids.push_back(r->slots[i].param.register_hook([r, i](const Tensor& g) { return r->on_gradient(i, g); }));
}

DistributedDataParallel::~DistributedDataParallel() {
  for (size_t i = 0; i < reducer_->hook_ids.size(); ++i) reducer_->slots[i].param.remove_hook(reducer_->hook_ids[i]);
  try {
    reducer_->abandon();
  } catch (...) {  // a destructor does not throw; the job is failing anyway
  }
}

Tensor DistributedDataParallel::forward(const Tensor& x) {
  reducer_->abandon();
  if (is_training() && options_.broadcast_buffers())
    for (const Tensor& b : module_->buffers()) broadcast(b, 0);
  return (*module_)(x);
}

size_t DistributedDataParallel::bucket_count() const { return reducer_->buckets.size(); }
size_t DistributedDataParallel::buckets_started_in_backward() const { return reducer_->last_started_in_hooks; }
double DistributedDataParallel::last_wait_seconds() const { return reducer_->last_wait_seconds; }
std::vector<int64_t> DistributedDataParallel::bucket_numels() const {
  std::vector<int64_t> out;
  for (const auto& b : reducer_->buckets) out.push_back(b.flat.numel());
  return out;
}

}  // namespace tg::distributed
