// tapegrad-train: trains a model on Fashion-MNIST (or MNIST) with a progress bar, test metrics
// after every epoch, metrics.csv, an SVG of the curves, a confusion matrix and an atomic
// checkpoint per epoch; --resume continues to the same weights as an uninterrupted run, and
// --config <out>/config.toml repeats a run.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "models.hpp"
#include "trainer.hpp"

namespace fs = std::filesystem;
namespace F = tg::nn::functional;
using tg::Tensor;
using trainer::Args;
using trainer::EpochMetrics;

namespace {

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "tapegrad-train: %s\n(run tapegrad-train --help for the options)\n", msg.c_str());
  std::exit(2);
}

// ---- progress ----
class Progress {
 public:
  Progress(int64_t total, int64_t epoch, int64_t epochs, bool quiet)
      : total_(total), epoch_(epoch), epochs_(epochs), tty_(!quiet && isatty(fileno(stdout))), quiet_(quiet) {}
  void update(int64_t done, double loss, double acc, int64_t samples, double seconds) {
    const double rate = seconds > 0 ? double(samples) / seconds : 0;
    const double eta = rate > 0 ? double(total_ - done) * (double(samples) / double(std::max<int64_t>(done, 1))) / rate : 0;
    std::string stats = fmt::format("loss {:.4f} acc {:.4f} | {:.0f} samples/s | ETA {:.0f}s", loss, acc, rate, eta);
    if (tty_) {
      const int width = 30;
      int filled = int(double(width) * double(done) / double(total_));
      std::printf("\repoch %lld/%lld [%s%s] %lld/%lld %s\033[K", (long long)epoch_, (long long)epochs_,
                  std::string(size_t(filled), '#').c_str(), std::string(size_t(width - filled), '.').c_str(),
                  (long long)done, (long long)total_, stats.c_str());
      std::fflush(stdout);
    } else if (!quiet_ && (done == total_ || done % std::max<int64_t>(1, total_ / 10) == 0)) {
      std::printf("epoch %lld/%lld batch %lld/%lld %s\n", (long long)epoch_, (long long)epochs_, (long long)done,
                  (long long)total_, stats.c_str());
      std::fflush(stdout);
    }
  }
  void finish() {
    if (tty_) std::printf("\n");
  }

 private:
  int64_t total_, epoch_, epochs_;
  bool tty_, quiet_;
};

struct Evaluation {
  double loss = 0, acc = 0, top5 = 0;
  Tensor confusion;
};

Evaluation evaluate(tg::nn::Module& model, tg::data::DataLoader& loader) {
  tg::NoGradGuard no_grad;
  model.eval();
  Evaluation e;
  e.confusion = tg::zeros({10, 10}, tg::kInt64);
  double loss = 0, correct = 0, correct5 = 0;
  int64_t n = 0;
  for (auto& batch : loader) {
    Tensor x = batch.data;
    Tensor logits = model(x);
    const int64_t b = x.size(0);
    loss += F::cross_entropy(logits, batch.target, F::CrossEntropyOptions().reduction(tg::kSum)).item<double>();
    correct += tg::metrics::accuracy(logits, batch.target, 1) * double(b);
    correct5 += tg::metrics::accuracy(logits, batch.target, 5) * double(b);
    e.confusion.add_(tg::metrics::confusion_matrix(logits, batch.target, 10));
    n += b;
  }
  e.loss = loss / double(n);
  e.acc = correct / double(n);
  e.top5 = correct5 / double(n);
  return e;
}

// ---- outputs ----
void write_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << content;
    f.close();
    if (!f) throw tg::Error(fmt::format("tapegrad-train: cannot write {}", tmp));
  }
  fs::rename(tmp, path);
}

void write_metrics_csv(const std::string& dir, const std::vector<EpochMetrics>& hist) {
  std::string s = "epoch,train_loss,train_acc,test_loss,test_acc,test_top5,seconds,samples_per_s\n";
  for (const auto& m : hist)
    s += fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f},{:.1f}\n", m.epoch, m.train_loss, m.train_acc,
                     m.test_loss, m.test_acc, m.test_top5, m.seconds, m.samples_per_s);
  write_atomically(dir + "/metrics.csv", s);
}

