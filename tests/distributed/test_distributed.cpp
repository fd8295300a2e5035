// tg::distributed under mpirun (tests/CMakeLists.txt runs it with -np 2): one case per run,
// named on the command line. Every rank checks; the failure counts are summed so that every
// rank exits with the same status, and rank 0 prints the total.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <tapegrad.hpp>

namespace dist = tg::distributed;
namespace nn = tg::nn;
using tg::Tensor;

namespace {

int failures = 0;

#define EXPECT(cond)                                                                                        \
  do {                                                                                                      \
    if (!(cond)) {                                                                                          \
      ++failures;                                                                                           \
      std::fprintf(stderr, "rank %d: %s:%d: EXPECT(%s) failed\n", dist::rank(), __FILE__, __LINE__, #cond); \
    }                                                                                                       \
  } while (0)

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  return "<no tg::Error thrown>";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to(tg::kFloat64).to_vector<double>(), y = b.to(tg::kFloat64).to_vector<double>();
  if (x.size() != y.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

// ---------------------------------------------------------------------------------------------

void collectives() {
  const int r = dist::rank(), n = dist::world_size();
  EXPECT(n >= 2);
  for (tg::Dtype d : {tg::kFloat32, tg::kFloat64, tg::kInt64}) {
    Tensor t = tg::tensor({double(r + 1), double(10 * (r + 1)), -double(r)}, {3}, d);
    dist::all_reduce(t);
    EXPECT(t.dtype() == d);
    std::vector<double> got = t.to(tg::kFloat64).to_vector<double>();
    const double s = n * (n + 1) / 2.0;
    EXPECT(got == (std::vector<double>{s, 10 * s, -(n - 1) * n / 2.0}));

    Tensor m = tg::tensor({double(r), double(-r)}, {2}, d);
    dist::all_reduce(m, dist::ReduceOp::Max);
    EXPECT(m.to(tg::kFloat64).to_vector<double>() == (std::vector<double>{double(n - 1), 0.0}));
    dist::all_reduce(m, dist::ReduceOp::Min);  // every rank now holds {n-1, 0}
    EXPECT(m.to(tg::kFloat64).to_vector<double>() == (std::vector<double>{double(n - 1), 0.0}));
    Tensor p = tg::full({2, 2}, double(r + 2), d);
    dist::all_reduce(p, dist::ReduceOp::Product);
    double prod = 1;
    for (int k = 0; k < n; ++k) prod *= k + 2;
    EXPECT(p.to(tg::kFloat64).to_vector<double>() == std::vector<double>(4, prod));
    EXPECT(p.shape() == (tg::Shape{2, 2}));

    // broadcast from the last rank: everyone ends with its values, its shape untouched.
    Tensor b = tg::tensor({double(r), double(r * r)}, {1, 2}, d);
    dist::broadcast(b, n - 1);
    EXPECT(b.to(tg::kFloat64).to_vector<double>() == (std::vector<double>{double(n - 1), double((n - 1) * (n - 1))}));
  }
  // A view shares its base's storage: all_reduce on it writes through.
  Tensor base = tg::full({4}, 1.0, tg::kFloat64);
  dist::all_reduce(base.reshape({2, 2}));
  EXPECT(base.to_vector<double>() == std::vector<double>(4, double(n)));

  std::string msg = error_of([&] { dist::broadcast(tg::zeros({2}), n); });
  EXPECT(contains(msg, "distributed::broadcast") && contains(msg, std::to_string(n)));
  EXPECT(contains(error_of([] { dist::all_reduce(Tensor()); }), "distributed::all_reduce"));
  EXPECT(contains(error_of([] { dist::init(nullptr, nullptr); }), "already initialized"));

  // An error inside MPI comes back as tg::Error with the call and the rank (MPI_ERRORS_RETURN):
  // the other ranks expect fewer elements than the root sends, so their receive is truncated
  // (Open MPI reports MPI_ERR_TRUNCATE on the receivers; the root's send completes). Only with
  // 2 ranks: with more, the broadcast is a tree, and a rank whose receive failed does not pass
  // the message on, so the ranks below it would wait forever.
  if (n == 2) {
    Tensor mismatched = tg::zeros({r == 0 ? 4 : 2}, tg::kFloat64);
    msg = error_of([&] { dist::broadcast(mismatched, 0); });
    if (r == 0)
      EXPECT(msg == "<no tg::Error thrown>");
    else
      EXPECT(contains(msg, "distributed::broadcast: MPI_Bcast failed on rank 1 of 2"));
  }
  dist::barrier();
}

// ---------------------------------------------------------------------------------------------

// 20 steps of SGD with momentum: one process on batches of 64 against world_size ranks, each on
// its 64 / world_size rows of the same batches, through DistributedDataParallel. The DDP models
// start from different weights on each rank (rank 0's are the reference's): the broadcast at
// construction must make them equal.
struct Net {
  std::function<std::shared_ptr<nn::Module>()> make;
  tg::Shape input;  // one sample's shape
  int64_t classes;
};

std::shared_ptr<nn::Module> make_mlp() {
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(8, 16), std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(16, 16),
      std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(16, 4)});
}

std::shared_ptr<nn::Module> make_cnn() {
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(1, 4, 3), std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(4 * 6 * 6, 3)});
}

