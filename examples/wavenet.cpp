// tapegrad-wavenet: a WaveNet (tg::models::WaveNet) trained on synthesised speech, scored on
// held-out utterances in bits per sample beside two baselines, then sampled autoregressively
// with the cached generator (tg::models::WaveNetGenerator) to a WAV file.
//
//   bash tools/speech_data.sh data/speech        # espeak-ng sentences, 16 kHz, train/ and heldout/
//   tapegrad-wavenet --data data/speech --out out/wavenet
//
// Every utterance is mu-law coded (256 codes) and prefixed with receptive_field codes of
// silence (128), so that the first samples are predicted from a silent past, the same way in
// training, in scoring and in generation. Training: teacher forcing on random windows, the
// cross-entropy of the last --window positions of each (each sees a full receptive field), Adam.
// Scoring: every held-out sample q_t for t >= 1 (up to --eval-seconds), predicted by
//   - the WaveNet from q_<t;
//   - the train histogram of codes (add-one smoothed): the cross-entropy of the held-out codes
//     under it, the "mu-law histogram entropy" baseline;
//   - the previous-sample predictor p(q_t | q_{t-1}), a conditional histogram from train with
//     add-0.1 smoothing, interpolated with the unigram histogram for unseen contexts.
// All three are in bits per sample over the same positions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <tapegrad.hpp>

namespace {

namespace fs = std::filesystem;
namespace F = tg::nn::functional;
using tg::Tensor;
using Clock = std::chrono::steady_clock;

constexpr int64_t kQ = 256, kSilence = 128, kRate = 16000;

struct Args {
  std::string data = "data/speech", out = "out/wavenet";
  int64_t steps = 600, batch = 8, window = 1024, layers = 9, cycles = 2, residual = 32, gate = 32, skip = 64;
  int64_t threads = 2, seed = 1, log_every = 50, naive_samples = 200;
  double lr = 2e-3, eval_seconds = 10, generate_seconds = 3, temperature = 1.0;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The mu-law codes of every WAV file in dir (sorted by name), each prefixed with `pad` silence codes.
std::vector<std::vector<int64_t>> load_codes(const fs::path& dir, int64_t pad) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) throw tg::Error(fmt::format("tapegrad-wavenet: no directory '{}'", dir.string()));
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".wav") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw tg::Error(fmt::format("tapegrad-wavenet: no .wav files in '{}'", dir.string()));
  std::vector<std::vector<int64_t>> out;
  for (const auto& f : files) {
    const tg::audio::Wave w = tg::audio::read_wav(f.string());
    if (w.sample_rate != kRate || w.samples.size(0) != 1)
      throw tg::Error(fmt::format("tapegrad-wavenet: '{}' is {} channels at {} Hz, expected mono at {} Hz", f.string(),
                                  w.samples.size(0), w.sample_rate, kRate));
    std::vector<int64_t> codes(size_t(pad), kSilence);
    const std::vector<int64_t> q = tg::audio::mu_law_encode(w.samples.reshape({-1}), kQ).to_vector<int64_t>();
    codes.insert(codes.end(), q.begin(), q.end());
    out.push_back(std::move(codes));
  }
  return out;
}

// A [rows, len] int64 tensor from slices of the utterances.
Tensor codes_tensor(const std::vector<std::vector<int64_t>>& utt, const std::vector<std::pair<size_t, int64_t>>& starts,
                    int64_t len) {
  Tensor t = tg::empty({int64_t(starts.size()), len}, tg::kInt64);
  int64_t* p = t.data_ptr<int64_t>();
  for (size_t r = 0; r < starts.size(); ++r)
    std::copy_n(utt[starts[r].first].begin() + starts[r].second, len, p + int64_t(r) * len);
  return t;
}

// A scored range of one held-out utterance: target positions [begin, end) of the padded codes.
struct Segment {
  size_t utt;
  int64_t begin, end;
};

