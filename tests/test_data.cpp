// Data pipeline: IDX reading (plain, gzipped, corrupt), MNIST, DataLoader (batching, shuffling,
// determinism, the worker thread), transforms and metrics. The IDX files are generated here into
// a temporary directory; the real Fashion-MNIST is checked when Debian's package is installed.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad.hpp>

#include "golden_io.hpp"

namespace data = tg::data;
namespace fs = std::filesystem;
using tg::Tensor;

namespace {

// ---- files ----

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("tapegrad_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out;
  put_be32(out, magic);
  for (uint32_t d : dims) put_be32(out, d);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

uint32_t crc32(const std::vector<uint8_t>& bytes) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : bytes) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

// A valid gzip member made of stored (uncompressed) deflate blocks: no zlib needed to write it.
std::vector<uint8_t> gzip_stored(const std::vector<uint8_t>& raw) {
  std::vector<uint8_t> out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  size_t pos = 0;
  do {
    size_t len = std::min<size_t>(raw.size() - pos, 65535);
    bool final = pos + len == raw.size();
    out.push_back(final ? 1 : 0);
    out.push_back(uint8_t(len));
    out.push_back(uint8_t(len >> 8));
    out.push_back(uint8_t(~len));
    out.push_back(uint8_t(~len >> 8));
    out.insert(out.end(), raw.begin() + long(pos), raw.begin() + long(pos + len));
    pos += len;
  } while (pos < raw.size());
  uint32_t crc = crc32(raw), size = uint32_t(raw.size());
  for (int s = 0; s < 32; s += 8) out.push_back(uint8_t(crc >> s));
  for (int s = 0; s < 32; s += 8) out.push_back(uint8_t(size >> s));
  return out;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

// Known pixels: image i, row r, column c.
uint8_t pixel(int64_t i, int64_t r, int64_t c) { return uint8_t((i * 37 + r * 11 + c * 3) % 256); }

std::vector<uint8_t> pixels(int64_t n, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out.push_back(pixel(i, r, c));
  return out;
}
std::vector<uint8_t> labels(int64_t n) {
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(uint8_t((i * 3) % 10));
  return out;
}

// Writes a split's two files (the names MNIST looks for), plain or gzipped.
void write_split(const TempDir& dir, const std::string& prefix, int64_t n, int64_t rows, int64_t cols, bool gz) {
  auto img = idx_bytes(0x803, {uint32_t(n), uint32_t(rows), uint32_t(cols)}, pixels(n, rows, cols));
  auto lab = idx_bytes(0x801, {uint32_t(n)}, labels(n));
  std::string ext = gz ? ".gz" : "";
  write_file(dir / (prefix + "-images-idx3-ubyte" + ext), gz ? gzip_stored(img) : img);
  write_file(dir / (prefix + "-labels-idx1-ubyte" + ext), gz ? gzip_stored(lab) : lab);
}

// The message of the tg::Error that f throws ("" and a failed check if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  FAIL_CHECK("expected a tg::Error");
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void check_sample(const data::MNIST& ds, int64_t i) {
  data::Example ex = ds.get(i);
  REQUIRE(ex.data.shape() == tg::Shape{1, ds.rows(), ds.cols()});
  CHECK(ex.data.dtype() == tg::kFloat32);
  CHECK(ex.target.dtype() == tg::kInt64);
  CHECK(ex.target.dim() == 0);
  CHECK(ex.target.item<int64_t>() == (i * 3) % 10);
  std::vector<float> v = ex.data.to_vector<float>();
  for (int64_t r = 0; r < ds.rows(); ++r)
    for (int64_t c = 0; c < ds.cols(); ++c)
      REQUIRE(v[size_t(r * ds.cols() + c)] == float(pixel(i, r, c)) / 255.0f);
}

// ---- a synthetic dataset: sample i is data [2] = {i, -i}, target i ----

struct Range : data::Dataset {
  int64_t n;
  int64_t throw_at = -1;               // get(throw_at) throws
  std::chrono::microseconds delay{0};  // per sample, to make the worker slow
  mutable std::atomic<int64_t> calls{0};
  explicit Range(int64_t n_) : n(n_) {}
  Range(const Range& o) : data::Dataset(o), n(o.n), throw_at(o.throw_at), delay(o.delay) {}
  int64_t size() const override { return n; }
  data::Example get(int64_t i) const override {
    ++calls;
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (i == throw_at) throw tg::Error("Range: sample " + std::to_string(i) + " is broken");
    return {tg::tensor({double(i), double(-i)}, {2}), tg::scalar_tensor(double(i), tg::kInt64)};
  }
};

// Every batch of one epoch, as (data values, target values).
struct Batches {
  std::vector<std::vector<double>> data;
  std::vector<std::vector<int64_t>> target;
  bool operator==(const Batches& o) const { return data == o.data && target == o.target; }
};
Batches epoch_of(data::DataLoader& loader) {
  Batches b;
  for (auto& batch : loader) {
    b.data.push_back(batch.data.to_vector<double>());
    b.target.push_back(batch.target.to_vector<int64_t>());
  }
  return b;
}
std::vector<int64_t> flat(const Batches& b) {
  std::vector<int64_t> out;
  for (const auto& t : b.target) out.insert(out.end(), t.begin(), t.end());
  return out;
}

Tensor image(int64_t c, int64_t h, int64_t w) {
  std::vector<double> v;
  for (int64_t i = 0; i < c * h * w; ++i) v.push_back(double(i + 1));
  return tg::tensor(v, {c, h, w});
}

}  // namespace

// ================================ IDX / MNIST ================================

TEST_CASE("data: MNIST reads a generated IDX set, plain and gzipped") {
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    TempDir dir;
    write_split(dir, "train", 7, 5, 4, gz);
    write_split(dir, "t10k", 3, 5, 4, gz);
    data::MNIST train(dir.str(), data::Split::Train);
    data::MNIST test(dir.str(), data::Split::Test);
    CHECK(train.size() == 7);
    CHECK(test.size() == 3);
    CHECK(train.rows() == 5);
    CHECK(train.cols() == 4);
    CHECK(contains(train.images_path(), gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte"));
    CHECK(train.pixels() == pixels(7, 5, 4));
    CHECK(train.labels() == labels(7));
    for (int64_t i = 0; i < 7; ++i) check_sample(train, i);
    for (int64_t i = 0; i < 3; ++i) check_sample(test, i);

    data::Example b = train.get_batch({6, 0, 3});
    REQUIRE(b.data.shape() == tg::Shape{3, 1, 5, 4});
    CHECK(b.target.to_vector<int64_t>() == std::vector<int64_t>{8, 0, 9});
    std::vector<float> v = b.data.to_vector<float>();
    CHECK(v[0] == float(pixel(6, 0, 0)) / 255.0f);
    CHECK(v[20 + 7] == float(pixel(0, 1, 3)) / 255.0f);
    CHECK(v[40 + 19] == float(pixel(3, 4, 3)) / 255.0f);

    CHECK_THROWS_AS(train.get(7), tg::Error);
    CHECK_THROWS_AS(train.get(-1), tg::Error);
    CHECK_THROWS_AS(train.get_batch({0, 9}), tg::Error);
  }
}

TEST_CASE("data: MNIST finds the dotted file names, and copies share the pixels") {
  TempDir dir;
  write_file(dir / "train-images.idx3-ubyte", idx_bytes(0x803, {2, 28, 28}, pixels(2, 28, 28)));
  write_file(dir / "train-labels.idx1-ubyte", idx_bytes(0x801, {2}, labels(2)));
  data::MNIST ds(dir.str());
  CHECK(ds.size() == 2);
  CHECK(ds.get(1).data.shape() == tg::Shape{1, 28, 28});
  data::MNIST copy = ds;
  CHECK(&copy.pixels() == &ds.pixels());
}

TEST_CASE("data: corrupt or missing IDX files are tg::Errors naming the file") {
  const auto img = idx_bytes(0x803, {4, 3, 2}, pixels(4, 3, 2));
  const auto lab = idx_bytes(0x801, {4}, labels(4));
  struct Case {
    const char* name;
    std::vector<uint8_t> images, labels;
    const char* bad_file;  // which file the message must name
    const char* words;     // and a phrase it must contain
  };
  auto cut = [](std::vector<uint8_t> v, size_t n) {
    v.resize(v.size() - n);
    return v;
  };
  auto extra = [](std::vector<uint8_t> v) {
    v.push_back(0);
    v.push_back(0);
    return v;
  };
  const std::vector<Case> cases = {
      {"images with the labels' magic", idx_bytes(0x801, {4, 3, 2}, pixels(4, 3, 2)), lab, "train-images",
       "bad magic number 0x00000801, expected 0x00000803"},
      {"labels with a bad magic", img, idx_bytes(0x00000901, {4}, labels(4)), "train-labels", "bad magic number"},
      {"truncated pixel data", cut(img, 5), lab, "train-images", "truncated"},
      {"truncated labels", img, cut(lab, 1), "train-labels", "truncated"},
      {"truncated inside the header", cut(img, img.size() - 9), lab, "train-images", "truncated inside its header"},
      {"shorter than a magic number", cut(img, img.size() - 2), lab, "train-images", "too short"},
      {"empty file", {}, lab, "train-images", "too short"},
      {"more images than labels", idx_bytes(0x803, {5, 3, 2}, pixels(5, 3, 2)), lab, "train-labels",
       "has 5 images but"},
      {"zero rows", idx_bytes(0x803, {4, 0, 2}, {}), lab, "train-images", "zero-size dimension"},
      {"dims that disagree with the data", idx_bytes(0x803, {4, 3, 3}, pixels(4, 3, 2)), lab, "train-images",
       "truncated"},
      {"trailing bytes", extra(img), lab, "train-images", "2 bytes after"},
      {"absurd dims", idx_bytes(0x803, {0xFFFFFFFF, 0xFFFFFFFF, 28}, {}), lab, "train-images", "implausibly large"},
  };
  for (const Case& c : cases) {
    for (bool gz : {false, true}) {
      CAPTURE(c.name);
      CAPTURE(gz);
      TempDir dir;
      std::string ext = gz ? ".gz" : "";
      write_file(dir / ("train-images-idx3-ubyte" + ext), gz ? gzip_stored(c.images) : c.images);
      write_file(dir / ("train-labels-idx1-ubyte" + ext), gz ? gzip_stored(c.labels) : c.labels);
      std::string msg = error_of([&] { data::MNIST ds(dir.str()); });
      CHECK(contains(msg, dir.str()));
      CHECK(contains(msg, c.bad_file));
      CHECK(contains(msg, c.words));
    }
  }
}

TEST_CASE("data: a damaged gzip stream is a tg::Error naming the file") {
  const auto img = idx_bytes(0x803, {4, 3, 2}, pixels(4, 3, 2));
  const auto lab = idx_bytes(0x801, {4}, labels(4));
  SUBCASE("cut short") {
    TempDir dir;
    auto gz = gzip_stored(img);
    gz.resize(gz.size() - 20);
    write_file(dir / "train-images-idx3-ubyte.gz", gz);
    write_file(dir / "train-labels-idx1-ubyte.gz", gzip_stored(lab));
    std::string msg = error_of([&] { data::MNIST ds(dir.str()); });
    CHECK(contains(msg, "train-images-idx3-ubyte.gz"));
    CHECK(contains(msg, "truncated"));
  }
  SUBCASE("bad checksum") {
    TempDir dir;
    auto gz = gzip_stored(lab);
    gz[gz.size() - 6] ^= 0xFF;  // a CRC byte
    write_file(dir / "train-images-idx3-ubyte.gz", gzip_stored(img));
    write_file(dir / "train-labels-idx1-ubyte.gz", gz);
    std::string msg = error_of([&] { data::MNIST ds(dir.str()); });
    CHECK(contains(msg, "train-labels-idx1-ubyte.gz"));
  }
  SUBCASE("missing files and directories") {
    TempDir dir;
    write_file(dir / "train-images-idx3-ubyte", img);
    std::string msg = error_of([&] { data::MNIST ds(dir.str()); });
    CHECK(contains(msg, "train-labels-idx1-ubyte"));
    CHECK(contains(msg, dir.str()));
    msg = error_of([&] { data::MNIST ds(dir / "nowhere"); });
    CHECK(contains(msg, "does not exist"));
    msg = error_of([&] { data::MNIST ds(dir.str(), data::Split::Test); });
    CHECK(contains(msg, "t10k-images-idx3-ubyte"));
  }
}

TEST_CASE("data: the installed Fashion-MNIST loads (skipped when absent)") {
  if (!fs::exists(fs::path(data::MNIST::kDefaultRoot) / "train-labels-idx1-ubyte.gz")) {
    MESSAGE("skipped: Fashion-MNIST is not installed at " << data::MNIST::kDefaultRoot
                                                          << " (apt-get install dataset-fashion-mnist)");
    return;
  }
  data::MNIST train;  // the default root
  data::MNIST test(data::MNIST::kDefaultRoot, data::Split::Test);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.rows() == 28);
  CHECK(train.cols() == 28);
  for (const data::MNIST* ds : {&train, &test}) {
    std::array<int64_t, 10> per_class{};
    for (uint8_t l : ds->labels()) {
      REQUIRE(l < 10);
      ++per_class[l];
    }
    for (int64_t k : per_class) CHECK(k == ds->size() / 10);  // Fashion-MNIST is balanced
  }
  // The first images (sums of their bytes, and labels) as the files hold them.
  auto byte_sum = [](const data::MNIST& ds) {
    return std::accumulate(ds.pixels().begin(), ds.pixels().begin() + 784, int64_t(0));
  };
  CHECK(byte_sum(train) == 76247);
  CHECK(byte_sum(test) == 33456);
  CHECK(train.get(0).target.item<int64_t>() == 9);
  CHECK(test.get(1).target.item<int64_t>() == 2);
  double s = train.get(0).data.sum().item<double>();
  CHECK(s == doctest::Approx(76247.0 / 255.0).epsilon(1e-5));

  // One full epoch through the loader: every sample once, the shapes the training loop expects.
  data::DataLoader loader(test, data::DataLoaderOptions().batch_size(64).shuffle(true).seed(1));
  CHECK(loader.size() == 157);
  int64_t seen = 0, batches = 0;
  std::vector<int64_t> count(10, 0);
  for (auto& batch : loader) {
    CHECK(batch.data.shape() == tg::Shape{batch.target.size(0), 1, 28, 28});
    for (int64_t y : batch.target.to_vector<int64_t>()) ++count[size_t(y)];
    seen += batch.target.size(0);
    ++batches;
  }
  CHECK(seen == 10000);
  CHECK(batches == 157);
  CHECK(count == std::vector<int64_t>(10, 1000));
}

// ================================ DataLoader ================================

TEST_CASE("data: DataLoader batch sizes, drop_last and the last partial batch") {
  for (int workers : {0, 1, 2}) {
    CAPTURE(workers);
    auto ds = std::make_shared<Range>(10);
    data::DataLoader keep(ds, data::DataLoaderOptions().batch_size(3).num_workers(workers));
    CHECK(keep.size() == 4);
    Batches b = epoch_of(keep);
    REQUIRE(b.target.size() == 4);
    CHECK(b.target[0] == std::vector<int64_t>{0, 1, 2});
    CHECK(b.target[3] == std::vector<int64_t>{9});
    CHECK(b.data[3] == std::vector<double>{9, -9});
    CHECK(b.data[1] == std::vector<double>{3, -3, 4, -4, 5, -5});

    data::DataLoader drop(ds, data::DataLoaderOptions().batch_size(3).drop_last(true).num_workers(workers));
    CHECK(drop.size() == 3);
    b = epoch_of(drop);
    CHECK(b.target.size() == 3);
    CHECK(flat(b) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});

    data::DataLoader big(ds, data::DataLoaderOptions().batch_size(64).drop_last(true).num_workers(workers));
    CHECK(big.size() == 0);
    CHECK(epoch_of(big).target.empty());

    data::DataLoader exact(ds, data::DataLoaderOptions().batch_size(5).num_workers(workers));
    b = epoch_of(exact);
    CHECK(b.target.size() == 2);
    CHECK(b.target[1].size() == 5);
  }
}

