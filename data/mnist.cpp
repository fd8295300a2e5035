// IDX reading (plain or gzipped through zlib's gzread, which passes plain files through) and the
// MNIST dataset. Everything in the header is validated before the data is trusted: a corrupt
// header must give a clear tg::Error, not a 4 GB allocation or an out-of-bounds read.
#include "mnist.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

namespace tg::data {
namespace {

constexpr uint32_t kUnsignedByte = 0x08;           // the IDX type code of uint8 data
constexpr size_t kChunk = size_t(16) << 20;        // read (and grow the buffer) 16 MB at a time
constexpr uint64_t kMaxBytes = uint64_t(1) << 40;  // a header asking for more is corrupt

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool dir_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    errno = 0;
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) {
      int err = errno;
      throw Error(fmt::format("read_idx: cannot open '{}': {}", path,
                              err ? std::generic_category().message(err) : "out of memory"));
    }
    gzbuffer(f_, 1 << 17);
  }
  ~GzReader() { gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  /// Reads up to n bytes; fewer only at the end of the data. A damaged gzip stream throws.
  size_t read(void* buf, size_t n) {
    size_t got = 0;
    auto* p = static_cast<char*>(buf);
    while (got < n) {
      unsigned want = unsigned(std::min<size_t>(n - got, size_t(1) << 30));
      int r = gzread(f_, p + got, want);
      if (r < 0) fail();
      if (r == 0) break;
      got += size_t(r);
    }
    // gzread returns what it decoded before an error; a truncated stream shows up here.
    int errnum = Z_OK;
    gzerror(f_, &errnum);
    if (errnum != Z_OK && errnum != Z_BUF_ERROR) fail();
    return got;
  }
  /// True when the file is not gzip-compressed (zlib passes it through as it is).
  bool plain() const { return gzdirect(f_) == 1; }
  /// Non-empty when the gzip stream ended early ("unexpected end of file").
  std::string stream_error() const {
    int errnum = Z_OK;
    const char* msg = gzerror(f_, &errnum);
    return errnum == Z_OK ? "" : strip_path(msg);
  }

 private:
  [[noreturn]] void fail() const {
    int errnum = Z_OK;
    const char* msg = gzerror(f_, &errnum);
    std::string what = errnum == Z_ERRNO ? std::strerror(errno) : strip_path(msg);
    throw Error(fmt::format("read_idx: '{}' cannot be read (corrupt gzip data?): {}", path_, what));
  }
  // zlib prefixes its messages with "path: "; ours name the file already.
  std::string strip_path(const char* msg) const {
    std::string m = msg ? msg : "";
    return m.compare(0, path_.size() + 2, path_ + ": ") == 0 ? m.substr(path_.size() + 2) : m;
  }
  std::string path_;
  gzFile f_ = nullptr;
};

uint32_t big_endian(const unsigned char* b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

// How much data a short file held; a cut gzip stream can't say exactly (zlib drops the partial read).
std::string held(const GzReader& in, size_t have) {
  std::string e = in.stream_error();
  return e.empty() ? fmt::format("the file holds {}", have)
                   : fmt::format("the gzip stream ends after at most {} ({})", have, e);
}

}  // namespace

namespace detail {

std::vector<uint8_t> read_idx(const std::string& path, int expected_dims, std::vector<int64_t>* dims) {
  GzReader in(path);
  unsigned char head[4];
  size_t got = in.read(head, 4);
  if (got < 4)
    throw Error(fmt::format("read_idx: '{}' is truncated: too short for an IDX header ({} of 4 magic bytes: {})",
                            path, got, held(in, got)));
  uint32_t magic = big_endian(head);
  uint32_t want_magic = (kUnsignedByte << 8) | uint32_t(expected_dims);
  if (magic != want_magic)
    throw Error(fmt::format("read_idx: '{}' has a bad magic number 0x{:08x}, expected 0x{:08x} (IDX, unsigned "
                            "bytes, {} dimension{})",
                            path, magic, want_magic, expected_dims, expected_dims == 1 ? "" : "s"));

  std::vector<unsigned char> dim_bytes(size_t(4 * expected_dims));
  got = in.read(dim_bytes.data(), dim_bytes.size());
  if (got < dim_bytes.size())
    throw Error(fmt::format("read_idx: '{}' is truncated inside its header ({} bytes of dims expected: {})", path,
                            dim_bytes.size(), held(in, got)));
  dims->clear();
  for (int d = 0; d < expected_dims; ++d) dims->push_back(int64_t(big_endian(&dim_bytes[size_t(4 * d)])));
  uint64_t total = 1;
  for (int d = 0; d < expected_dims; ++d) {
    uint64_t v = uint64_t((*dims)[size_t(d)]);
    if (d > 0 && v == 0)
      throw Error(fmt::format("read_idx: '{}' declares a zero-size dimension: dims {}", path, shape_str(*dims)));
    if (v != 0 && total > kMaxBytes / v)  // checked before multiplying: the product can't overflow
      throw Error(fmt::format("read_idx: '{}' declares implausibly large dims (more than {} bytes); corrupt header?",
                              path, kMaxBytes));
    total *= v;
  }

  // Grow the buffer as data arrives, so a header lying about the size costs no huge allocation:
  // the first chunk is at most what the file can hold (its size for a plain file, the deflate
  // format's 1032:1 limit of expansion for a gzipped one), and 16 MB.
  struct stat st {};
  const uint64_t file_bytes = ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : kMaxBytes;
  const uint64_t first = std::min<uint64_t>(kChunk, in.plain() ? file_bytes + 1 : file_bytes * 1032 + 1024);
  std::vector<uint8_t> data;
  size_t have = 0;
  while (have < total) {
    size_t next = size_t(std::min<uint64_t>(total, std::max<uint64_t>(first, 2 * uint64_t(have))));
    data.reserve(next);  // exactly: resize alone may double the capacity past the data
    data.resize(next);
    size_t r = in.read(data.data() + have, next - have);
    have += r;
    if (have < next) break;
  }
  if (have < total)
    throw Error(fmt::format("read_idx: '{}' is truncated: its header declares dims {} ({} bytes of data), {}", path,
                            shape_str(*dims), total, held(in, have)));
  char extra[4096];
  size_t trailing = 0;
  for (size_t r; (r = in.read(extra, sizeof extra)) > 0;) trailing += r;
  if (trailing > 0)
    throw Error(fmt::format("read_idx: '{}' has {} bytes after the {} bytes of data its header declares (dims {}); "
                            "wrong header or not an IDX file",
                            path, trailing, total, shape_str(*dims)));
  return data;
}

}  // namespace detail

