// tapegrad-train: trains a model on Fashion-MNIST (or MNIST) with a progress bar, test metrics
// after every epoch, metrics.csv, an SVG of the curves, a confusion matrix and an atomic
// checkpoint per epoch; --resume continues to the same weights as an uninterrupted run.
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

namespace fs = std::filesystem;
namespace F = tg::nn::functional;
using tg::Tensor;

namespace {

struct Args {
  std::string mode = "train";
  std::string model = "cnn-bn";
  int64_t epochs = 10;
  int64_t batch_size = 64;
  std::string optimizer = "sgd";
  double lr = 0.02;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  std::string scheduler = "cosine";
  bool augment = false;
  bool nesterov = true;
  uint64_t seed = 1;
  int threads = 0;  // 0: all cores
  std::string data = tg::data::MNIST::kDefaultRoot;
  std::string out = "out";
  std::string resume;
  std::string weights;  // evaluate mode
  int64_t limit = 0;    // use only the first N training samples (smoke tests)
  bool quiet = false;
};

const char* kUsage = R"(usage: tapegrad-train [train] [options]
       tapegrad-train evaluate --weights FILE [--model NAME] [--data DIR]

Trains a classifier on Fashion-MNIST (any directory with the four IDX files works, MNIST too).

options:
  --model NAME          mlp | lenet | cnn-bn | resnet-small | densenet-small, or a zoo model with its
                        small-input stem: alexnet | vgg11_bn | vgg16_bn | googlenet | resnet18 |
                        resnet34 | resnet50 | densenet121 | densenet-bc-40 | densenet-bc-100
                        (default cnn-bn); --model list prints them with their parameter counts
  --epochs N            epochs to train (default 10)
  --batch-size N        mini-batch size (default 64)
  --optimizer NAME      sgd | adam | adamw | rmsprop | adagrad | delta-bar-delta   (default sgd)
  --lr X                initial learning rate (default 0.02)
  --momentum X          momentum for sgd and rmsprop (default 0.9)
  --weight-decay X      L2 penalty (decoupled for adamw) (default 5e-4)
  --scheduler NAME      none | step | exp | inv-time | cosine, stepped per epoch (default cosine)
  --no-nesterov         plain momentum for sgd (PyTorch's SGD default); Nesterov otherwise
  --augment             random crop (padding 2) and horizontal flip of the training images
  --seed N              seed of the weights, the shuffling, dropout and augmentation (default 1)
  --threads N           threads for the library and OpenBLAS (default: all cores)
  --data DIR            the IDX files (default /usr/share/datasets/fashion-mnist)
  --out DIR             metrics.csv, curves.svg, confusion_matrix.csv, checkpoint.safetensors (default out)
  --resume FILE         continue from a checkpoint written by an earlier run
  --weights FILE        (evaluate) a checkpoint or a model file saved by tg::save
  --limit N             train on the first N samples only (quick checks)
  --quiet               no progress bar, one line per epoch
  --help                this text

The defaults (cnn-bn, 10 epochs, SGD lr 0.02 momentum 0.9 nesterov, weight decay 5e-4, cosine schedule)
are the recipe of docs/benchmarks.md.
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "tapegrad-train: %s\n(run tapegrad-train --help for the options)\n", msg.c_str());
  std::exit(2);
}