TEST_CASE("data: DataLoader batches have the shapes of stacked samples") {
  TempDir dir;
  write_split(dir, "train", 10, 28, 28, false);
  data::MNIST ds(dir.str());
  data::DataLoader loader(ds, data::DataLoaderOptions().batch_size(4));
  std::vector<tg::Shape> shapes;
  for (auto& batch : loader) {
    shapes.push_back(batch.data.shape());
    CHECK(batch.data.dtype() == tg::kFloat32);
    CHECK(batch.target.dtype() == tg::kInt64);
    CHECK(batch.target.shape() == tg::Shape{batch.data.size(0)});
  }
  CHECK(shapes == std::vector<tg::Shape>{{4, 1, 28, 28}, {4, 1, 28, 28}, {2, 1, 28, 28}});
  // The fast batch path and get() agree, and so does the transform path (identity transform).
  data::DataLoader plain(ds, data::DataLoaderOptions().batch_size(10));
  data::DataLoader mapped(ds, data::DataLoaderOptions().batch_size(10).transform(
                                  [](const Tensor& x, std::mt19937_64&) { return x; }));
  data::Example a = *plain.next(), b = *mapped.next();
  CHECK(a.data.to_vector<float>() == b.data.to_vector<float>());
  CHECK(a.target.to_vector<int64_t>() == b.target.to_vector<int64_t>());
  CHECK(a.data.to_vector<float>() == tg::stack({ds.get(0).data, ds.get(1).data, ds.get(2).data, ds.get(3).data,
                                                ds.get(4).data, ds.get(5).data, ds.get(6).data, ds.get(7).data,
                                                ds.get(8).data, ds.get(9).data})
                                         .to_vector<float>());
}