namespace {

// The file for `stem` in root: plain or .gz, and the "train-images.idx3-ubyte" spelling some
// copies of MNIST use.
std::string find_idx(const std::string& root, const std::string& stem) {
  std::string dotted = stem;
  dotted[dotted.rfind('-', dotted.find("idx")) ] = '.';
  for (const std::string& name : {stem, stem + ".gz", dotted, dotted + ".gz"}) {
    std::string path = root + "/" + name;
    if (file_exists(path)) return path;
  }
  throw Error(fmt::format("MNIST: no {} or {}.gz in '{}' (Fashion-MNIST on Debian: apt-get install "
                          "dataset-fashion-mnist)",
                          stem, stem, root));
}

// uint8 -> float32 in [0, 1], exactly p / 255.0f.
struct PixelTable {
  float v[256];
  PixelTable() {
    for (int i = 0; i < 256; ++i) v[i] = float(i) / 255.0f;
  }
};
const PixelTable& pixel_table() {
  static const PixelTable t;
  return t;
}

}  // namespace

MNIST::MNIST(const std::string& root, Split split) : split_(split) {
  if (!dir_exists(root))
    throw Error(fmt::format("MNIST: directory '{}' does not exist{}", root,
                            root == kDefaultRoot ? " (install Debian's dataset-fashion-mnist, or pass the directory "
                                                   "holding the four IDX files)"
                                                 : ""));
  const char* prefix = split == Split::Train ? "train" : "t10k";
  images_path_ = find_idx(root, fmt::format("{}-images-idx3-ubyte", prefix));
  labels_path_ = find_idx(root, fmt::format("{}-labels-idx1-ubyte", prefix));

  std::vector<int64_t> idims, ldims;
  auto pixels = std::make_shared<std::vector<uint8_t>>(detail::read_idx(images_path_, 3, &idims));
  auto labels = std::make_shared<std::vector<uint8_t>>(detail::read_idx(labels_path_, 1, &ldims));
  if (idims[0] != ldims[0])
    throw Error(fmt::format("MNIST: '{}' has {} images but '{}' has {} labels", images_path_, idims[0],
                            labels_path_, ldims[0]));
  count_ = idims[0];
  rows_ = idims[1];
  cols_ = idims[2];
  pixels_ = std::move(pixels);
  labels_ = std::move(labels);
}

Example MNIST::get(int64_t index) const {
  if (index < 0 || index >= count_)
    throw Error(fmt::format("MNIST::get: index {} out of range for {} samples", index, count_));
  Example ex = get_batch({index});
  return {ex.data.reshape({1, rows_, cols_}), ex.target.reshape({})};
}

Example MNIST::get_batch(const std::vector<int64_t>& indices) const {
  const int64_t b = int64_t(indices.size()), hw = rows_ * cols_;
  Tensor images = empty({b, 1, rows_, cols_});
  Tensor targets = empty({b}, kInt64);
  float* dst = images.data_ptr<float>();
  int64_t* lab = targets.data_ptr<int64_t>();
  const float* table = pixel_table().v;
  const uint8_t* src = pixels_->data();
  for (int64_t k = 0; k < b; ++k) {
    int64_t i = indices[size_t(k)];
    if (i < 0 || i >= count_)
      throw Error(fmt::format("MNIST::get_batch: index {} out of range for {} samples", i, count_));
    const uint8_t* s = src + i * hw;
    float* d = dst + k * hw;
    for (int64_t j = 0; j < hw; ++j) d[j] = table[s[j]];
    lab[k] = int64_t((*labels_)[size_t(i)]);
  }
  return {images, targets};
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace tg::data