template <typename T>
T parse_number(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    T r;
    if constexpr (std::is_floating_point_v<T>)
      r = T(std::stod(v, &used));
    else
      r = T(std::stoll(v, &used));
    if (used != v.size()) throw std::invalid_argument(v);
    return r;
  } catch (const std::exception&) {
    usage_error(fmt::format("{} expects a number, got '{}'", flag, v));
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

Args parse(int argc, char** argv) {
  Args a;
  int i = 1;
  if (i < argc && (std::string(argv[i]) == "train" || std::string(argv[i]) == "evaluate")) a.mode = argv[i++];
  auto value = [&](const std::string& flag) -> std::string {
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "--help" || f == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (f == "--model") a.model = value(f);
    else if (f == "--epochs") a.epochs = parse_number<int64_t>(f, value(f));
    else if (f == "--batch-size") a.batch_size = parse_number<int64_t>(f, value(f));
    else if (f == "--optimizer") a.optimizer = value(f);
    else if (f == "--lr") a.lr = parse_number<double>(f, value(f));
    else if (f == "--momentum") a.momentum = parse_number<double>(f, value(f));
    else if (f == "--weight-decay") a.weight_decay = parse_number<double>(f, value(f));
    else if (f == "--scheduler") a.scheduler = value(f);
    else if (f == "--augment") a.augment = true;
    else if (f == "--no-nesterov") a.nesterov = false;
    else if (f == "--seed") a.seed = parse_number<uint64_t>(f, value(f));
    else if (f == "--threads") a.threads = parse_number<int>(f, value(f));
    else if (f == "--data") a.data = value(f);
    else if (f == "--out") a.out = value(f);
    else if (f == "--resume") a.resume = value(f);
    else if (f == "--weights") a.weights = value(f);
    else if (f == "--limit") a.limit = parse_number<int64_t>(f, value(f));
    else if (f == "--quiet") a.quiet = true;
    else usage_error(fmt::format("unknown option '{}'", f));
  }
  auto one_of = [](const std::string& flag, const std::string& v, std::vector<std::string> allowed) {
    for (auto& s : allowed)
      if (s == v) return;
    usage_error(fmt::format("{} must be one of {}, got '{}'", flag, fmt::join(allowed, ", "), v));
  };
  if (a.model == "list") {
    for (const auto& name : models::names())
      std::printf("%-16s %11s parameters\n", name.c_str(), with_commas(models::parameter_count(*models::make_model(name))).c_str());
    std::exit(0);
  }
  one_of("--model", a.model, models::names());
  one_of("--optimizer", a.optimizer, {"sgd", "adam", "adamw", "rmsprop", "adagrad", "delta-bar-delta"});
  one_of("--scheduler", a.scheduler, {"none", "step", "exp", "inv-time", "cosine"});
  if (a.epochs < 1) usage_error(fmt::format("--epochs must be at least 1, got {}", a.epochs));
  if (a.batch_size < 1) usage_error(fmt::format("--batch-size must be at least 1, got {}", a.batch_size));
  if (!(a.lr > 0)) usage_error(fmt::format("--lr must be positive, got {}", a.lr));
  if (a.threads < 0) usage_error(fmt::format("--threads must be positive, got {}", a.threads));
  if (a.limit < 0) usage_error(fmt::format("--limit must be positive, got {}", a.limit));
  if (a.mode == "evaluate" && a.weights.empty()) usage_error("evaluate needs --weights FILE");
  return a;
}

std::unique_ptr<tg::optim::Optimizer> make_optimizer(const Args& a, const std::vector<Tensor>& params) {
  namespace O = tg::optim;
  if (a.optimizer == "sgd")
    return std::make_unique<O::SGD>(params, O::SGDOptions(a.lr).momentum(a.momentum).nesterov(a.nesterov && a.momentum > 0)
                                                .weight_decay(a.weight_decay));
  if (a.optimizer == "adam") return std::make_unique<O::Adam>(params, O::AdamOptions(a.lr).weight_decay(a.weight_decay));
  if (a.optimizer == "adamw") return std::make_unique<O::AdamW>(params, O::AdamWOptions(a.lr).weight_decay(a.weight_decay));
  if (a.optimizer == "rmsprop")
    return std::make_unique<O::RMSprop>(params, O::RMSpropOptions(a.lr).momentum(a.momentum).weight_decay(a.weight_decay));
  if (a.optimizer == "adagrad")
    return std::make_unique<O::Adagrad>(params, O::AdagradOptions(a.lr).weight_decay(a.weight_decay));
  return std::make_unique<O::DeltaBarDelta>(params, O::DeltaBarDeltaOptions(a.lr));
}

std::unique_ptr<tg::optim::LRScheduler> make_scheduler(const Args& a, tg::optim::Optimizer& opt) {
  namespace O = tg::optim;
  if (a.scheduler == "step") return std::make_unique<O::StepLR>(opt, std::max<int64_t>(1, a.epochs / 3), 0.1);
  if (a.scheduler == "exp") return std::make_unique<O::ExponentialLR>(opt, 0.8);
  if (a.scheduler == "inv-time") return std::make_unique<O::InverseTimeLR>(opt, 0.5);
  if (a.scheduler == "cosine") return std::make_unique<O::CosineAnnealingLR>(opt, a.epochs, 0.0);
  return nullptr;
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

// The first n samples of a dataset (--limit).
struct FirstN : tg::data::Dataset {
  std::shared_ptr<const tg::data::Dataset> base;
  int64_t n;
  FirstN(std::shared_ptr<const tg::data::Dataset> b, int64_t count) : base(std::move(b)), n(count) {}
  int64_t size() const override { return n; }
  tg::data::Example get(int64_t i) const override { return base->get(i); }
  tg::data::Example get_batch(const std::vector<int64_t>& idx) const override { return base->get_batch(idx); }
};

struct EpochMetrics {
  int64_t epoch = 0;
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, test_top5 = 0, seconds = 0, samples_per_s = 0;
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

// ---- checkpoints: model, optimizer, scheduler, RNG, epoch and history in one safetensors file ----
// The flags that shape a run, as the checkpoint's metadata records them. The first four fix
// what was trained on and how it was drawn, so a resumed run cannot change them; the others are
// applied from the epoch the run resumes at.
const char* const kFixedOnResume[] = {"model", "optimizer", "batch-size", "seed"};

std::map<std::string, std::string> run_flags(const Args& a) {
  return {{"model", a.model},
          {"optimizer", a.optimizer},
          {"batch-size", std::to_string(a.batch_size)},
          {"seed", std::to_string(a.seed)},
          {"epochs", std::to_string(a.epochs)},
          {"lr", fmt::format("{}", a.lr)},
          {"momentum", fmt::format("{}", a.momentum)},
          {"weight-decay", fmt::format("{}", a.weight_decay)},
          {"nesterov", a.nesterov ? "true" : "false"},
          {"scheduler", a.scheduler},
          {"augment", a.augment ? "true" : "false"}};
}

// The learning rates of epochs 1..n under the plan of `a` (a scheduler on a throwaway optimizer).
std::vector<double> planned_lrs(const Args& a, int64_t n);

void save_checkpoint(const std::string& path, const Args& a, const tg::nn::Module& model, tg::optim::Optimizer& opt,
                     tg::optim::LRScheduler* sched, int64_t epoch, const std::vector<EpochMetrics>& hist) {
  std::map<std::string, Tensor> t;
  for (auto& [k, v] : model.state_dict()) t["model." + k] = v;
  for (auto& [k, v] : opt.state_dict()) t["optim." + k] = v;
  if (sched)
    for (auto& [k, v] : sched->state_dict()) t["sched." + k] = v;
  std::vector<double> h;
  for (const auto& m : hist)
    h.insert(h.end(), {double(m.epoch), m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.test_top5, m.seconds,
                       m.samples_per_s});
  if (!h.empty()) t["history"] = tg::tensor(h, {int64_t(hist.size()), 8}, tg::kFloat64);
  std::map<std::string, std::string> meta = run_flags(a);
  meta["epoch"] = std::to_string(epoch);
  meta["rng"] = tg::get_rng_state();
  tg::save_tensors(t, path, meta);
}

std::vector<double> planned_lrs(const Args& a, int64_t n) {
  Tensor p = tg::zeros({1}).requires_grad_();
  auto opt = make_optimizer(a, {p});
  auto sched = make_scheduler(a, *opt);
  std::vector<double> lrs;
  for (int64_t e = 0; e < n; ++e) {
    lrs.push_back(opt->param_groups()[0].options().get_lr());
    if (sched) sched->step();
  }
  return lrs;
}

// Checks this run's flags against the checkpoint's (the fixed ones must agree; a changed one is
// said), and returns the epochs the checkpoint has done.
int64_t resume_epoch(const Args& a, const std::map<std::string, std::string>& meta) {
  auto saved = [&](const std::string& k) {
    auto it = meta.find(k);
    return it == meta.end() ? std::string() : it->second;
  };
  int64_t done = 0;
  try {
    done = std::stoll(saved("epoch"));
  } catch (const std::exception&) {
    throw tg::Error(fmt::format("--resume: {} is not a tapegrad-train checkpoint (no epoch in its metadata)", a.resume));
  }
  const auto now = run_flags(a);
  for (const char* k : kFixedOnResume) {
    const std::string was = saved(k);
    if (!was.empty() && was != now.at(k))
      usage_error(fmt::format("--resume: {} was trained with --{} {}; --{} cannot change on resume (got {})", a.resume,
                              k, was, k, now.at(k)));
  }
  for (const auto& [k, v] : now) {
    const std::string was = saved(k);
    if (was.empty() || was == v ||
        std::find(std::begin(kFixedOnResume), std::end(kFixedOnResume), k) != std::end(kFixedOnResume))
      continue;
    std::printf("resume: --%s %s (the checkpoint's run had %s), applied from epoch %lld\n", k.c_str(), v.c_str(),
                was.c_str(), (long long)(done + 1));
  }
  if (done >= a.epochs)
    std::printf("resume: %s has already done %lld epochs; --epochs %lld trains no more\n", a.resume.c_str(),
                (long long)done, (long long)a.epochs);
  // A schedule planned for another horizon may have given the epochs already done other rates.
  Args before = a;
  auto num = [&](const std::string& k, double fallback) {
    try {
      return saved(k).empty() ? fallback : std::stod(saved(k));
    } catch (const std::exception&) {
      return fallback;
    }
  };
  before.epochs = int64_t(num("epochs", double(a.epochs)));
  before.lr = num("lr", a.lr);
  if (!saved("scheduler").empty()) before.scheduler = saved("scheduler");
  if (planned_lrs(before, done) != planned_lrs(a, done))
    std::printf("resume: this run's schedule gives epochs 1-%lld other learning rates than the ones they were "
                "trained with, so it will not end where a straight %lld-epoch run ends\n",
                (long long)done, (long long)a.epochs);
  return done;
}

std::map<std::string, Tensor> with_prefix(const std::map<std::string, Tensor>& all, const std::string& prefix) {
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : all)
    if (k.compare(0, prefix.size(), prefix) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
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
      auto sd = with_prefix(all, "model.");
      model->load_state_dict(sd.empty() ? all : sd);
      Evaluation e = evaluate(*model, test_loader);
      std::printf("%s on %s: test loss %.4f, test accuracy %.4f, top-5 %.4f\n", a.model.c_str(), a.data.c_str(),
                  e.loss, e.acc, e.top5);
      print_confusion(e.confusion);
      return 0;
    }

    auto train_set = std::make_shared<tg::data::MNIST>(a.data, tg::data::Split::Train);
    std::shared_ptr<const tg::data::Dataset> train_data = train_set;
    if (a.limit > 0 && a.limit < train_set->size()) train_data = std::make_shared<FirstN>(train_set, a.limit);
    tg::data::Transform augment = normalize;
    if (a.augment) augment = tg::data::Compose({tg::data::RandomCrop(28, 2), tg::data::RandomHorizontalFlip(), normalize});
    tg::data::DataLoader train_loader(
        train_data,
        tg::data::DataLoaderOptions().batch_size(a.batch_size).shuffle(true).seed(a.seed).transform(augment));

    auto opt = make_optimizer(a, model->parameters());
    auto sched = make_scheduler(a, *opt);
    std::vector<EpochMetrics> hist;
    int64_t start_epoch = 1;
    fs::create_directories(a.out);
    const std::string ckpt = a.out + "/checkpoint.safetensors";

    if (!a.resume.empty()) {
      std::map<std::string, std::string> meta;
      auto all = tg::load_tensors(a.resume, &meta);
      const int64_t done = resume_epoch(a, meta);
      model->load_state_dict(with_prefix(all, "model."));
      // The optimizer's buffers (momentum, moments, steps) come from the checkpoint; its options
      // are this run's flags, so a changed --lr, --momentum or --weight-decay is applied.
      tg::optim::StateDict osd = with_prefix(all, "optim.");
      for (auto& [k, v] : opt->state_dict())
        if (k.rfind("param_groups.", 0) == 0) osd[k] = v;
      opt->load_state_dict(osd);
      // The schedule is a closed form of the epochs done: this run's schedule (its horizon is
      // this run's --epochs) continues at t = done.
      if (sched) {
        tg::optim::StateDict ssd = sched->state_dict();
        ssd["last_epoch"] = tg::scalar_tensor(double(done), tg::kInt64);
        sched->load_state_dict(ssd);
      }
      tg::set_rng_state(meta["rng"]);
      start_epoch = done + 1;
      if (all.count("history")) {
        auto h = all["history"].to_vector<double>();
        for (size_t r = 0; r + 8 <= h.size(); r += 8)
          hist.push_back({int64_t(h[r]), h[r + 1], h[r + 2], h[r + 3], h[r + 4], h[r + 5], h[r + 6], h[r + 7]});
      }
      std::printf("resumed from %s after epoch %lld\n", a.resume.c_str(), (long long)(start_epoch - 1));
    }

    std::printf("tapegrad-train: %s, %lld parameters, %lld training samples, %s lr %g, %s schedule; %s\n",
                a.model.c_str(), (long long)[&] { int64_t n = 0; for (auto& p : model->parameters()) n += p.numel(); return n; }(),
                (long long)train_data->size(), a.optimizer.c_str(), a.lr, a.scheduler.c_str(),
                tg::config_string().c_str());
    for (int64_t epoch = start_epoch; epoch <= a.epochs; ++epoch) {
      model->train();
      train_loader.set_epoch(epoch - 1);
      Progress bar(train_loader.size(), epoch, a.epochs, a.quiet);
      double loss_sum = 0, correct = 0;
      int64_t seen = 0, done = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (auto& batch : train_loader) {
        Tensor x = batch.data;
        Tensor logits = (*model)(x);
        Tensor loss = F::cross_entropy(logits, batch.target);
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
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (sched) sched->step();
      Evaluation e = evaluate(*model, test_loader);
      hist.push_back({epoch, loss_sum / double(seen), correct / double(seen), e.loss, e.acc, e.top5, secs,
                      double(seen) / secs});
      std::printf("epoch %lld/%lld: train loss %.4f acc %.4f | test loss %.4f acc %.4f top-5 %.4f | %.1f s, %.0f "
                  "samples/s\n",
                  (long long)epoch, (long long)a.epochs, hist.back().train_loss, hist.back().train_acc, e.loss, e.acc,
                  e.top5, secs, hist.back().samples_per_s);
      std::fflush(stdout);
      write_metrics_csv(a.out, hist);
      write_curves_svg(a.out, hist);
      write_confusion(a.out, e.confusion);
      save_checkpoint(ckpt, a, *model, *opt, sched.get(), epoch, hist);
      if (epoch == a.epochs) {
        print_confusion(e.confusion);
        std::printf("test accuracy %.4f after %lld epochs (%s); outputs in %s/\n", e.acc, (long long)epoch,
                    a.model.c_str(), a.out.c_str());
      }
    }
    tg::save(*model, a.out + "/model.safetensors");
  } catch (const tg::Error& e) {
    std::fprintf(stderr, "tapegrad-train: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tapegrad-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