// Batch `step` of the shared stream: 64 samples, the same on every rank.
std::pair<Tensor, Tensor> batch(int step, const tg::Shape& sample, int64_t classes, tg::Dtype d) {
  std::mt19937_64 gen(uint64_t(1000 + step));
  std::normal_distribution<double> normal;
  tg::Shape shape = sample;
  shape.insert(shape.begin(), 64);
  std::vector<double> x(size_t(tg::shape_numel(shape))), y(64);
  for (double& v : x) v = normal(gen);
  for (int i = 0; i < 64; ++i) y[size_t(i)] = double(gen() % uint64_t(classes));
  return {tg::tensor(x, shape, d), tg::tensor(y, {64}, tg::kInt64)};
}

Tensor rows(const Tensor& t, int64_t begin, int64_t count) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < count; ++i) idx.push_back(begin + i);
  return tg::index_select(t, 0, tg::tensor(std::vector<double>(idx.begin(), idx.end()), {count}, tg::kInt64));
}

std::shared_ptr<nn::Module> seeded(const Net& net, uint64_t seed, tg::Dtype d) {
  tg::manual_seed(seed);
  auto m = net.make();
  m->to(d);
  return m;
}

void same_as_one_process(const Net& net, tg::Dtype d, double tol, double bucket_cap_mb, size_t want_buckets) {
  const int r = dist::rank(), n = dist::world_size();
  EXPECT(64 % n == 0);
  const int64_t per_rank = 64 / n;
  auto ref = seeded(net, 0, d);
  auto model = seeded(net, uint64_t(r), d);  // rank 0 alone starts where the reference does
  auto ddp = std::make_shared<dist::DistributedDataParallel>(
      model, dist::DistributedDataParallelOptions().bucket_cap_mb(bucket_cap_mb));
  EXPECT(ddp->bucket_count() == want_buckets);
  {  // the buckets hold every parameter element once
    int64_t in_buckets = 0, params = 0;
    for (int64_t k : ddp->bucket_numels()) in_buckets += k;
    for (const Tensor& p : model->parameters()) params += p.numel();
    EXPECT(ddp->bucket_numels().size() == want_buckets);
    EXPECT(in_buckets == params);
  }
  EXPECT(ddp->last_wait_seconds() == 0.0);  // no backward yet
  // named as in PyTorch: the wrapped model's names under "module."
  auto named = ddp->named_parameters(), inner = ref->named_parameters();
  EXPECT(named.size() == inner.size());
  for (size_t i = 0; i < named.size() && i < inner.size(); ++i) EXPECT(named[i].first == "module." + inner[i].first);
  for (size_t i = 0; i < named.size() && i < inner.size(); ++i)
    EXPECT(max_abs_diff(named[i].second, inner[i].second) == 0.0);  // rank 0's weights everywhere

  tg::optim::SGD ref_opt(ref->parameters(), tg::optim::SGDOptions(0.05).momentum(0.9));
  tg::optim::SGD opt(ddp->parameters(), tg::optim::SGDOptions(0.05).momentum(0.9));
  for (int step = 0; step < 20; ++step) {
    auto xy = batch(step, net.input, net.classes, d);
    ref_opt.zero_grad();
    tg::nn::functional::cross_entropy(ref->forward(xy.first), xy.second).backward();
    ref_opt.step();

    opt.zero_grad();
    Tensor x = rows(xy.first, r * per_rank, per_rank), y = rows(xy.second, r * per_rank, per_rank);
    tg::nn::functional::cross_entropy(ddp->forward(x), y).backward();
    // Every bucket fills during backward, so every all-reduce starts before backward ends.
    EXPECT(ddp->buckets_started_in_backward() == want_buckets);
    EXPECT(ddp->last_wait_seconds() >= 0.0 && ddp->last_wait_seconds() < 60.0);
    if (step == 0) {
      // When backward returns, every rank holds the gradient of the whole batch.
      auto ref_params = ref->parameters(), params = ddp->parameters();
      for (size_t i = 0; i < params.size(); ++i) EXPECT(max_abs_diff(params[i].grad(), ref_params[i].grad()) <= tol);
    }
    opt.step();
  }
  auto ref_params = ref->parameters(), params = ddp->parameters();
  double worst = 0;
  for (size_t i = 0; i < params.size(); ++i) worst = std::max(worst, max_abs_diff(params[i], ref_params[i]));
  if (r == 0)
    std::printf("%s, %zu bucket(s): largest |w_ddp - w_one_process| after 20 steps = %.3g (tolerance %.0e)\n",
                tg::dtype_name(d), ddp->bucket_count(), worst, tol);
  EXPECT(worst <= tol);
  // The weights moved (a frozen model would pass the comparison trivially).
  auto start = seeded(net, 0, d)->parameters();
  EXPECT(max_abs_diff(params[0], start[0]) > 1e-3);
}

