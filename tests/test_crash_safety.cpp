// Crash safety of tg::save_tensors (the trainer's checkpoints) and tg::save: a child process
// saving new versions over one file is killed with SIGKILL at random moments; after every kill
// the file must load and be one complete version, never older than the last one seen, and the
// temporary file the killed writer left must be gone after the next save.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <tapegrad.hpp>

namespace fs = std::filesystem;
using tg::Tensor;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("tapegrad-crash-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  // The files of the directory other than `name`: temporaries left by killed writers.
  std::vector<std::string> others(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path))
      if (e.path().filename() != name) out.push_back(e.path().filename().string());
    return out;
  }
};

// A way of saving version v over `path`, and of reading the version back (-1: no valid file).
struct Writer {
  std::function<void(const std::string& path, int64_t v)> save;
  std::function<int64_t(const std::string& path)> load;
};

struct Tally {
  int kills = 0, mid_write = 0, versions_seen = 0;
  int64_t save_us = 0;  // one save, measured before the kills
};

// `rounds` times: fork a child that saves versions last+1, last+2, ... in a loop; SIGKILL it
// after a random delay of up to four saves' time (measured here first, so a slow sanitizer
// build or a loaded machine still sees kills inside saves and saves completed); check the file.
// The tensors are ~2 MB, so a save (write + fsync) lasts long enough to be cut in its middle.
Tally kill_writers(const Writer& w, const TempDir& dir, const std::string& name, int rounds) {
  const std::string path = (dir.path / name).string();
  const std::string timing = (dir.path / "timing.safetensors").string();
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < 3; ++k) w.save(timing, 0);
  const auto save_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count() / 3;
  fs::remove(timing);
  std::mt19937 rng(20261202);
  std::uniform_int_distribution<int64_t> delay_us(0, std::max<int64_t>(4 * save_us, 2000));
  Tally t;
  t.save_us = save_us;
  int64_t last = -1;
  for (int round = 0; round < rounds; ++round) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      try {
        for (int64_t v = last + 1;; ++v) w.save(path, v);
      } catch (...) {
      }
      ::_exit(3);  // a failed save: the parent sees an exit instead of the kill
    }
    ::usleep(useconds_t(delay_us(rng)));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL), "the writer stopped by itself (a failed save)");
    ++t.kills;
    const auto left = dir.others(name);
    // At most the killed writer's own temporary: each save removes those of dead writers.
    CHECK_MESSAGE(left.size() <= 1, "temporaries pile up: ", left.size());
    if (!left.empty()) ++t.mid_write;
    if (!fs::exists(path)) {
      REQUIRE_MESSAGE(last == -1, "the file vanished after version ", last);
      continue;
    }
    int64_t v = -2;
    try {
      v = w.load(path);
    } catch (const tg::Error& e) {
      FAIL("after a kill in round ", round, " the file does not load: ", e.what());
    }
    REQUIRE_MESSAGE(v >= 0, "round ", round, ": the file holds a mixture of versions");
    CHECK_MESSAGE(v >= last, "round ", round, ": version ", v, " after version ", last);
    if (v != last) ++t.versions_seen;
    last = v;
  }
  // The next write (any process) cleans what the last killed writer left.
  w.save(path, last + 1);
  CHECK(dir.others(name).empty());
  CHECK(w.load(path) == last + 1);
  return t;
}

constexpr int64_t kElements = 1 << 19;  // 2 MiB of float32

}  // namespace

TEST_CASE("crash safety: save_tensors killed at random moments leaves the old file or the new one, whole") {
  TempDir dir;
  // Built before the fork: the child only writes into it (no thread pool after fork).
  Tensor data = tg::zeros({kElements});
  Writer w;
  w.save = [&](const std::string& path, int64_t v) {
    float* p = data.data_ptr<float>();
    for (int64_t i = 0; i < kElements; ++i) p[i] = float(v);
    tg::save_tensors({{"data", data}, {"version", tg::scalar_tensor(double(v), tg::kInt64)}}, path,
                     {{"version", std::to_string(v)}});
  };
  w.load = [](const std::string& path) -> int64_t {
    std::map<std::string, std::string> meta;
    const auto t = tg::load_tensors(path, &meta);
    const int64_t v = t.at("version").item<int64_t>();
    if (meta.at("version") != std::to_string(v) || t.at("data").numel() != kElements) return -1;
    for (float x : t.at("data").to_vector<float>())
      if (x != float(v)) return -1;
    return v;
  };
  const Tally t = kill_writers(w, dir, "checkpoint.safetensors", 120);
  MESSAGE("save_tensors: ", t.kills, " kills, ", t.mid_write, " in the middle of a save, ", t.versions_seen,
          " versions seen; a save takes ", t.save_us, " us");
  CHECK(t.mid_write >= 12);  // the kills did land inside saves, and between them
  CHECK(t.versions_seen >= 12);
}

TEST_CASE("crash safety: tg::save of a module killed at random moments never leaves a file tg::load refuses") {
  TempDir dir;
  auto model = std::make_shared<tg::nn::Linear>(1024, 512);  // 2 MiB of weights
  Writer w;
  w.save = [&](const std::string& path, int64_t v) {
    for (Tensor p : model->parameters()) {
      float* d = p.data_ptr<float>();
      for (int64_t i = 0; i < p.numel(); ++i) d[i] = float(v);
    }
    tg::save(*model, path);
  };
  w.load = [](const std::string& path) -> int64_t {
    tg::nn::Linear fresh(1024, 512);
    tg::load(fresh, path);
    const float v = fresh.parameters()[0].to_vector<float>()[0];
    for (const Tensor& p : fresh.parameters())
      for (float x : p.to_vector<float>())
        if (x != v) return -1;
    return int64_t(v);
  };
  const Tally t = kill_writers(w, dir, "model.safetensors", 80);
  MESSAGE("tg::save: ", t.kills, " kills, ", t.mid_write, " in the middle of a save, ", t.versions_seen,
          " versions seen; a save takes ", t.save_us, " us");
  CHECK(t.mid_write >= 8);
  CHECK(t.versions_seen >= 8);
}

TEST_CASE("crash safety: a save removes only dead writers' temporaries of its own file") {
  TempDir dir;
  const std::string path = (dir.path / "m.safetensors").string();
  // A pid that is certainly dead: a child that has exited and been reaped.
  const pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  const std::string stale = "m.safetensors.tmp-" + std::to_string(dead) + "-0";
  const std::vector<std::string> kept = {
      "m.safetensors.tmp-" + std::to_string(::getppid()) + "-0",  // a live process's
      "m.safetensors.tmp-" + std::to_string(dead) + "-x",          // not named as a temporary
      "m.safetensors.tmp-" + std::to_string(dead),                  // no counter
      "other.safetensors.tmp-" + std::to_string(dead) + "-0",       // another file's
      "m.safetensors.bak",
  };
  for (const std::string& f : kept) std::ofstream((dir.path / f).string()) << "user data";
  std::ofstream((dir.path / stale).string()) << "half a save";
  tg::save_tensors({{"a", tg::ones({2})}}, path);
  CHECK_FALSE(fs::exists(dir.path / stale));
  for (const std::string& f : kept) CHECK_MESSAGE(fs::exists(dir.path / f), f);
}