TEST_CASE("data: DataLoader shuffles every sample exactly once per epoch") {
  auto ds = std::make_shared<Range>(103);
  data::DataLoader loader(ds, data::DataLoaderOptions().batch_size(8).shuffle(true).seed(5));
  std::vector<int64_t> identity(103);
  std::iota(identity.begin(), identity.end(), 0);
  std::vector<std::vector<int64_t>> orders;
  for (int epoch = 0; epoch < 3; ++epoch) {
    Batches b = epoch_of(loader);
    CHECK(loader.epoch() == epoch);
    CHECK(b.target.size() == 13);
    std::vector<int64_t> order = flat(b);
    CHECK(order == loader.order(epoch));
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == identity);
    CHECK(order != identity);
    // data and target of a sample stay together
    for (size_t k = 0; k < b.data.size(); ++k)
      for (size_t j = 0; j < b.target[k].size(); ++j) CHECK(b.data[k][2 * j] == double(b.target[k][j]));
    orders.push_back(order);
  }
  CHECK(orders[0] != orders[1]);  // reshuffled each epoch
  CHECK(orders[1] != orders[2]);
}

TEST_CASE("data: DistributedSampler shards: same permutation on every rank, disjoint, padded as PyTorch") {
  // 10 samples over 3 ranks: 4 each, the order padded with its first 2 entries (PyTorch's rule).
  const int64_t n = 10, ranks = 3;
  std::vector<std::vector<int64_t>> shards;
  for (int64_t r = 0; r < ranks; ++r) {
    data::DistributedSampler s(n, ranks, r, data::DistributedSamplerOptions().seed(7));
    CHECK(s.size() == 4);
    CHECK(s.total_size() == 12);
    shards.push_back(s.indices(0));
  }
  // Interleaving the shards gives back the padded permutation: a permutation of 0..9 followed by its first two.
  std::vector<int64_t> whole;
  for (size_t k = 0; k < 4; ++k)
    for (int64_t r = 0; r < ranks; ++r) whole.push_back(shards[size_t(r)][k]);
  std::vector<int64_t> perm(whole.begin(), whole.begin() + n), sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(static_cast<size_t>(n));
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(sorted == identity);
  CHECK(perm != identity);
  CHECK(whole[10] == perm[0]);
  CHECK(whole[11] == perm[1]);

  // Without shuffling: rank r takes r, r + R, ... of 0..n-1 padded from the start.
  data::DistributedSampler plain(n, ranks, 2, data::DistributedSamplerOptions().shuffle(false));
  CHECK(plain.indices(0) == std::vector<int64_t>{2, 5, 8, 1});
  // drop_last: 3 each, the tail cut, the shards disjoint.
  std::set<int64_t> seen;
  for (int64_t r = 0; r < ranks; ++r) {
    data::DistributedSampler d(n, ranks, r, data::DistributedSamplerOptions().shuffle(false).drop_last(true));
    CHECK(d.size() == 3);
    for (int64_t i : d.indices(0)) CHECK(seen.insert(i).second);
  }
  CHECK(seen.size() == 9);
  // Padding longer than the data set repeats the order as many times as needed.
  data::DistributedSampler tiny(2, 5, 4, data::DistributedSamplerOptions().shuffle(false));
  CHECK(tiny.indices(0) == std::vector<int64_t>{0});

  // set_epoch reshuffles, identically for the same (seed, epoch); another seed gives another order.
  data::DistributedSampler a(100, 2, 0), b(100, 2, 0), c(100, 2, 0, data::DistributedSamplerOptions().seed(1));
  a.set_epoch(3);
  CHECK(a.epoch() == 3);
  CHECK(a.indices() == b.indices(3));
  CHECK(a.indices() != b.indices(4));
  CHECK(c.indices(3) != b.indices(3));

  CHECK_THROWS_AS(data::DistributedSampler(10, 0, 0), tg::Error);
  CHECK_THROWS_AS(data::DistributedSampler(10, 2, 2), tg::Error);
  CHECK_THROWS_AS(data::DistributedSampler(-1, 2, 0), tg::Error);
  CHECK_THROWS_AS(a.set_epoch(-1), tg::Error);
}

TEST_CASE("data: DataLoader with a sampler visits its indices, and its epoch drives the sampler") {
  auto ds = std::make_shared<Range>(21);
  std::vector<int64_t> all;
  for (int64_t r = 0; r < 2; ++r) {
    auto sampler = std::make_shared<data::DistributedSampler>(21, 2, r, data::DistributedSamplerOptions().seed(3));
    data::DataLoader loader(ds, data::DataLoaderOptions().batch_size(4).sampler(sampler).num_workers(1));
    CHECK(loader.size() == 3);  // 11 samples per rank
    Batches e0 = epoch_of(loader), e1 = epoch_of(loader);
    const std::vector<int64_t> order0 = flat(e0);
    CHECK(order0 == sampler->indices(0));
    CHECK(flat(e1) == sampler->indices(1));
    CHECK(order0 != flat(e1));
    all.insert(all.end(), order0.begin(), order0.end());
  }
  CHECK(all.size() == 22);                                   // 21 padded to 22
  CHECK(std::set<int64_t>(all.begin(), all.end()).size() == 21);  // every sample, one of them twice
  auto sampler = std::make_shared<data::DistributedSampler>(21, 2, 0);
  CHECK_THROWS_AS(data::DataLoader(ds, data::DataLoaderOptions().sampler(sampler).shuffle(true)), tg::Error);
  auto too_big = std::make_shared<data::DistributedSampler>(50, 1, 0);
  data::DataLoader bad(ds, data::DataLoaderOptions().sampler(too_big));
  CHECK_THROWS_AS(bad.order(0), tg::Error);
}