// Two panels, loss and accuracy per epoch, train and test.
void write_curves_svg(const std::string& dir, const std::vector<EpochMetrics>& hist) {
  const double W = 420, H = 300, L = 55, R = 15, T = 30, B = 40;
  auto panel = [&](double x0, const char* title, auto get_train, auto get_test, bool accuracy) {
    double lo = 1e9, hi = -1e9;
    for (const auto& m : hist) {
      lo = std::min({lo, get_train(m), get_test(m)});
      hi = std::max({hi, get_train(m), get_test(m)});
    }
    if (hi - lo < 1e-9) hi = lo + 1;
    const double pad = (hi - lo) * 0.08;
    lo -= pad;
    hi += pad;
    const size_t n = hist.size();
    auto px = [&](size_t i) { return x0 + L + (n > 1 ? double(i) / double(n - 1) : 0.5) * (W - L - R); };
    auto py = [&](double v) { return T + (hi - v) / (hi - lo) * (H - T - B); };
    std::string s = fmt::format("<text x='{}' y='18' font-size='14' font-family='sans-serif'>{}</text>\n", x0 + L, title);
    s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='none' stroke='#888'/>\n", x0 + L, T, W - L - R,
                     H - T - B);
    for (int k = 0; k <= 4; ++k) {
      double v = lo + (hi - lo) * k / 4;
      s += fmt::format("<text x='{}' y='{}' font-size='10' text-anchor='end' font-family='sans-serif'>{}</text>\n",
                       x0 + L - 4, py(v) + 3, accuracy ? fmt::format("{:.3f}", v) : fmt::format("{:.3f}", v));
    }
    for (size_t i = 0; i < n; ++i)
      s += fmt::format("<text x='{}' y='{}' font-size='10' text-anchor='middle' font-family='sans-serif'>{}</text>\n",
                       px(i), H - B + 14, hist[i].epoch);
    s += fmt::format("<text x='{}' y='{}' font-size='11' text-anchor='middle' font-family='sans-serif'>epoch</text>\n",
                     x0 + (L + W - R) / 2, H - 8);
    for (int which = 0; which < 2; ++which) {
      std::string pts;
      for (size_t i = 0; i < n; ++i)
        pts += fmt::format("{:.1f},{:.1f} ", px(i), py(which == 0 ? get_train(hist[i]) : get_test(hist[i])));
      const char* color = which == 0 ? "#1f77b4" : "#d62728";
      s += fmt::format("<polyline points='{}' fill='none' stroke='{}' stroke-width='2'/>\n", pts, color);
      for (size_t i = 0; i < n; ++i)
        s += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='3' fill='{}'/>\n", px(i),
                         py(which == 0 ? get_train(hist[i]) : get_test(hist[i])), color);
      s += fmt::format("<text x='{}' y='{}' font-size='11' fill='{}' font-family='sans-serif'>{}</text>\n",
                       x0 + W - R - 60, T + 14 + 14 * which, color, which == 0 ? "train" : "test");
    }
    return s;
  };
  std::string svg = fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}'>\n"
                                "<rect width='100%' height='100%' fill='white'/>\n",
                                2 * W, H);
  svg += panel(0, "cross-entropy loss", [](const EpochMetrics& m) { return m.train_loss; },
               [](const EpochMetrics& m) { return m.test_loss; }, false);
  svg += panel(W, "accuracy", [](const EpochMetrics& m) { return m.train_acc; },
               [](const EpochMetrics& m) { return m.test_acc; }, true);
  svg += "</svg>\n";
  write_atomically(dir + "/curves.svg", svg);
}