void ddp() {
  Net mlp{make_mlp, {8}, 4}, cnn{make_cnn, {1, 8, 8}, 3};
  // A 1 KiB cap (128 doubles), in reverse registration order: the MLP's [b3 4, w3 64, b2 16],
  // [w2 256], [b1 16], [w1 128]; the CNN's [fc.b 3], [fc.w 432], [conv.b 4, conv.w 36].
  same_as_one_process(mlp, tg::kFloat64, 1e-12, 1.0 / 1024, 4);
  same_as_one_process(mlp, tg::kFloat64, 1e-12, 4.0, 1);
  same_as_one_process(cnn, tg::kFloat32, 1e-5, 4.0, 1);
  same_as_one_process(cnn, tg::kFloat64, 1e-12, 1.0 / 1024, 3);

  // autograd::grad does not touch .grad() and does not reduce.
  auto model = seeded(mlp, 0, tg::kFloat64);
  auto wrapped = std::make_shared<dist::DistributedDataParallel>(model);
  auto xy = batch(0, {8}, 4, tg::kFloat64);
  Tensor loss = tg::nn::functional::cross_entropy(wrapped->forward(xy.first), xy.second);
  auto g = tg::autograd::grad({loss}, {wrapped->parameters()[0]});
  EXPECT(g[0].defined());
  EXPECT(!wrapped->parameters()[0].grad().defined());

  // A parameter without a gradient on this rank gets the others' average: only rank 0 runs the
  // second layer's branch here, so everyone's gradient for it is rank 0's / world_size.
  auto two = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(2, 2), std::make_shared<nn::Linear>(2, 2)});
  two->to(tg::kFloat64);
  auto dtwo = std::make_shared<dist::DistributedDataParallel>(two);
  auto first = (*two)[0], second = (*two)[1];
  Tensor x = tg::full({1, 2}, 1.0, tg::kFloat64);
  Tensor h = first->forward(x);
  Tensor out = dist::rank() == 0 ? second->forward(h).sum() : h.sum();
  out.backward();
  // On rank 1 the one bucket waits for the second layer, so it starts only at the end.
  EXPECT(dtwo->buckets_started_in_backward() == (dist::rank() == 0 ? 1u : 0u));
  Tensor gw = second->parameters()[1].grad();  // the bias: d out / d b = 1 on rank 0
  EXPECT(gw.defined());
  if (gw.defined())
    EXPECT(max_abs_diff(gw, tg::full({2}, 1.0 / dist::world_size(), tg::kFloat64)) < 1e-15);

  // A backward that throws after some buckets started (on every rank alike): the next forward
  // completes those all-reduces and starts clean, and the next backward gives the right average.
  {
    auto ref = seeded(mlp, 0, tg::kFloat64), net = seeded(mlp, 0, tg::kFloat64);
    auto d = std::make_shared<dist::DistributedDataParallel>(net, dist::DistributedDataParallelOptions().bucket_cap_mb(1.0 / 1024));
    bool fail_once = true;
    auto seq = std::dynamic_pointer_cast<nn::Sequential>(net);
    // The first Tanh's output: its gradient comes after layers 3 and 2 filled buckets 0 and 1.
    (*seq)[1]->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) {
      out.register_hook([&](const Tensor&) -> Tensor {
        if (fail_once) {
          fail_once = false;
          throw tg::Error("deliberate failure inside backward");
        }
        return {};
      });
    });
    const int64_t per_rank = 64 / dist::world_size();
    auto xy = batch(3, {8}, 4, tg::kFloat64);
    Tensor x = rows(xy.first, dist::rank() * per_rank, per_rank), y = rows(xy.second, dist::rank() * per_rank, per_rank);
    std::string what = error_of([&] { tg::nn::functional::cross_entropy(d->forward(x), y).backward(); });
    EXPECT(contains(what, "deliberate failure"));
    EXPECT(d->buckets_started_in_backward() == 0);  // no backward has finished yet
    d->zero_grad();
    tg::nn::functional::cross_entropy(d->forward(x), y).backward();
    EXPECT(d->buckets_started_in_backward() == 4);
    tg::nn::functional::cross_entropy(ref->forward(xy.first), xy.second).backward();
    auto p = d->parameters(), q = ref->parameters();
    for (size_t i = 0; i < p.size(); ++i) EXPECT(max_abs_diff(p[i].grad(), q[i].grad()) <= 1e-12);
  }

  EXPECT(contains(error_of([] { dist::DistributedDataParallel(nullptr); }), "DistributedDataParallel"));
  EXPECT(contains(error_of([&] {
                    dist::DistributedDataParallel(make_mlp(), dist::DistributedDataParallelOptions().bucket_cap_mb(0));
                  }),
                  "bucket_cap_mb"));
}

