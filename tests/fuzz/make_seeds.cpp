// Writes the seed corpora of the fuzz harnesses, small valid inputs each: IDX files (plain and
// gzipped, 3 and 1 dims), safetensors files (a module's, and one of every dtype with metadata),
// one trainer checkpoint per optimizer (each with another schedule) and sample command lines.
// The committed corpora under tests/fuzz/<harness>/ are its output:
//   build-fuzz/tests/fuzz/make_seeds tests/fuzz
#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "checkpoint_config.hpp"
#include "tiny_model.hpp"

namespace {

std::string root;

void write(const std::string& harness, const std::string& name, const std::string& bytes) {
  const std::string dir = root + "/" + harness;
  ::mkdir(dir.c_str(), 0777);
  std::ofstream f(dir + "/" + name, std::ios::binary | std::ios::trunc);
  f << bytes;
  if (!f) throw tg::Error("make_seeds: cannot write " + dir + "/" + name);
}

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string gzip(const std::string& bytes) {
  const std::string tmp = root + "/.make_seeds.gz";
  gzFile g = gzopen(tmp.c_str(), "wb9");
  if (!g || gzwrite(g, bytes.data(), unsigned(bytes.size())) != int(bytes.size()) || gzclose(g) != Z_OK)
    throw tg::Error("make_seeds: gzip failed");
  std::string out = read(tmp);
  std::remove(tmp.c_str());
  return out;
}

std::string idx(uint32_t dims_code, const std::vector<uint32_t>& dims, uint8_t first) {
  std::string s;
  auto be32 = [&](uint32_t v) {
    for (int k = 3; k >= 0; --k) s += char((v >> (8 * k)) & 0xFF);
  };
  be32(0x800 | dims_code);
  size_t n = 1;
  for (uint32_t d : dims) {
    be32(d);
    n *= d;
  }
  for (size_t i = 0; i < n; ++i) s += char(uint8_t(first + 37 * i));
  return s;
}

// A file written by tg's own writers, read back as bytes.
template <typename F>
std::string saved(F&& save) {
  const std::string tmp = root + "/.make_seeds.safetensors";
  save(tmp);
  std::string out = read(tmp);
  std::remove(tmp.c_str());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR (writes DIR/idx, DIR/safetensors, DIR/checkpoint, DIR/args)\n");
    return 2;
  }
  root = argv[1];
  try {
    // IDX: two 4x3 images, five labels.
    const std::string images = idx(3, {2, 4, 3}, 0), labels = idx(1, {5}, 3);
    write("idx", "images3.idx", images);
    write("idx", "images3.idx.gz", gzip(images));
    write("idx", "labels1.idx", labels);
    write("idx", "labels1.idx.gz", gzip(labels));

    tg::manual_seed(1);
    auto model = fuzz::tiny_model();
    write("safetensors", "tiny_model.safetensors", saved([&](const std::string& p) { tg::save(*model, p); }));
    write("safetensors", "dtypes_metadata.safetensors", saved([&](const std::string& p) {
            tg::save_tensors({{"f32", tg::tensor({1.5, -2, 3}, {3})},
                              {"f64", tg::tensor({0.25, 1e-300}, {2, 1}, tg::kFloat64)},
                              {"i64", tg::tensor({7, -1}, {2}, tg::kInt64)},
                              {"empty", tg::zeros({0, 4})},
                              {"scalar", tg::scalar_tensor(4.0)}},
                             p, {{"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\""}});
          }));

    // One checkpoint per optimizer, the schedules taken in turn: a step of training on a
    // random batch, then the trainer's own save_checkpoint after epoch 1.
    for (size_t i = 0; i < fuzz::optimizers().size(); ++i) {
      const size_t c = i + fuzz::optimizers().size() * ((i + 4) % fuzz::schedulers().size());  // cosine first
      const trainer::Args args = fuzz::config_args(c);
      tg::manual_seed(args.seed);
      auto m = fuzz::tiny_model();
      auto opt = trainer::make_optimizer(args, m->parameters());
      auto sched = trainer::make_scheduler(args, *opt);
      tg::Tensor loss = (*m)(tg::randn({4, 3})).pow(2).sum();
      opt->zero_grad(true);
      loss.backward();
      opt->step();
      if (sched) sched->step();
      const std::vector<trainer::EpochMetrics> hist = {{1, 0.9, 0.5, 0.8, 0.55, 0.9, 1.25, 51.2}};
      const std::string file = saved([&](const std::string& p) {
        trainer::save_checkpoint(p, args, *m, *opt, sched.get(), 1, hist);
      });
      write("checkpoint", args.optimizer + "-" + args.scheduler + ".ckpt", std::string(1, char(c)) + file);
    }

    // Command lines, one argument per line: the README's and the CLI test's.
    const char* const lines[] = {
        "--model\nmlp\n--epochs\n1\n--seed\n7",
        "--model\nmlp\n--epochs\n2\n--resume\nout/checkpoint.safetensors",
        "train\n--model\ncnn-bn\n--epochs\n10\n--batch-size\n64\n--optimizer\nsgd\n--lr\n0.02\n--momentum\n0.9\n"
        "--weight-decay\n5e-4\n--scheduler\ncosine\n--augment",
        "--model\nmlp\n--batch-size\n16\n--optimizer\nadamw\n--lr\n0.05\n--scheduler\ninv-time\n--threads\n1\n--seed\n3"
        "\n--quiet\n--data\n/tmp/data\n--limit\n256\n--no-nesterov",
        "evaluate\n--model\nlenet\n--weights\nout/model.safetensors\n--data\n/usr/share/datasets/fashion-mnist",
        "--optimizer\ndelta-bar-delta\n--scheduler\nstep\n--model\nresnet-small\n--out\nruns/a",
        "--help",
        "--lr=0.1\n--epochs\n3\n--epochs\n4\n--nesterov\n--epoch\n2",
        "--config\nout/config.toml\n--seed\n18446744073709551615\n--model\nlist",
    };
    int k = 0;
    for (const char* l : lines) write("args", "line" + std::to_string(k++) + ".txt", l);
  } catch (const tg::Error& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