const char* kClasses[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

void write_confusion(const std::string& dir, const Tensor& cm) {
  auto v = cm.to_vector<int64_t>();
  std::string s = "true\\predicted";
  for (int j = 0; j < 10; ++j) s += fmt::format(",{}", j);
  s += "\n";
  for (int i = 0; i < 10; ++i) {
    s += fmt::format("{}", i);
    for (int j = 0; j < 10; ++j) s += fmt::format(",{}", v[size_t(i * 10 + j)]);
    s += "\n";
  }
  write_atomically(dir + "/confusion_matrix.csv", s);
}

void print_confusion(const Tensor& cm) {
  auto v = cm.to_vector<int64_t>();
  std::printf("confusion matrix (rows: true class, columns: predicted)\n%14s", "");
  for (int j = 0; j < 10; ++j) std::printf("%6d", j);
  std::printf("\n");
  for (int i = 0; i < 10; ++i) {
    std::printf("%2d %-11s", i, kClasses[i]);
    for (int j = 0; j < 10; ++j) std::printf("%6lld", (long long)v[size_t(i * 10 + j)]);
    std::printf("\n");
  }
}

// 1234567 -> "1,234,567".
std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// This process's rank and the number of ranks: 0 and 1 unless --distributed.
struct World {
  int rank = 0, size = 1;
  bool main() const { return rank == 0; }
};

// Sums v across ranks (the epoch's training totals).
void sum_across_ranks(std::vector<double>& v, const Args& a) {
#ifdef TAPEGRAD_HAS_MPI
  if (!a.distributed) return;
  Tensor t = tg::tensor(v, {int64_t(v.size())}, tg::kFloat64);
  tg::distributed::all_reduce(t);
  v = t.to_vector<double>();
#else
  (void)v, (void)a;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  try {
    a = trainer::parse_args(argc, argv);
  } catch (const trainer::UsageError& e) {
    usage_error(e.what());
  }
  if (a.help) {
    std::fputs(trainer::kUsage, stdout);
    return 0;
  }
  if (a.mode == "list") {
    for (const auto& name : models::names())
      std::printf("%-16s %11s parameters\n", name.c_str(),
                  with_commas(models::parameter_count(*models::make_model(name))).c_str());
    return 0;
  }
  World world;
#ifdef TAPEGRAD_HAS_MPI
  if (a.distributed) {
    tg::distributed::init(&argc, &argv);
    world = {tg::distributed::rank(), tg::distributed::world_size()};
  }
#endif
  try {
    if (a.threads > 0) tg::set_num_threads(a.threads);
    tg::manual_seed(a.seed);
    auto model = models::make_model(a.model);
    // Fashion-MNIST's pixel mean and standard deviation; applied per sample in the loader's thread.
    const tg::data::Transform normalize = tg::data::Normalize(0.2860, 0.3530);
    auto test_set = std::make_shared<tg::data::MNIST>(a.data, tg::data::Split::Test);
    tg::data::DataLoader test_loader(test_set, tg::data::DataLoaderOptions().batch_size(128).transform(normalize));

    if (a.mode == "evaluate") {
      auto all = tg::load_tensors(a.weights);
      auto sd = trainer::with_prefix(all, "model.");
      model->load_state_dict(sd.empty() ? all : sd);
      Evaluation e = evaluate(*model, test_loader);
      std::printf("%s on %s: test loss %.4f, test accuracy %.4f, top-5 %.4f\n", a.model.c_str(), a.data.c_str(),
                  e.loss, e.acc, e.top5);
      print_confusion(e.confusion);
      return 0;
    }

    auto train_set = std::make_shared<tg::data::MNIST>(a.data, tg::data::Split::Train);
    std::shared_ptr<const tg::data::Dataset> train_data = train_set;
    if (a.limit > 0 && a.limit < train_set->size())
      train_data = std::make_shared<tg::data::Subset>(train_set, tg::data::Subset::range(a.limit));
    tg::data::Transform augment = normalize;
    if (a.augment) augment = tg::data::Compose({tg::data::RandomCrop(28, 2), tg::data::RandomHorizontalFlip(), normalize});
    // Distributed, each rank reads its shard of each epoch's order (the same permutation on every
    // rank; with one rank it is the whole order, so -np 1 --batch-size 2B follows -np 2 --batch-size B).
    auto loader_options = tg::data::DataLoaderOptions().batch_size(a.batch_size).seed(a.seed).transform(augment);
    if (a.distributed)
      loader_options.sampler(std::make_shared<tg::data::DistributedSampler>(
          train_data->size(), world.size, world.rank, tg::data::DistributedSamplerOptions().seed(a.seed)));
    else
      loader_options.shuffle(true);
    tg::data::DataLoader train_loader(train_data, loader_options);

    auto opt = trainer::make_optimizer(a, model->parameters());
    auto sched = trainer::make_scheduler(a, *opt);
    std::vector<EpochMetrics> hist;
    int64_t start_epoch = 1;
    if (world.main()) {
      fs::create_directories(a.out);
      // The flags of this run (command line and --config) for --config to repeat it.
      write_atomically(a.out + "/config.toml", trainer::config_toml(a));
    }
    const std::string ckpt = a.out + "/checkpoint.safetensors";

    if (!a.resume.empty()) {
      trainer::Resumed r = trainer::load_checkpoint(a.resume, a, *model, *opt, sched.get(), world.main());
      start_epoch = r.epochs_done + 1;
      hist = std::move(r.history);
      if (world.main()) std::printf("resumed from %s after epoch %lld\n", a.resume.c_str(), (long long)(start_epoch - 1));
    }

    // The network that trains: the model, or the model inside DistributedDataParallel (which
    // starts every rank from rank 0's weights and averages the gradients during backward).
    std::shared_ptr<tg::nn::Module> net = model;
#ifdef TAPEGRAD_HAS_MPI
    if (a.distributed) net = std::make_shared<tg::distributed::DistributedDataParallel>(model);
#endif
    if (world.main())
      std::printf("tapegrad-train: %s, %lld parameters, %lld training samples, %s lr %g, %s schedule; %s%s\n",
                  a.model.c_str(), (long long)[&] { int64_t n = 0; for (auto& p : model->parameters()) n += p.numel(); return n; }(),
                  (long long)train_data->size(), a.optimizer.c_str(), a.lr, a.scheduler.c_str(),
                  tg::config_string().c_str(),
                  a.distributed ? fmt::format("; {} ranks x batch {}", world.size, a.batch_size).c_str() : "");
    for (int64_t epoch = start_epoch; epoch <= a.epochs; ++epoch) {
      net->train();
      train_loader.set_epoch(epoch - 1);
      Progress bar(train_loader.size(), epoch, a.epochs, a.quiet || !world.main());
      double loss_sum = 0, correct = 0;
      int64_t seen = 0, done = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (auto& batch : train_loader) {
        Tensor x = batch.data;
        Tensor logits = (*net)(x);
        Tensor loss = F::cross_entropy(logits, batch.target);
        if (!a.dot.empty() && done == 0 && epoch == start_epoch && world.main()) {
          write_atomically(a.dot, tg::autograd::to_dot(loss, model->named_parameters()));
          std::printf("wrote the graph of the first training step to %s\n", a.dot.c_str());
        }
        opt->zero_grad(true);
        loss.backward();
        opt->step();
        const int64_t b = x.size(0);
        loss_sum += loss.item<double>() * double(b);
        correct += tg::metrics::accuracy(logits.detach(), batch.target) * double(b);
        seen += b;
        ++done;
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        bar.update(done, loss_sum / double(seen), correct / double(seen), seen, secs);
      }
      bar.finish();
      std::vector<double> totals{loss_sum, correct, double(seen)};
      sum_across_ranks(totals, a);  // every rank's share of the epoch
      loss_sum = totals[0], correct = totals[1], seen = int64_t(totals[2]);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (sched) sched->step();
      // Every rank holds the same weights, so each evaluates the whole test set; rank 0 reports.
      Evaluation e = evaluate(*model, test_loader);
      hist.push_back({epoch, loss_sum / double(seen), correct / double(seen), e.loss, e.acc, e.top5, secs,
                      double(seen) / secs});
      if (!world.main()) continue;
      std::printf("epoch %lld/%lld: train loss %.4f acc %.4f | test loss %.4f acc %.4f top-5 %.4f | %.1f s, %.0f "
                  "samples/s\n",
                  (long long)epoch, (long long)a.epochs, hist.back().train_loss, hist.back().train_acc, e.loss, e.acc,
                  e.top5, secs, hist.back().samples_per_s);
      std::fflush(stdout);
      write_metrics_csv(a.out, hist);
      write_curves_svg(a.out, hist);
      write_confusion(a.out, e.confusion);
      trainer::save_checkpoint(ckpt, a, *model, *opt, sched.get(), epoch, hist);
      if (epoch == a.epochs) {
        print_confusion(e.confusion);
        std::printf("test accuracy %.4f after %lld epochs (%s); outputs in %s/\n", e.acc, (long long)epoch,
                    a.model.c_str(), a.out.c_str());
      }
    }
    if (world.main()) tg::save(*model, a.out + "/model.safetensors");
#ifdef TAPEGRAD_HAS_MPI
    if (a.distributed) tg::distributed::finalize();
#endif
  } catch (const trainer::UsageError& e) {
#ifdef TAPEGRAD_HAS_MPI
    if (a.distributed) throw;  // the terminate handler names the rank and ends every rank (MPI_Abort)
#endif
    usage_error(e.what());
  } catch (const tg::Error& e) {
#ifdef TAPEGRAD_HAS_MPI
    if (a.distributed) throw;
#endif
    std::fprintf(stderr, "tapegrad-train: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
#ifdef TAPEGRAD_HAS_MPI
    if (a.distributed) throw;
#endif
    std::fprintf(stderr, "tapegrad-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