TEST_CASE("data: DataLoader is deterministic for a seed, whatever the threads") {
  auto ds = std::make_shared<Range>(50);
  auto augment = [](const Tensor& x, std::mt19937_64& gen) { return x + double(data::uniform_int(gen, 0, 1000)); };
  auto run = [&](uint64_t seed, int workers, int prefetch, int epochs) {
    data::DataLoader loader(ds, data::DataLoaderOptions()
                                    .batch_size(7)
                                    .shuffle(true)
                                    .seed(seed)
                                    .num_workers(workers)
                                    .prefetch(prefetch)
                                    .transform(augment));
    std::vector<Batches> out;
    for (int e = 0; e < epochs; ++e) out.push_back(epoch_of(loader));
    return out;
  };
  auto ref = run(1, 1, 2, 2);
  CHECK(run(1, 0, 1, 2) == ref);
  CHECK(run(1, 3, 1, 2) == ref);
  CHECK(run(1, 2, 4, 2) == ref);
  CHECK(run(1, 1, 2, 2) == ref);
  CHECK(!(ref[0] == ref[1]));           // a new order and new augmentation each epoch
  CHECK(!(run(2, 1, 2, 1)[0] == ref[0]));  // another seed, another order

  // set_epoch replays an epoch exactly (resuming a run)
  data::DataLoader loader(ds, data::DataLoaderOptions().batch_size(7).shuffle(true).seed(1).transform(augment));
  loader.set_epoch(1);
  CHECK(epoch_of(loader) == ref[1]);
  CHECK(loader.epoch() == 1);

  // next() walks the same epoch as range-for, then returns nullopt and starts the next epoch
  data::DataLoader by_next(ds, data::DataLoaderOptions().batch_size(7).shuffle(true).seed(1).transform(augment));
  for (int e = 0; e < 2; ++e) {
    Batches b;
    while (auto batch = by_next.next()) {
      b.data.push_back(batch->data.to_vector<double>());
      b.target.push_back(batch->target.to_vector<int64_t>());
    }
    CHECK(b == ref[size_t(e)]);
  }

  // Without a seed the loader takes one from the global generator: manual_seed repeats it.
  tg::manual_seed(11);
  data::DataLoader u1(ds, data::DataLoaderOptions().batch_size(7).shuffle(true));
  tg::manual_seed(11);
  data::DataLoader u2(ds, data::DataLoaderOptions().batch_size(7).shuffle(true));
  CHECK(u1.seed() == u2.seed());
  CHECK(epoch_of(u1) == epoch_of(u2));
}

TEST_CASE("data: DataLoader stops cleanly when destroyed or reset mid-epoch") {
  auto slow = std::make_shared<Range>(400);
  slow->delay = std::chrono::microseconds(200);
  auto t0 = std::chrono::steady_clock::now();
  for (int workers : {1, 2}) {
    {
      data::DataLoader loader(slow, data::DataLoaderOptions().batch_size(10).num_workers(workers));
      auto b = loader.next();
      REQUIRE(b);
      CHECK(b->target.to_vector<int64_t>()[0] == 0);
    }  // destroyed with the workers mid-batch
    {
      data::DataLoader loader(slow, data::DataLoaderOptions().batch_size(10).num_workers(workers));
      for (auto& batch : loader) {
        (void)batch;
        break;  // leave the range-for early
      }
      loader.reset();
      auto b = loader.next();  // a new epoch
      REQUIRE(b);
      CHECK(loader.epoch() == 1);
    }
    { data::DataLoader never_used(slow, data::DataLoaderOptions().batch_size(10).num_workers(workers)); }
    {
      // Moved mid-epoch, the loader goes on where it was; assigned over, the old epoch stops.
      data::DataLoader a(slow, data::DataLoaderOptions().batch_size(100).num_workers(workers));
      a.next();
      data::DataLoader b = std::move(a);
      auto second = b.next();
      REQUIRE(second);
      CHECK(second->target.to_vector<int64_t>()[0] == 100);
      data::DataLoader c(slow, data::DataLoaderOptions().batch_size(100).num_workers(workers));
      c.next();
      c = std::move(b);
      auto third = c.next();
      REQUIRE(third);
      CHECK(third->target.to_vector<int64_t>()[0] == 200);
    }
  }
  // The workers stop within a batch or two of the consumer: at most prefetch batches ahead.
  slow->calls = 0;
  {
    data::DataLoader loader(slow, data::DataLoaderOptions().batch_size(10).prefetch(2));
    for (int i = 0; i < 3; ++i) loader.next();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CHECK(slow->calls.load() <= 10 * (3 + 2));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 5.0);  // a full pass would be 400 * 0.2 ms = 80 ms per loader; a hang would be forever
}