// ---------------------------------------------------------------------------------------------

void sampler() {
  const int r = dist::rank(), n = dist::world_size();
  const int64_t size = 37;
  for (bool drop_last : {false, true}) {
    tg::data::DistributedSampler s(size, n, r, tg::data::DistributedSamplerOptions().seed(11).drop_last(drop_last));
    s.set_epoch(2);
    std::vector<int64_t> mine = s.indices();
    // Every rank counts its indices; the sum over ranks covers the data set once (+ padding).
    Tensor count = tg::zeros({size}, tg::kInt64);
    int64_t* c = count.data_ptr<int64_t>();
    for (int64_t i : mine) c[i] += 1;
    Tensor shard_size = tg::full({1}, double(mine.size()), tg::kInt64);
    dist::all_reduce(count);
    Tensor smallest = shard_size.clone(), largest = shard_size.clone();
    dist::all_reduce(smallest, dist::ReduceOp::Min);
    dist::all_reduce(largest, dist::ReduceOp::Max);
    EXPECT(smallest.item<int64_t>() == largest.item<int64_t>());  // equal shards
    std::vector<int64_t> counts = count.to_vector<int64_t>();
    int64_t total = 0, zeros = 0, twice = 0;
    for (int64_t k : counts) {
      total += k;
      zeros += k == 0;
      twice += k > 1;
    }
    EXPECT(total == s.total_size());
    if (!drop_last) {
      EXPECT(zeros == 0);                          // every sample visited
      EXPECT(twice == s.total_size() - size);      // only the padding repeats
    } else {
      EXPECT(twice == 0);                          // disjoint
      EXPECT(zeros == size - s.total_size());
    }
  }
}

// A rank that throws: the terminate handler must end the whole job (tests/distributed/abort_test.sh).
void abort_case() {
  if (dist::rank() == 1) throw tg::Error("deliberate failure on rank 1");
  dist::barrier();  // rank 0 would wait here forever without MPI_Abort
}

}  // namespace

int main(int argc, char** argv) {
  // Before init: a clear error, not a crash inside MPI.
  bool before_init = contains(error_of([] { dist::rank(); }), "init");
  dist::init(&argc, &argv);
  EXPECT(before_init);
  EXPECT(dist::is_initialized());
  const std::string which = argc > 1 ? argv[1] : "";
  std::map<std::string, std::function<void()>> cases{
      {"collectives", collectives}, {"ddp", ddp}, {"sampler", sampler}, {"abort", abort_case}};
  auto it = cases.find(which);
  if (it == cases.end()) {
    if (dist::rank() == 0) std::fprintf(stderr, "usage: %s collectives|ddp|sampler|abort\n", argv[0]);
    dist::finalize();
    return 2;
  }
  try {
    it->second();
  } catch (const tg::Error& e) {
    if (which == "abort") throw;  // that case is about the uncaught exception
    ++failures;
    std::fprintf(stderr, "rank %d: tg::Error: %s\n", dist::rank(), e.what());
  }
  Tensor total = tg::full({1}, double(failures), tg::kInt64);
  dist::all_reduce(total);
  const int64_t all = total.item<int64_t>();
  if (dist::rank() == 0) std::printf("%s: %lld failure(s) over %d ranks\n", which.c_str(), (long long)all, dist::world_size());
  dist::finalize();
  return all == 0 ? 0 : 1;
}