int run(const Args& a) {
  tg::set_num_threads(int(a.threads));
  tg::manual_seed(uint64_t(a.seed));
  auto net = std::make_shared<tg::models::WaveNet>(tg::models::WaveNetOptions()
                                                       .residual_channels(a.residual)
                                                       .gate_channels(a.gate)
                                                       .skip_channels(a.skip)
                                                       .layers_per_cycle(a.layers)
                                                       .cycles(a.cycles));
  const int64_t rf = net->receptive_field();
  const auto train = load_codes(fs::path(a.data) / "train", rf);
  const auto held = load_codes(fs::path(a.data) / "heldout", rf);
  int64_t train_samples = 0, held_samples = 0;
  for (const auto& u : train) train_samples += int64_t(u.size()) - rf;
  for (const auto& u : held) held_samples += int64_t(u.size()) - rf;
  int64_t params = 0;
  for (const Tensor& p : net->parameters()) params += p.numel();
  fmt::print("data: {} train utterances ({:.1f} s), {} held-out ({:.1f} s), 16 kHz mu-law 256\n", train.size(),
             double(train_samples) / kRate, held.size(), double(held_samples) / kRate);
  fmt::print("model: {} layers ({} cycles of dilations 1..{}), residual {}, gate {}, skip {}, {} parameters\n",
             a.layers * a.cycles, a.cycles, int64_t(1) << (a.layers - 1), a.residual, a.gate, a.skip, params);
  fmt::print("receptive field: {} samples ({:.1f} ms)\n", rf, 1000.0 * double(rf) / kRate);

  // ---- training: random windows of rf - 1 context + `window` scored positions ----
  const int64_t len = rf - 1 + a.window;  // inputs; targets are the same span shifted by one
  std::vector<double> weights;
  for (const auto& u : train) weights.push_back(std::max<double>(0, double(u.size()) - double(len)));
  if (*std::max_element(weights.begin(), weights.end()) <= 0)
    throw tg::Error(fmt::format("tapegrad-wavenet: every train utterance is shorter than a window of {} samples", a.window));
  std::mt19937_64 rng(uint64_t(a.seed));
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  tg::optim::Adam opt(net->parameters(), tg::optim::AdamOptions(a.lr));
  fs::create_directories(a.out);
  std::ofstream log(fs::path(a.out) / "train.csv");
  log << "step,train_bits_per_sample,seconds\n";
  const auto t_train = Clock::now();
  double recent = 0;
  int64_t recent_n = 0;
  for (int64_t step = 1; step <= a.steps; ++step) {
    std::vector<std::pair<size_t, int64_t>> starts;
    for (int64_t b = 0; b < a.batch; ++b) {
      const size_t u = pick(rng);
      starts.emplace_back(u, std::uniform_int_distribution<int64_t>(0, int64_t(train[u].size()) - len - 1)(rng));
    }
    const Tensor seq = codes_tensor(train, starts, len + 1);
    const Tensor logits = net->forward(seq.narrow(1, 0, len)).narrow(2, rf - 1, a.window);
    const Tensor loss = F::cross_entropy(logits, seq.narrow(1, rf, a.window).contiguous());
    opt.zero_grad();
    loss.backward();
    opt.step();
    recent += loss.item<double>() / std::log(2.0);
    ++recent_n;
    if (step % a.log_every == 0 || step == a.steps) {
      fmt::print("step {:5d}  train {:.3f} bits/sample  {:.1f} s\n", step, recent / double(recent_n), seconds_since(t_train));
      log << fmt::format("{},{:.4f},{:.1f}\n", step, recent / double(recent_n), seconds_since(t_train));
      recent = 0;
      recent_n = 0;
    }
  }
  const double train_seconds = seconds_since(t_train);
  fmt::print("trained {} steps of {} x {} samples in {:.1f} s ({:.2f} s/step)\n", a.steps, a.batch, a.window,
             train_seconds, train_seconds / double(std::max<int64_t>(1, a.steps)));
  tg::save(*net, (fs::path(a.out) / "wavenet.safetensors").string());

  // ---- held-out scoring, the same positions for the model and both baselines ----
  std::vector<Segment> segments;
  int64_t budget = std::max<int64_t>(1, int64_t(a.eval_seconds * kRate));
  for (size_t u = 0; u < held.size() && budget > 0; ++u) {
    const int64_t n = std::min<int64_t>(int64_t(held[u].size()) - (rf + 1), budget);  // targets rf+1 .. : t >= 1
    if (n <= 0) continue;
    segments.push_back({u, rf + 1, rf + 1 + n});
    budget -= n;
  }
  std::vector<double> uni(kQ, 1.0), bi(size_t(kQ * kQ), 0.0), row(kQ, 0.0);
  for (const auto& u : train)
    for (size_t t = size_t(rf); t < u.size(); ++t) {
      uni[size_t(u[t])] += 1;
      if (t > size_t(rf)) bi[size_t(u[t - 1] * kQ + u[t])] += 1, row[size_t(u[t - 1])] += 1;
    }
  double uni_total = 0;
  for (double c : uni) uni_total += c;
  double bits_model = 0, bits_uni = 0, bits_prev = 0, train_entropy = 0;
  for (double c : uni) train_entropy -= c / uni_total * std::log2(c / uni_total);
  int64_t scored = 0;
  const auto t_eval = Clock::now();
  {
    tg::NoGradGuard no_grad;
    net->eval();
    constexpr int64_t kChunk = 8192;
    for (const Segment& s : segments) {
      const auto& u = held[s.utt];
      for (int64_t b = s.begin; b < s.end; b += kChunk) {
        const int64_t n = std::min(kChunk, s.end - b);
        // targets b .. b+n-1, predicted from inputs (b - rf) .. (b + n - 2)
        const Tensor seq = codes_tensor(held, {{s.utt, b - rf}}, rf + n);
        const Tensor logits = net->forward(seq.narrow(1, 0, rf + n - 1)).narrow(2, rf - 1, n);
        const Tensor nll = F::cross_entropy(logits, seq.narrow(1, rf, n).contiguous(),
                                            F::CrossEntropyOptions().reduction(tg::kSum));
        bits_model += nll.item<double>() / std::log(2.0);
      }
      for (int64_t t = s.begin; t < s.end; ++t) {
        const size_t prev = size_t(u[size_t(t - 1)]), cur = size_t(u[size_t(t)]);
        const double p_uni = uni[cur] / uni_total;
        bits_uni -= std::log2(p_uni);
        bits_prev -= std::log2((bi[prev * kQ + cur] + 0.1 * kQ * p_uni) / (row[prev] + 0.1 * kQ));
      }
      scored += s.end - s.begin;
    }
  }
  const double per = 1.0 / double(std::max<int64_t>(1, scored));
  fmt::print("held-out: {} samples ({:.1f} s) scored in {:.1f} s\n", scored, double(scored) / kRate, seconds_since(t_eval));
  fmt::print("  WaveNet                                {:.3f} bits/sample\n", bits_model * per);
  fmt::print("  mu-law histogram (train; entropy {:.3f}) {:.3f} bits/sample\n", train_entropy, bits_uni * per);
  fmt::print("  previous-sample p(q_t | q_t-1)         {:.3f} bits/sample\n", bits_prev * per);

  // ---- generation with the cached generator ----
  const int64_t n_gen = int64_t(a.generate_seconds * kRate);
  if (n_gen > 0) {
    tg::models::WaveNetGenerator gen(*net);
    for (int64_t i = 0; i < rf; ++i) gen.step(kSilence);  // the same silent past as in training
    std::mt19937_64 grng(uint64_t(a.seed) + 1);
    const auto t_gen = Clock::now();
    const std::vector<int64_t> codes = gen.generate(n_gen, grng, a.temperature, kSilence);
    const double gen_seconds = seconds_since(t_gen);
    Tensor q = tg::empty({n_gen}, tg::kInt64);
    std::copy(codes.begin(), codes.end(), q.data_ptr<int64_t>());
    const std::string path = (fs::path(a.out) / "generated.wav").string();
    tg::audio::write_wav(path, tg::audio::mu_law_decode(q, kQ), kRate);
    fmt::print("generated {} samples ({:.1f} s of audio) in {:.2f} s: {:.0f} samples/s (cached, 1 thread) -> {}\n", n_gen,
               double(n_gen) / kRate, gen_seconds, double(n_gen) / gen_seconds, path);
  }
  // For comparison: the same sampling without the cache, a full forward over the receptive field per sample.
  if (a.naive_samples > 0) {
    tg::NoGradGuard no_grad;
    std::vector<int64_t> ctx(size_t(rf), kSilence);
    std::mt19937_64 grng(uint64_t(a.seed) + 2);
    const auto t_naive = Clock::now();
    for (int64_t i = 0; i < a.naive_samples; ++i) {
      Tensor in = tg::empty({1, rf}, tg::kInt64);
      std::copy(ctx.end() - rf, ctx.end(), in.data_ptr<int64_t>());
      const std::vector<double> l = net->forward(in).narrow(2, rf - 1, 1).contiguous().to_vector<double>();
      const double top = *std::max_element(l.begin(), l.end());
      std::vector<double> p(l.size());
      for (size_t k = 0; k < l.size(); ++k) p[k] = std::exp((l[k] - top) / a.temperature);
      ctx.push_back(int64_t(std::discrete_distribution<int64_t>(p.begin(), p.end())(grng)));
    }
    const double naive_seconds = seconds_since(t_naive);
    fmt::print("without the cache (a forward over {} samples each): {} samples in {:.2f} s: {:.0f} samples/s ({} threads)\n",
               rf, a.naive_samples, naive_seconds, double(a.naive_samples) / naive_seconds, a.threads);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"tapegrad-wavenet: train a WaveNet on 16 kHz speech, score it, generate audio"};
  app.add_option("--data", a.data, "directory with train/ and heldout/ WAV files (tools/speech_data.sh)")
      ->capture_default_str();
  app.add_option("--out", a.out, "train.csv, wavenet.safetensors, generated.wav")->capture_default_str();
  app.add_option("--steps", a.steps, "Adam steps")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--batch", a.batch, "windows per step")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--window", a.window, "scored samples per window")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--lr", a.lr, "Adam's learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--layers", a.layers, "layers per cycle (dilations 1..2^(k-1))")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--cycles", a.cycles, "repeats of the dilation cycle")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--residual", a.residual, "residual channels")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--gate", a.gate, "gate channels")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--skip", a.skip, "skip channels")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--threads", a.threads, "threads of the library")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seed", a.seed, "seed of the weights, windows and sampling")->capture_default_str();
  app.add_option("--log-every", a.log_every, "steps between log lines")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--eval-seconds", a.eval_seconds, "held-out audio scored, at most")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--generate-seconds", a.generate_seconds, "seconds of audio to generate (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--naive-samples", a.naive_samples, "samples drawn without the cache, to compare speeds (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--temperature", a.temperature, "sampling temperature")->check(CLI::PositiveNumber)->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "tapegrad-wavenet: " << e.what() << "\nRun with --help for the options.\n";
    return 2;
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::cerr << "tapegrad-wavenet: " << e.what() << "\n";
    return 1;
  }
}