TEST_CASE("data: an exception in the worker is rethrown by next() at its batch") {
  for (int workers : {0, 1, 2}) {
    CAPTURE(workers);
    Range broken(30);
    broken.throw_at = 17;
    data::DataLoader loader(broken, data::DataLoaderOptions().batch_size(5).num_workers(workers));
    int good = 0;
    std::string msg;
    try {
      for (auto& batch : loader) {
        (void)batch;
        ++good;
      }
    } catch (const tg::Error& e) {
      msg = e.what();
    }
    CHECK(good == 3);  // batches 0-2 are whole; batch 3 holds sample 17
    CHECK(contains(msg, "sample 17 is broken"));
    // The loader is usable again: the next epoch starts from the beginning.
    auto b = loader.next();
    REQUIRE(b);
    CHECK(b->target.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  }
  // A transform that fails, and samples of mismatched shapes, surface the same way.
  Range ds(6);
  data::DataLoader bad_transform(ds, data::DataLoaderOptions().batch_size(2).transform(data::RandomCrop(3)));
  CHECK_THROWS_AS(bad_transform.next(), tg::Error);  // a [2] sample is not an image
  data::DataLoader ragged(ds, data::DataLoaderOptions().batch_size(3).transform(
                                  [](const Tensor& x, std::mt19937_64&) {
                                    return x.to_vector<double>()[0] == 1.0 ? tg::cat({x, x}) : x;  // sample 1
                                  }));
  std::string msg = error_of([&] {
    for (auto& b : ragged) (void)b;
  });
  CHECK(contains(msg, "collate"));
}

TEST_CASE("data: DataLoader validates its options") {
  auto ds = std::make_shared<Range>(4);
  CHECK_THROWS_AS(data::DataLoader(ds, data::DataLoaderOptions().batch_size(0)), tg::Error);
  CHECK_THROWS_AS(data::DataLoader(ds, data::DataLoaderOptions().num_workers(-1)), tg::Error);
  CHECK_THROWS_AS(data::DataLoader(ds, data::DataLoaderOptions().prefetch(0)), tg::Error);
  CHECK_THROWS_AS(data::DataLoader(std::shared_ptr<const data::Dataset>{}), tg::Error);
  data::DataLoader ok(ds);
  CHECK_THROWS_AS(ok.set_epoch(-1), tg::Error);
  CHECK(ok.options().batch_size() == 1);
}

// ================================ transforms ================================

TEST_CASE("data: transforms keep shapes, dtypes and their input") {
  std::mt19937_64 gen(3);
  for (tg::Dtype dt : {tg::kFloat32, tg::kFloat64}) {
    Tensor x = (image(3, 6, 5) / 30.0).to(dt);
    const std::vector<double> before = x.to_vector<double>();
    std::vector<data::Transform> all = {data::Normalize({0.1, 0.2, 0.3}, {0.5, 0.6, 0.7}),
                                        data::RandomHorizontalFlip(),
                                        data::RandomCrop(6, 5, 2),
                                        data::RandomTranslate(2, 1),
                                        data::ColorJitter(0.4, 0.4),
                                        data::Compose({data::RandomTranslate(1, 1), data::RandomHorizontalFlip()})};
    for (auto& t : all) {
      for (int rep = 0; rep < 5; ++rep) {
        Tensor y = t(x, gen);
        CHECK(y.shape() == x.shape());
        CHECK(y.dtype() == dt);
      }
    }
    CHECK(x.to_vector<double>() == before);
  }
  Tensor flat_image = tg::ones({28, 28});
  for (auto& t : std::vector<data::Transform>{data::Normalize(0.5, 0.5), data::RandomHorizontalFlip(),
                                              data::RandomCrop(28, 2), data::RandomTranslate(1, 1),
                                              data::ColorJitter(0.2)}) {
    std::string msg = error_of([&] { t(flat_image, gen); });
    CHECK(contains(msg, "[C, H, W]"));
    CHECK(contains(msg, "[28, 28]"));
  }
  CHECK_THROWS_AS(data::RandomCrop(8)(image(1, 4, 4), gen), tg::Error);  // does not fit
  CHECK_THROWS_AS(data::Normalize({0.5, 0.5}, {1.0, 1.0})(image(3, 2, 2), gen), tg::Error);
  CHECK_THROWS_AS(data::Normalize(0.5, 0.0), tg::Error);
  CHECK_THROWS_AS(data::RandomHorizontalFlip(1.5), tg::Error);
  CHECK_THROWS_AS(data::RandomCrop(0), tg::Error);
  CHECK_THROWS_AS(data::RandomTranslate(-1, 0), tg::Error);
  CHECK_THROWS_AS(data::ColorJitter(-0.1), tg::Error);
  CHECK_THROWS_AS(data::Normalize(0.5, 0.5)(tg::ones({1, 2, 2}, tg::kInt64), gen), tg::Error);
}

TEST_CASE("data: transforms keep the labels in a DataLoader") {
  TempDir dir;
  write_split(dir, "train", 20, 28, 28, true);
  data::MNIST ds(dir.str());
  auto augment = data::Compose({data::RandomCrop(28, 4), data::RandomHorizontalFlip(), data::ColorJitter(0.3, 0.3),
                                data::RandomTranslate(2, 2), data::Normalize(0.2860, 0.3530)});
  data::DataLoader plain(ds, data::DataLoaderOptions().batch_size(6).shuffle(true).seed(9));
  data::DataLoader mapped(ds, data::DataLoaderOptions().batch_size(6).shuffle(true).seed(9).transform(augment));
  Batches a = epoch_of(plain), b = epoch_of(mapped);
  CHECK(a.target == b.target);
  CHECK(a.data != b.data);
  REQUIRE(b.data.size() == 4);
  CHECK(b.data[0].size() == 6 * 784);
}

TEST_CASE("data: RandomHorizontalFlip is an exact mirror") {
  Tensor x = image(2, 3, 4);
  std::mt19937_64 gen(1);
  std::vector<double> v = x.to_vector<double>(), y = data::RandomHorizontalFlip(1.0)(x, gen).to_vector<double>();
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t w = 0; w < 4; ++w) CHECK(y[size_t((c * 3 + r) * 4 + w)] == v[size_t((c * 3 + r) * 4 + 3 - w)]);
  CHECK(data::RandomHorizontalFlip(0.0)(x, gen).to_vector<double>() == v);
  // Flipping twice is the identity; p = 0.5 flips about half the time.
  data::RandomHorizontalFlip flip(1.0);
  CHECK(flip(flip(x, gen), gen).to_vector<double>() == v);
  int flipped = 0;
  data::RandomHorizontalFlip half;
  for (int i = 0; i < 400; ++i) flipped += half(x, gen).to_vector<double>() != v;
  CHECK(flipped > 150);
  CHECK(flipped < 250);
}

TEST_CASE("data: RandomCrop with padding moves pixels as expected") {
  const int64_t h = 5, w = 6, pad = 2;
  Tensor x = image(2, h, w);
  std::vector<double> v = x.to_vector<double>();
  std::set<std::pair<int64_t, int64_t>> offsets;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 gen(seed), replay(seed);
    std::vector<double> y = data::RandomCrop(h, w, pad)(x, gen).to_vector<double>();
    // The window's top-left in padded coordinates, drawn as the transform draws it.
    int64_t top = data::uniform_int(replay, 0, 2 * pad), left = data::uniform_int(replay, 0, 2 * pad);
    offsets.insert({top, left});
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t r = 0; r < h; ++r)
        for (int64_t q = 0; q < w; ++q) {
          int64_t sr = r + top - pad, sq = q + left - pad;  // source pixel
          double want = sr >= 0 && sr < h && sq >= 0 && sq < w ? v[size_t((c * h + sr) * w + sq)] : 0.0;
          REQUIRE(y[size_t((c * h + r) * w + q)] == want);
        }
  }
  CHECK(offsets.size() == 25);  // every shift in [-2, 2]^2 occurs
  // No padding, a smaller window: the values are one contiguous block of the input.
  std::mt19937_64 gen(4);
  Tensor crop = data::RandomCrop(2, 3, 0)(image(1, 4, 4), gen);
  CHECK(crop.shape() == tg::Shape{1, 2, 3});
  std::vector<double> cv = crop.to_vector<double>();
  CHECK(cv[1] == cv[0] + 1);
  CHECK(cv[3] == cv[0] + 4);
  CHECK(cv[5] == cv[0] + 6);
  // Centre of a window with zero padding and equal size: the identity.
  CHECK(data::RandomCrop(4, 0)(image(1, 4, 4), gen).to_vector<double>() == image(1, 4, 4).to_vector<double>());
}

TEST_CASE("data: RandomTranslate shifts by whole pixels and fills with zeros") {
  Tensor x = image(1, 4, 5);
  std::vector<double> v = x.to_vector<double>();
  std::set<std::pair<int64_t, int64_t>> shifts;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    std::mt19937_64 gen(seed), replay(seed);
    std::vector<double> y = data::RandomTranslate(2, 1)(x, gen).to_vector<double>();
    int64_t dx = data::uniform_int(replay, -2, 2), dy = data::uniform_int(replay, -1, 1);
    shifts.insert({dx, dy});
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t q = 0; q < 5; ++q) {
        int64_t sr = r - dy, sq = q - dx;
        double want = sr >= 0 && sr < 4 && sq >= 0 && sq < 5 ? v[size_t(sr * 5 + sq)] : 0.0;
        REQUIRE(y[size_t(r * 5 + q)] == want);
      }
  }
  CHECK(shifts.size() == 15);
  std::mt19937_64 gen(0);
  CHECK(data::RandomTranslate(0, 0)(x, gen).to_vector<double>() == v);
}

TEST_CASE("data: Normalize and ColorJitter values") {
  std::mt19937_64 gen(0);
  Tensor x = tg::tensor({0.0, 0.5, 1.0, 0.25, 0.2, 0.4, 0.6, 0.8}, {2, 2, 2});
  std::vector<double> y = data::Normalize({0.5, 0.4}, {0.25, 0.2})(x, gen).to_vector<double>();
  std::vector<double> want = {-2.0, 0.0, 2.0, -1.0, -1.0, 0.0, 1.0, 2.0};
  for (size_t i = 0; i < want.size(); ++i) CHECK(y[i] == doctest::Approx(want[i]).epsilon(1e-6));
  y = data::Normalize(0.5, 0.5)(x, gen).to_vector<double>();
  CHECK(y[2] == doctest::Approx(1.0));
  CHECK(y[4] == doctest::Approx(-0.6));

  // ColorJitter: replay the factors it draws and compute the result by hand.
  Tensor g = tg::tensor({0.1, 0.2, 0.6, 0.9}, {1, 2, 2}, tg::kFloat64);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 gen2(seed), replay(seed);
    std::vector<double> out = data::ColorJitter(0.5, 0.8)(g, gen2).to_vector<double>();
    double b = data::uniform_real(replay, 0.5, 1.5), c = data::uniform_real(replay, 0.2, 1.8);
    std::vector<double> px = {0.1, 0.2, 0.6, 0.9};
    double mean = 0;
    for (double& p : px) {
      p = std::clamp(p * b, 0.0, 1.0);
      mean += p / 4;
    }
    for (size_t i = 0; i < 4; ++i) CHECK(out[i] == doctest::Approx(std::clamp(c * px[i] + (1 - c) * mean, 0.0, 1.0)));
  }
  // Disabled jitter is the identity; jittered values stay in [0, 1].
  CHECK(data::ColorJitter()(g, gen).to_vector<double>() == g.to_vector<double>());
  Tensor rgb = tg::rand({3, 8, 8});
  for (int i = 0; i < 20; ++i) {
    Tensor out = data::ColorJitter(0.9, 0.9)(rgb, gen);
    CHECK(out.min().item<double>() >= 0.0);
    CHECK(out.max().item<double>() <= 1.0);
  }
}

TEST_CASE("data: uniform_int covers its range without bias in a small sample") {
  std::mt19937_64 gen(42);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) {
    int64_t k = data::uniform_int(gen, -3, 3);
    REQUIRE(k >= -3);
    REQUIRE(k <= 3);
    ++counts[size_t(k + 3)];
  }
  for (int c : counts) CHECK(std::abs(c - 1000) < 150);
  for (int i = 0; i < 100; ++i) CHECK(data::uniform_int(gen, 5, 5) == 5);
  for (int i = 0; i < 1000; ++i) {
    double u = data::uniform01(gen);
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

// ================================ metrics ================================

TEST_CASE("data: accuracy and top-k against hand-computed values") {
  // 4 samples, 4 classes. Rows' rankings: s0: 2>1>0>3, s1: 0>3>1>2, s2: 1=3>0>2, s3: 3>2>1>0.
  Tensor logits = tg::tensor({0.1, 0.5, 0.9, -1.0,   //
                              2.0, 0.0, -1.0, 1.0,   //
                              0.0, 3.0, -2.0, 3.0,   //
                              -3.0, -2.0, -1.0, 0.0},
                             {4, 4});
  Tensor target = tg::tensor({2, 3, 3, 0}, {4}, tg::kInt64);
  // top-1: s0 right (2), s1 wrong (0), s2 wrong (tie 1 = 3 goes to the lower index, 1), s3 wrong.
  CHECK(tg::metrics::correct(logits, target) == 1);
  CHECK(tg::metrics::accuracy(logits, target) == doctest::Approx(0.25));
  // top-2: s0, s1 (3 is second), s2 (3 is second) right; s3 wrong (0 is last).
  CHECK(tg::metrics::accuracy(logits, target, 2) == doctest::Approx(0.75));
  CHECK(tg::metrics::accuracy(logits, target, 3) == doctest::Approx(0.75));
  CHECK(tg::metrics::accuracy(logits, target, 4) == doctest::Approx(1.0));
  // float32 logits and predictions give the same
  CHECK(tg::metrics::accuracy(logits.to(tg::kFloat32), target) == doctest::Approx(0.25));
  CHECK(tg::metrics::accuracy(tg::argmax(logits, 1), target) == doctest::Approx(0.25));

  // top-5 over 10 classes: the target's rank decides.
  std::vector<double> v(2 * 10);
  for (int j = 0; j < 10; ++j) v[size_t(j)] = double(j), v[size_t(10 + j)] = double(-j);
  Tensor wide = tg::tensor(v, {2, 10});
  // row 0 ranks 9, 8, ..., so class 5 is 5th; row 1 ranks 0, 1, ..., so class 5 is 6th.
  CHECK(tg::metrics::accuracy(wide, tg::tensor({5, 5}, {2}, tg::kInt64), 5) == doctest::Approx(0.5));
  CHECK(tg::metrics::accuracy(wide, tg::tensor({5, 4}, {2}, tg::kInt64), 5) == doctest::Approx(1.0));
  CHECK(tg::metrics::accuracy(wide, tg::tensor({4, 5}, {2}, tg::kInt64), 5) == doctest::Approx(0.0));

  CHECK_THROWS_AS(tg::metrics::accuracy(logits, target, 0), tg::Error);
  CHECK_THROWS_AS(tg::metrics::accuracy(logits, target, 5), tg::Error);
  CHECK_THROWS_AS(tg::metrics::accuracy(logits, tg::tensor({0, 1, 2}, {3}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::metrics::accuracy(logits, tg::tensor({0, 1, 2, 4}, {4}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::metrics::accuracy(logits, target.to(tg::kFloat32)), tg::Error);
  CHECK_THROWS_AS(tg::metrics::accuracy(tg::zeros({0, 4}), tg::zeros({0}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::metrics::accuracy(tg::argmax(logits, 1), target, 2), tg::Error);
}

TEST_CASE("data: confusion_matrix rows are the true class") {
  Tensor target = tg::tensor({0, 0, 1, 1, 2, 2, 2}, {7}, tg::kInt64);
  Tensor pred = tg::tensor({0, 1, 1, 1, 0, 2, 1}, {7}, tg::kInt64);
  Tensor cm = tg::metrics::confusion_matrix(pred, target, 3);
  CHECK(cm.dtype() == tg::kInt64);
  CHECK(cm.shape() == tg::Shape{3, 3});
  CHECK(cm.to_vector<int64_t>() == std::vector<int64_t>{1, 1, 0,  //
                                                        0, 2, 0,  //
                                                        1, 1, 1});
  // The same from logits (argmax per row).
  std::vector<double> v(7 * 3, 0.0);
  std::vector<int64_t> p = pred.to_vector<int64_t>();
  for (size_t i = 0; i < 7; ++i) v[i * 3 + size_t(p[i])] = 1.0;
  CHECK(tg::metrics::confusion_matrix(tg::tensor(v, {7, 3}), target, 3).to_vector<int64_t>() ==
        cm.to_vector<int64_t>());
  // The diagonal over N is the accuracy.
  CHECK(tg::metrics::accuracy(pred, target) == doctest::Approx(4.0 / 7.0));
  CHECK_THROWS_AS(tg::metrics::confusion_matrix(pred, target, 2), tg::Error);  // class 2 out of range
  CHECK_THROWS_AS(tg::metrics::confusion_matrix(tg::tensor(v, {7, 3}), target, 4), tg::Error);
  CHECK_THROWS_AS(tg::metrics::confusion_matrix(pred, target, 0), tg::Error);
}

namespace {

// tests/golden/metrics.txt (tests/golden/generate_metrics.py): per case, the inputs of
// confusion_matrix and four outputs: the confusion matrix, iou, mean_iou, pixel_accuracy.
struct MetricsCase {
  std::string name;
  std::vector<Tensor> inputs, outputs;
};

std::vector<MetricsCase> metrics_cases() {
  std::ifstream f(std::string(TAPEGRAD_GOLDEN_DIR) + "/metrics.txt");
  REQUIRE(f);
  std::vector<MetricsCase> cases;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string kind;
    is >> kind;
    if (kind == "case") cases.emplace_back(), is >> cases.back().name;
    else if (kind == "input") cases.back().inputs.push_back(golden::parse_tensor(is));
    else if (kind == "output") cases.back().outputs.push_back(golden::parse_tensor(is));
  }
  return cases;
}

}  // namespace

TEST_CASE("data: segmentation metrics against PyTorch (confusion_matrix on [N, C, H, W], iou, mean_iou)") {
  const auto cases = metrics_cases();
  REQUIRE(cases.size() == 2);
  for (const MetricsCase& c : cases) {
    CAPTURE(c.name);
    REQUIRE(c.inputs.size() == 2);
    REQUIRE(c.outputs.size() == 4);
    const int64_t k = c.outputs[0].size(0);
    for (tg::Dtype dt : {tg::kFloat64, tg::kFloat32}) {
      const Tensor scores = c.inputs[0].dtype() == tg::kInt64 ? c.inputs[0] : c.inputs[0].to(dt);
      const Tensor cm = tg::metrics::confusion_matrix(scores, c.inputs[1], k);
      CHECK(cm.dtype() == tg::kInt64);
      CHECK(cm.to_vector<int64_t>() == c.outputs[0].to_vector<int64_t>());
      CHECK(golden::mismatch(tg::metrics::iou(cm), c.outputs[1], 1e-12, 1e-12) <= 1.0);
      CHECK(tg::metrics::mean_iou(cm) == doctest::Approx(c.outputs[2].item<double>()).epsilon(1e-12));
      CHECK(tg::metrics::pixel_accuracy(cm) == doctest::Approx(c.outputs[3].item<double>()).epsilon(1e-12));
    }
  }
  // The absent class has a NaN IoU and is left out of the mean; the predicted-only class counts as 0.
  const Tensor iou = tg::metrics::iou(tg::metrics::confusion_matrix(cases[1].inputs[0], cases[1].inputs[1], 5));
  CHECK(std::isnan(iou.to_vector<double>()[3]));
  CHECK(iou.to_vector<double>()[4] == 0.0);
}

TEST_CASE("data: segmentation metrics by hand and bad input") {
  // 2 x 2 image, 3 classes: target [[0, 0], [1, 2]], prediction [[0, 1], [1, 1]].
  const Tensor target = tg::tensor({0, 0, 1, 2}, {1, 2, 2}, tg::kInt64);
  const Tensor pred = tg::tensor({0, 1, 1, 1}, {1, 2, 2}, tg::kInt64);
  const Tensor cm = tg::metrics::confusion_matrix(pred, target, 3);
  CHECK(cm.to_vector<int64_t>() == std::vector<int64_t>{1, 1, 0, 0, 1, 0, 0, 1, 0});
  // class 0: 1 / (2 + 1 - 1); class 1: 1 / (1 + 3 - 1); class 2: 0 / (1 + 0 - 0)
  const std::vector<double> iou = tg::metrics::iou(cm).to_vector<double>();
  CHECK(iou[0] == doctest::Approx(0.5));
  CHECK(iou[1] == doctest::Approx(1.0 / 3.0));
  CHECK(iou[2] == 0.0);
  CHECK(tg::metrics::mean_iou(cm) == doctest::Approx((0.5 + 1.0 / 3.0) / 3.0));
  CHECK(tg::metrics::pixel_accuracy(cm) == doctest::Approx(0.5));
  // One-hot scores [N, C, H, W] give the same matrix; ties go to the lower class, as argmax.
  std::vector<double> v(12, 0.0);
  const std::vector<int64_t> p = pred.to_vector<int64_t>();
  for (size_t i = 0; i < 4; ++i) v[size_t(p[i]) * 4 + i] = 1.0;
  CHECK(tg::metrics::confusion_matrix(tg::tensor(v, {1, 3, 2, 2}), target, 3).to_vector<int64_t>() ==
        cm.to_vector<int64_t>());
  CHECK(tg::metrics::confusion_matrix(tg::zeros({1, 3, 2, 2}), target, 3).to_vector<int64_t>() ==
        std::vector<int64_t>{2, 0, 0, 1, 0, 0, 1, 0, 0});

  CHECK_THROWS_AS(tg::metrics::confusion_matrix(tg::zeros({1, 4, 2, 2}), target, 3), tg::Error);  // C != classes
  CHECK_THROWS_AS(tg::metrics::confusion_matrix(tg::zeros({1, 3, 2, 3}), target, 3), tg::Error);  // H, W differ
  CHECK_THROWS_AS(tg::metrics::confusion_matrix(pred.reshape({1, 4}), target, 3), tg::Error);
  CHECK_THROWS_AS(tg::metrics::confusion_matrix(pred, target, 2), tg::Error);  // class 2 out of range
  CHECK_THROWS_AS(tg::metrics::confusion_matrix(pred, target, 0), tg::Error);
  CHECK_THROWS_AS(tg::metrics::iou(tg::zeros({2, 3}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::metrics::iou(tg::tensor({1, -1, 0, 1}, {2, 2}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::metrics::mean_iou(tg::zeros({3, 3}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::metrics::pixel_accuracy(tg::zeros({3, 3}, tg::kInt64)), tg::Error);
  try {
    tg::metrics::confusion_matrix(tg::zeros({1, 4, 2, 2}), target, 3);
  } catch (const tg::Error& e) {
    CHECK(std::string(e.what()).find("[1, 3, 2, 2]") != std::string::npos);
    CHECK(std::string(e.what()).find("[1, 4, 2, 2]") != std::string::npos);
  }
}

// ---- canvases (segmentation and detection data) ----

namespace {

// Items whose pixels say which item they are: sample i is a 12 x 10 image with a solid 8 x 6
// rectangle of value 0.5 + i / 100 at rows 2-9, columns 2-7, label i % 10.
struct Blocks : data::Dataset {
  int64_t size() const override { return 40; }
  data::Example get(int64_t i) const override {
    Tensor img = tg::zeros({1, 12, 10});
    float* p = img.data_ptr<float>();
    for (int64_t y = 2; y < 10; ++y)
      for (int64_t x = 2; x < 8; ++x) p[y * 10 + x] = float(0.5 + double(i) / 100);
    return {img, tg::scalar_tensor(double(i % 10), tg::kInt64)};
  }
};

}  // namespace

TEST_CASE("data: Canvases are deterministic, per canvas, and their labels match their pixels") {
  Blocks blocks;
  auto opts = data::CanvasOptions().size(48).items(2, 5).scale(1.0, 2.0).max_iou(0.0).seed(3);
  data::Canvases a(blocks, 30, opts), b(blocks, 10, opts), other(blocks, 10, opts.seed(4));
  REQUIRE(a.size() == 30);
  CHECK(a.images().shape() == tg::Shape{30, 1, 48, 48});
  CHECK(a.masks().shape() == tg::Shape{30, 48, 48});
  CHECK(a.masks().dtype() == tg::kInt64);
  // Canvas i depends on the seed and i only.
  for (int64_t i = 0; i < 10; ++i) {
    CHECK(a.get(i).data.to_vector<float>() == b.get(i).data.to_vector<float>());
    CHECK(a.boxes(i).to_vector<float>() == b.boxes(i).to_vector<float>());
  }
  bool differs = false;
  for (int64_t i = 0; i < 10; ++i) differs |= a.get(i).data.to_vector<float>() != other.get(i).data.to_vector<float>();
  CHECK(differs);

  // Exact at scale 1 (a solid rectangle's tight box is all foreground); with resizing, the box
  // is tight (each edge touches the item) and every labelled pixel is of its item's value.
  data::Canvases exact(blocks, 30, data::CanvasOptions().size(48).items(2, 5).max_iou(0.0).seed(5));
  for (const data::Canvases* c : {&a, &exact}) {
    const bool solid = c == &exact;
    int64_t total_items = 0;
    for (int64_t i = 0; i < c->size(); ++i) {
      data::Example ex = c->get(i);
      CHECK(ex.data.shape() == tg::Shape{1, 48, 48});
      std::vector<float> px = ex.data.to_vector<float>();
      std::vector<int64_t> m = ex.target.to_vector<int64_t>();
      std::vector<float> boxes = c->boxes(i).to_vector<float>();
      std::vector<int64_t> labels = c->labels(i).to_vector<int64_t>(), sources = c->sources(i).to_vector<int64_t>();
      int64_t k = int64_t(labels.size());
      REQUIRE(c->boxes(i).shape() == tg::Shape{k, 4});
      CHECK(k <= 5);
      total_items += k;
      for (int64_t j = 0; j < k; ++j) {
        int64_t x1 = int64_t(boxes[j * 4]), y1 = int64_t(boxes[j * 4 + 1]);
        int64_t x2 = int64_t(boxes[j * 4 + 2]), y2 = int64_t(boxes[j * 4 + 3]);
        CHECK(labels[j] == sources[j] % 10);
        CHECK(x2 - x1 >= (solid ? 6 : 5));
        CHECK(y2 - y1 >= (solid ? 8 : 7));
        CHECK(x2 - x1 <= 13);
        CHECK(y2 - y1 <= 17);
        const int64_t mine = labels[j] + 1;
        int64_t on_left = 0, on_right = 0, on_top = 0, on_bottom = 0, inside = 0;
        for (int64_t y = y1; y < y2; ++y)
          for (int64_t x = x1; x < x2; ++x) {
            bool fg = m[y * 48 + x] == mine;
            inside += fg;
            on_left += fg && x == x1, on_right += fg && x == x2 - 1, on_top += fg && y == y1, on_bottom += fg && y == y2 - 1;
            if (fg) CHECK(px[y * 48 + x] >= 0.2f);
          }
        CHECK((on_left > 0 && on_right > 0 && on_top > 0 && on_bottom > 0));
        if (solid) {
          CHECK(inside == (x2 - x1) * (y2 - y1));
          CHECK(px[y1 * 48 + x1] == doctest::Approx(0.5 + double(sources[j]) / 100).epsilon(1e-6));
        }
      }
      // Every labelled pixel lies in a box of its class; the rest is background.
      for (int64_t y = 0; y < 48; ++y)
        for (int64_t x = 0; x < 48; ++x) {
          bool in_box = false;
          for (int64_t j = 0; j < k; ++j)
            in_box |= x >= boxes[j * 4] && x < boxes[j * 4 + 2] && y >= boxes[j * 4 + 1] && y < boxes[j * 4 + 3] &&
                      m[y * 48 + x] == labels[j] + 1;
          CHECK((m[y * 48 + x] != 0) == in_box);
        }
    }
    CHECK(total_items >= 2 * 30);
  }
  // Batches are the stacked canvases.
  auto batch = a.get_batch({4, 0, 4});
  CHECK(batch.data.shape() == tg::Shape{3, 1, 48, 48});
  CHECK(batch.target.shape() == tg::Shape{3, 48, 48});
  CHECK(batch.target.to_vector<int64_t>()[0] == a.get(4).target.to_vector<int64_t>()[0]);
}

TEST_CASE("data: Canvases reject bad options and bad sources with tg::Errors that name them") {
  Blocks blocks;
  auto thrown = [](auto&& f) {
    try {
      f();
    } catch (const tg::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(thrown([&] { data::Canvases(blocks, 2, data::CanvasOptions().items(3, 2)); }).find("min_items") !=
        std::string::npos);
  CHECK(thrown([&] { data::Canvases(blocks, 2, data::CanvasOptions().scale(0, 1)); }).find("scale") !=
        std::string::npos);
  CHECK(thrown([&] { data::Canvases(blocks, 2, data::CanvasOptions().size(8)); }).find("larger than the 8x8") !=
        std::string::npos);
  data::Canvases ok(blocks, 2);
  CHECK(thrown([&] { ok.get(2); }).find("index 2 is out of range") != std::string::npos);
  CHECK(thrown([&] { ok.boxes(-1); }).find("out of range") != std::string::npos);
  Range range(5);  // [1] float data, not an image
  CHECK(thrown([&] { data::Canvases(range, 1); }).find("[1, h, w] image") != std::string::npos);
}

// ---- Subset and batch transforms ----

TEST_CASE("data: Subset picks samples by index, batches through the dataset, and checks its indices") {
  auto range = std::make_shared<Range>(10);
  data::Subset sub(range, {7, 2, 2, 9});
  CHECK(sub.size() == 4);
  CHECK(sub.get(0).target.item<int64_t>() == 7);
  CHECK(sub.get(3).data.to_vector<double>() == std::vector<double>{9, -9});
  auto batch = sub.get_batch({1, 0, 3});
  CHECK(batch.target.to_vector<int64_t>() == std::vector<int64_t>{2, 7, 9});
  CHECK(data::Subset::range(3) == std::vector<int64_t>{0, 1, 2});
  data::Subset first(range, data::Subset::range(4));
  data::DataLoader loader(std::make_shared<data::Subset>(first), data::DataLoaderOptions().batch_size(3).num_workers(0));
  CHECK(flat(epoch_of(loader)) == std::vector<int64_t>{0, 1, 2, 3});
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const tg::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message([&] { data::Subset(range, {0, 10}); }).find("index 10 (position 1) is out of range") !=
        std::string::npos);
  CHECK(message([&] { sub.get(4); }).find("sample 4 is out of range for a subset of 4") != std::string::npos);
  CHECK(message([&] { data::Subset(nullptr, {}); }).find("null") != std::string::npos);
}

TEST_CASE("data: a batch transform sees whole batches, seeded by (seed, epoch, batch), on any worker count") {
  auto range = std::make_shared<Range>(20);
  // Adds a per-batch random offset to the data and doubles the targets.
  data::BatchTransform shift = [](data::Example b, std::mt19937_64& gen) {
    b.data = b.data + double(data::uniform_int(gen, 0, 1000));
    b.target = b.target * 2;
    return b;
  };
  auto run = [&](int workers) {
    data::DataLoader loader(range, data::DataLoaderOptions().batch_size(6).shuffle(true).seed(3).num_workers(workers)
                                       .batch_transform(shift));
    std::vector<Batches> epochs;
    for (int e = 0; e < 2; ++e) epochs.push_back(epoch_of(loader));
    return epochs;
  };
  std::vector<Batches> a = run(0), b = run(2), c = run(3);
  CHECK(a[0] == b[0]);
  CHECK(a[1] == c[1]);
  CHECK(!(a[0] == a[1]));
  for (size_t k = 0; k < a[0].target.size(); ++k) {
    const auto& d = a[0].data[k];
    const auto& t = a[0].target[k];
    REQUIRE(d.size() == 2 * t.size());
    // data = {i + s, -i + s} with target 2i: one offset s per batch.
    const double s = d[0] - double(t[0] / 2);
    for (size_t j = 0; j < t.size(); ++j) {
      CHECK(t[j] % 2 == 0);
      CHECK(d[2 * j] == double(t[j] / 2) + s);
      CHECK(d[2 * j + 1] == -double(t[j] / 2) + s);
    }
  }
  // A batch transform that throws reaches the caller.
  data::DataLoader bad(range, data::DataLoaderOptions().batch_size(5).batch_transform(
                                  [](data::Example, std::mt19937_64&) -> data::Example { throw tg::Error("no"); }));
  CHECK_THROWS_AS(epoch_of(bad), tg::Error);
}
