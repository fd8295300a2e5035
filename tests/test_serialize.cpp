// Weights on disk: tg::save_tensors / tg::load_tensors (safetensors) and tg::save / tg::load of
// modules. Round trips bit for bit, the reference implementation's byte layout, headers from
// other writers, every kind of corrupt file (an error naming the file, never a crash: this
// suite also runs under ASan + UBSan), atomic replacement, and weights exported from PyTorch
// (tests/golden/generate_resnet_block.py) giving PyTorch's output.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad.hpp>

namespace fs = std::filesystem;
using tg::Tensor;

namespace {

const std::string kGolden = TAPEGRAD_GOLDEN_DIR;

// A fresh directory, removed with its contents at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("tapegrad-serialize-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xFF);
  return s;
}

template <typename T>
std::string raw(const std::vector<T>& v) {  // the test machine is little-endian (x86-64)
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A safetensors file from a header text (used as is: no padding) and a data section.
std::string make_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// The message of the tg::Error f throws; anything else is reported as not a tg::Error.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not a tg::Error: ") + e.what() + ">";
  }
  return "<no tg::Error thrown>";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void check_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  const std::string msg = error_of(f);
  for (const std::string& p : parts) {
    INFO("message: " << msg);
    INFO("expected to contain: " << p);
    CHECK(contains(msg, p));
  }
}

// The raw bytes of a tensor's values: a bitwise comparison that NaN and -0.0 can't fool.
std::string bytes_of(const Tensor& t) {
  switch (t.dtype()) {
    case tg::Dtype::Float32: return raw(t.to_vector<float>());
    case tg::Dtype::Float64: return raw(t.to_vector<double>());
    default: return raw(t.to_vector<int64_t>());
  }
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && bytes_of(a) == bytes_of(b);
}

bool same(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end() || !same(t, it->second)) return false;
  }
  return true;
}

Tensor f32(const std::vector<float>& v, const tg::Shape& s) {
  Tensor t = tg::empty(s, tg::kFloat32);
  std::copy(v.begin(), v.end(), t.data_ptr<float>());
  return t;
}
Tensor f64(const std::vector<double>& v, const tg::Shape& s) {
  Tensor t = tg::empty(s, tg::kFloat64);
  std::copy(v.begin(), v.end(), t.data_ptr<double>());
  return t;
}
Tensor i64(const std::vector<int64_t>& v, const tg::Shape& s) {
  Tensor t = tg::empty(s, tg::kInt64);
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return t;
}

// A small valid file's tensors: every dtype, 0-d, empty, metadata.
std::map<std::string, Tensor> sample_tensors() {
  return {{"w", f32({1.5f, -2.0f, 0.25f, 8.0f, -0.0f, 3.0f}, {2, 3})},
          {"b", f64({0.1, -0.2}, {2})},
          {"steps", i64({42}, {})},
          {"none", f32({}, {0})}};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips and layout
// ---------------------------------------------------------------------------------------------

TEST_CASE("serialize: float32, float64 and int64 tensors round trip bit for bit, with metadata") {
  TempDir dir;
  const float fnan = std::numeric_limits<float>::quiet_NaN(), finf = std::numeric_limits<float>::infinity();
  const double dnan = std::numeric_limits<double>::quiet_NaN();
  tg::manual_seed(7);
  std::map<std::string, Tensor> in = {
      {"f32", f32({1.0f, -0.0f, fnan, finf, -finf, std::numeric_limits<float>::denorm_min(),
                   std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest()},
                  {2, 4})},
      {"f64", f64({dnan, -0.0, 1e-310, 1e308, -3.25}, {5, 1})},
      {"i64", i64({std::numeric_limits<int64_t>::min(), -1, 0, 1, std::numeric_limits<int64_t>::max()}, {5})},
      {"scalar_f32", f32({3.5f}, {})},
      {"scalar_f64", f64({-1.0 / 3.0}, {})},
      {"scalar_i64", i64({-12345678901234}, {})},
      {"empty_f32", f32({}, {0})},
      {"empty_f64", f64({}, {2, 0, 3})},
      {"empty_i64", i64({}, {0, 5})},
      {"big", tg::randn({300, 37}, tg::kFloat64)},
      {"layer.0/weight \"quoted\" back\\slash\ttab\nnewline\x01 caf\xC3\xA9 \xE6\x97\xA5", f32({1, 2, 3}, {3})},
      {"", f32({9.0f}, {1})},
      {"param", tg::ones({2, 2}).requires_grad_()},
  };
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"note", "quote \" backslash \\ tab \t nl \n ctl \x1f \xC3\xBC \xF0\x9F\x98\x80"}, {"empty", ""}};
  const std::string path = dir.file("all.safetensors");
  tg::save_tensors(in, path, meta);

  std::map<std::string, std::string> meta_out = {{"stale", "entry"}};
  const auto out = tg::load_tensors(path, &meta_out);
  CHECK(meta_out == meta);
  REQUIRE(out.size() == in.size());
  for (const auto& entry : in) {  // no structured binding: INFO captures in a lambda
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    INFO("tensor " << name);
    REQUIRE(out.count(name) == 1);
    const Tensor& u = out.at(name);
    CHECK(u.shape() == t.shape());
    CHECK(u.dtype() == t.dtype());
    CHECK(bytes_of(u) == bytes_of(t));
    CHECK_FALSE(u.requires_grad());
  }
  // Without a metadata pointer, and with none written.
  CHECK(same(tg::load_tensors(path), out));
  tg::save_tensors(in, path);
  meta_out = {{"stale", "entry"}};
  tg::load_tensors(path, &meta_out);
  CHECK(meta_out.empty());
  // Nothing but the file is left in the directory.
  CHECK(dir.entries() == std::vector<std::string>{"all.safetensors"});
}

TEST_CASE("serialize: an empty map and views round trip") {
  TempDir dir;
  tg::save_tensors({}, dir.file("empty.safetensors"));
  CHECK(tg::load_tensors(dir.file("empty.safetensors")).empty());

  Tensor base = tg::arange(0, 12, 1, tg::kFloat32);
  Tensor view = base.reshape({3, 4});  // shares storage with base
  tg::save_tensors({{"v", view}, {"u", base.unsqueeze(0)}}, dir.file("views.safetensors"));
  const auto out = tg::load_tensors(dir.file("views.safetensors"));
  CHECK(same(out.at("v"), view));
  CHECK(same(out.at("u"), base.unsqueeze(0)));
}

TEST_CASE("serialize: the bytes are the reference implementation's") {
  TempDir dir;
  const std::string path = dir.file("ref.safetensors");
  // The expected bytes are the ones huggingface/safetensors' own tests pin down.
  tg::save_tensors({{"attn.0", f32({0, 1, 2, 3, 4, 5}, {1, 2, 3})}}, path);
  CHECK(read_bytes(path) == le64(64) + R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})" +
                                raw(std::vector<float>{0, 1, 2, 3, 4, 5}));

  tg::save_tensors({{"attn0", f32({0, 1, 2, 3, 4, 5}, {1, 1, 2, 3})}}, path);
  CHECK(read_bytes(path) == le64(72) + R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" +
                                std::string(7, ' ') + raw(std::vector<float>{0, 1, 2, 3, 4, 5}));

  tg::save_tensors({}, path);
  CHECK(read_bytes(path) == le64(8) + "{}      ");
  tg::save_tensors({}, path, {{"framework", "pt"}});
  CHECK(read_bytes(path) == le64(40) + R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' '));

  // Descending alignment, then name: I64, F64, F32, so every tensor starts aligned to its size.
  tg::save_tensors({{"a", f32({1}, {1})}, {"b", f64({2}, {1})}, {"c", i64({3}, {1})}, {"d", f32({4}, {})}}, path);
  const std::string header =
      R"({"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},"d":{"dtype":"F32","shape":[],"data_offsets":[20,24]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  CHECK(read_bytes(path) == le64(padded.size()) + padded + raw(std::vector<int64_t>{3}) +
                                raw(std::vector<double>{2}) + raw(std::vector<float>{1, 4}));

  // serde_json's escapes in names.
  tg::save_tensors({{"q\"\\\n\x01/\x7f", f32({}, {0})}}, path);
  CHECK(contains(read_bytes(path), R"({"q\"\\\n\u0001/)" "\x7f" R"(":{)"));

  // The header is always padded with spaces to a multiple of 8.
  for (size_t len = 0; len < 17; ++len) {
    tg::save_tensors({{std::string(len, 'x'), f32({1}, {1})}}, path);
    const std::string bytes = read_bytes(path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
    CHECK(n % 8 == 0);
    CHECK(bytes.size() == 8 + n + 4);
    CHECK(bytes[8 + n - 1] != '\0');
  }
}

TEST_CASE("serialize: headers from other writers: whitespace, escapes, any key and offset order") {
  TempDir dir;
  const std::string path = dir.file("other.safetensors");
  const std::string header =
      "\n { \"b\" : {\"data_offsets\":[ 8 , 16 ], \"shape\" : [ 2 ] ,\"dtype\":\"F32\"},\t"
      "\"__metadata__\": {\"k\\u00e9\\ud83d\\ude00\": \"v\\n\\\"\\/\\\\\", \"x\":\"\"},"
      "\"a\\u0041\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]} ,"
      "\"z\": {\"dtype\": \"F64\", \"shape\": [0, 3], \"data_offsets\": [16, 16]}}  \r\n\t";
  write_bytes(path, make_file(header, raw(std::vector<int64_t>{-7}) + raw(std::vector<float>{1.5f, -2.5f})));
  std::map<std::string, std::string> meta;
  const auto out = tg::load_tensors(path, &meta);
  REQUIRE(out.size() == 3);
  CHECK(same(out.at("aA"), i64({-7}, {})));
  CHECK(same(out.at("b"), f32({1.5f, -2.5f}, {2})));
  CHECK(same(out.at("z"), f64({}, {0, 3})));
  CHECK(meta == std::map<std::string, std::string>{{"k\xC3\xA9\xF0\x9F\x98\x80", "v\n\"/\\"}, {"x", ""}});

  // Several empty tensors may share an offset; an empty __metadata__ is fine.
  write_bytes(path, make_file(R"({"__metadata__":{},"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                              R"("e2":{"dtype":"I64","shape":[7,0],"data_offsets":[0,0]}})",
                              ""));
  CHECK(tg::load_tensors(path).size() == 2);
}

// ---------------------------------------------------------------------------------------------
// Corrupt files: always a tg::Error naming the file, never a crash
// ---------------------------------------------------------------------------------------------

TEST_CASE("serialize: every truncation of a file is an error naming the file") {
  TempDir dir;
  const std::string good = dir.file("good.safetensors"), cut = dir.file("cut.safetensors");
  tg::save_tensors(sample_tensors(), good, {{"format", "pt"}});
  const std::string bytes = read_bytes(good);
  REQUIRE(bytes.size() > 100);
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(cut, bytes.substr(0, n));
    const std::string msg = error_of([&] { tg::load_tensors(cut); });
    INFO("truncated to " << n << " of " << bytes.size() << " bytes: " << msg);
    CHECK(contains(msg, "load_tensors: '" + cut + "'"));
  }
  check_error([&] { tg::load_tensors(cut); }, {"past the end of the", "truncated file?"});  // a byte short
  write_bytes(cut, bytes + "garbage");
  check_error([&] { tg::load_tensors(cut); }, {cut, "7 bytes of trailing data"});
  write_bytes(cut, "");
  check_error([&] { tg::load_tensors(cut); }, {cut, "0 bytes, too short"});
}

TEST_CASE("serialize: corrupted header bytes are an error or harmless, never a crash") {
  TempDir dir;
  const std::string good = dir.file("good.safetensors"), bad = dir.file("bad.safetensors");
  tg::save_tensors(sample_tensors(), good, {{"format", "pt"}});
  const std::string bytes = read_bytes(good);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  const std::string replacements = std::string("\x00\xff\"}],:9\\", 9);
  int errors = 0, loaded = 0;
  write_bytes(bad, bytes);
  // Rewrites one byte in place (no truncation: thousands of rewrites stay fast).
  auto poke = [&](size_t pos, char c) {
    std::fstream f(bad, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(std::streamoff(pos));
    f.put(c);
    REQUIRE(f.good());
  };
  for (size_t pos = 0; pos < 8 + n; ++pos) {
    for (char r : replacements) {
      if (pos < 8) r = char(bytes[pos] ^ (r == '\0' ? 0x01 : r));  // flip bits of the length
      if (bytes[pos] == r) continue;
      poke(pos, r);
      struct Restore {
        std::function<void()> f;
        ~Restore() { f(); }
      } restore{[&] { poke(pos, bytes[pos]); }};
      try {
        const auto out = tg::load_tensors(bad);
        ++loaded;  // e.g. a digit changed inside the metadata string
        for (const auto& [name, t] : out) CHECK(t.numel() >= 0);
      } catch (const tg::Error& e) {
        ++errors;
        INFO(e.what());
        CHECK(contains(e.what(), bad));
      } catch (const std::exception& e) {
        FAIL("byte " << pos << " set to " << int(static_cast<unsigned char>(r)) << ": not a tg::Error: " << e.what());
      }
    }
  }
  CHECK(errors > 1000);
  CHECK(loaded < errors / 10);
}

TEST_CASE("serialize: a wrong header length is an error naming the problem") {
  TempDir dir;
  const std::string path = dir.file("len.safetensors");
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const std::string data = raw(std::vector<float>{1.0f});
  const std::string body = header + data;
  auto with_length = [&](uint64_t n) {
    write_bytes(path, le64(n) + body);
    return error_of([&] { tg::load_tensors(path); });
  };
  CHECK(contains(with_length(~uint64_t(0)), "header length 18446744073709551615 exceeds the 100000000-byte limit"));
  CHECK(contains(with_length(100'000'001), "exceeds the 100000000-byte limit"));
  CHECK(contains(with_length(body.size() + 1), "runs past the end"));
  CHECK(contains(with_length(0), "expected the header to be a JSON object"));
  CHECK(contains(with_length(header.size() - 1), "malformed header"));  // the JSON is cut
  CHECK(contains(with_length(header.size() + 4), "load_tensors: '" + path + "'"));  // data read as header
  write_bytes(path, std::string("\x10\x00\x00", 3));
  check_error([&] { tg::load_tensors(path); }, {path, "3 bytes, too short for the 8-byte header length"});
}

TEST_CASE("serialize: invalid headers are rejected with a message naming the problem") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const std::string f4 = raw(std::vector<float>{1.0f}), f8 = raw(std::vector<float>{1.0f, 2.0f});
  struct Row {
    std::string header, data, expected;
  };
  const std::vector<Row> rows = {
      {"[]", "", "expected the header to be a JSON object"},
      {"", "", "expected the header to be a JSON object"},
      {R"({"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", f4, "unknown dtype \"F17\""},
      {R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", f4, "dtype F16, which tapegrad cannot hold"},
      {R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", f4, "dtype BF16"},
      {R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", f4, "dtype I32"},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f4, "shape of tensor \"a\"[0] is negative"},
      {R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", f4, "is not an integer"},
      {R"({"a":{"dtype":"F32","shape":[1e2],"data_offsets":[0,4]}})", f4, "is not an integer"},
      {R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", f4, "(an integer)"},
      {R"({"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}})", f4, "leading zero"},
      {R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", f4, "expected '[' to start the shape"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", f4, "absurd shape"},
      {R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", f4, "absurd shape"},
      {R"({"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", "", "absurd shape"},
      {R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}})", f4, "larger than any file"},
      {R"({"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}})", f4, "does not fit in 64 bits"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", f8, "needs 4 bytes, but its data_offsets [0, 8] span 8"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", f4, "needs 8 bytes"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", f4, "begin after end"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1000]}})", f4, "past the end of the 4-byte data section"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}})", f4,
       "does not fit in 64 bits"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551611,18446744073709551615]}})", f4,
       "past the end"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", f4, "must be [begin, end], got 1 numbers"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", f4, "must be [begin, end], got 3 numbers"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       f8, "tensor \"b\" (data_offsets [4, 8]) overlaps tensor \"a\" (data_offsets [0, 8])"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
       f8, "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f8, "4 unused bytes before tensor \"a\""},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f8, "4 bytes of trailing data"},
      {"{}", f4, "4 bytes of trailing data"},
      {R"({"a":{"shape":[1],"data_offsets":[0,4]}})", f4, "tensor \"a\" has no dtype"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", f4, "has no shape"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", f4, "has no data_offsets"},
      {R"({"a":{}})", "", "tensor \"a\" has no dtype"},
      {R"({"a":[]})", "", "expected an object {dtype, shape, data_offsets} for tensor \"a\""},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offsets":[0,4]}})", f4, "unknown field \"offsets\""},
      {R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f4, "duplicate field \"dtype\""},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
       f4, "duplicate key \"a\""},
      {R"({"a":{"dtype":F32,"shape":[1],"data_offsets":[0,4]}})", f4, "expected the dtype (a string)"},
      {R"({"__metadata__":{"k":1}})", "", "__metadata__ value of \"k\" must be a string"},
      {R"({"__metadata__":{"k":{"nested":"x"}}})", "", "must be a string"},
      {R"({"__metadata__":"x"})", "", "an object of strings for __metadata__"},
      {R"({"__metadata__":{"k":"a","k":"b"}})", "", "duplicate key in __metadata__"},
      {R"({"__metadata__":{},"__metadata__":{}})", "", "duplicate key \"__metadata__\""},
      {"{\"a\":" + std::string(100000, '['), "", "expected an object"},
      {std::string(100000, '{'), "", "expected a tensor name"},
      {R"({"a\x":{}})", "", "invalid escape '\\x'"},
      {R"({"a\u12":{}})", "", "invalid hex digit"},
      {R"({"a\u12)", "", "truncated \\u escape"},
      {R"({"a\ud800":{}})", "", "high surrogate not followed by a low surrogate"},
      {R"({"a\ud800\u0041":{}})", "", "high surrogate not followed by a low surrogate"},
      {R"({"a\udc00":{}})", "", "lone low surrogate"},
      {"{\"a", "", "unterminated string"},
      {"{\"a\\", "", "unterminated string"},
      {"{\"a\tb\":{}}", "", "control character \\x09 inside a string"},
      {"{\"a\xC3\x28\":{}}", "", "not valid UTF-8 (byte 3 of the header)"},
      {"{\"a\xED\xA0\x80\":{}}", "", "not valid UTF-8"},  // an encoded surrogate
      {"{\"a\xC0\xAF\":{}}", "", "not valid UTF-8"},      // overlong '/'
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},})", f4, "expected a tensor name (a string)"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]} "b":1})", f4, "expected ',' or '}'"},
      {R"({"a":{"dtype":"F32","shape":[1,],"data_offsets":[0,4]}})", f4, "(an integer), found ]"},
      {R"({"a":{"dtype":"F32","shape":[1 2],"data_offsets":[0,4]}})", f4, "expected ',' or ']'"},
      {R"({"a" {}})", "", "expected ':' after a key"},
      {std::string("{}\0\0\0\0\0\0", 8), "", "unexpected '\\x00' after the JSON object"},
      {"{} x", "", "unexpected 'x' after the JSON object"},
      {"{}{}", "", "after the JSON object"},
      {"{", "", "found end of header"},
  };
  for (const Row& row : rows) {
    write_bytes(path, make_file(row.header, row.data));
    const std::string msg = error_of([&] { tg::load_tensors(path); });
    INFO("header: " << row.header.substr(0, 120));
    INFO("message: " << msg);
    CHECK(contains(msg, "load_tensors: '" + path + "': "));
    CHECK(contains(msg, row.expected));
  }
}

TEST_CASE("serialize: unreadable paths are errors naming the path") {
  TempDir dir;
  check_error([&] { tg::load_tensors(dir.file("missing.safetensors")); },
              {"load_tensors: '" + dir.file("missing.safetensors") + "': cannot open", "No such file"});
  check_error([&] { tg::load_tensors(dir.path.string()); }, {dir.path.string(), "not a regular file"});
}

// ---------------------------------------------------------------------------------------------
// Atomic saves
// ---------------------------------------------------------------------------------------------

namespace {

// Caps the size of files this process may write; the write that crosses it fails with EFBIG.
struct FileSizeLimit {
  rlimit old{};
  void (*old_handler)(int) = nullptr;
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler = ::signal(SIGXFSZ, SIG_IGN);  // else the kernel kills the process
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    rlimit lim = old;
    lim.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::signal(SIGXFSZ, old_handler);
  }
};

}  // namespace

TEST_CASE("serialize: a failed save leaves the existing file as it was and nothing behind") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  tg::save_tensors(sample_tensors(), path);
  const std::string before = read_bytes(path);
  const std::vector<std::string> only_model = {"model.safetensors"};

  SUBCASE("a directory that does not exist") {
    const std::string nowhere = dir.file("no/such/dir/model.safetensors");
    check_error([&] { tg::save_tensors(sample_tensors(), nowhere); },
                {"save_tensors: '" + nowhere + "'", "cannot create the temporary file", "No such file"});
    CHECK_FALSE(fs::exists(dir.path / "no"));
  }
  SUBCASE("invalid input is refused before anything is written") {
    check_error([&] { tg::save_tensors({{"a", Tensor()}}, path); }, {path, "tensor \"a\" is undefined"});
    check_error([&] { tg::save_tensors({{"__metadata__", tg::ones({1})}}, path); }, {path, "reserved"});
    check_error([&] { tg::save_tensors({{"bad\xFF", tg::ones({1})}}, path); }, {path, "not valid UTF-8"});
    check_error([&] { tg::save_tensors({{"a", tg::ones({1})}}, path, {{"k", "\xC3"}}); }, {path, "not valid UTF-8"});
  }
  SUBCASE("the target is a directory") {
    fs::create_directories(dir.path / "subdir");
    check_error([&] { tg::save_tensors(sample_tensors(), dir.file("subdir")); },
                {dir.file("subdir"), "cannot replace the file"});
    CHECK(fs::is_directory(dir.path / "subdir"));
    fs::remove(dir.path / "subdir");
  }
  SUBCASE("the disk fills up in the middle of the data") {
    Tensor big = tg::zeros({1 << 18});  // 1 MiB
    {
      FileSizeLimit limit(64 * 1024);
      check_error([&] { tg::save_tensors({{"big", big}}, path); }, {path, "writing", "failed", "unchanged"});
    }
    // The limit is lifted: the same save now goes through.
    tg::save_tensors({{"big", big}}, path);
    CHECK(same(tg::load_tensors(path).at("big"), big));
    tg::save_tensors(sample_tensors(), path);
  }
  CHECK(read_bytes(path) == before);
  CHECK(dir.entries() == only_model);
}

TEST_CASE("serialize: saving over an existing file replaces it whole") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  tg::save_tensors({{"old", tg::ones({1000})}}, path);
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  tg::save_tensors({{"new", f32({2.0f}, {})}}, path);
  const auto out = tg::load_tensors(path);
  REQUIRE(out.size() == 1);
  CHECK(same(out.at("new"), f32({2.0f}, {})));
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  CHECK(fs::status(path).permissions() == (fs::perms::owner_read | fs::perms::owner_write));  // kept
}

// ---------------------------------------------------------------------------------------------
// PyTorch interop
// ---------------------------------------------------------------------------------------------

TEST_CASE("serialize: the state_dict exported from PyTorch by tools/export_safetensors.py loads") {
  const auto sd = tg::load_tensors(kGolden + "/resnet_block.safetensors");
  std::vector<std::string> names;
  for (const auto& [k, t] : sd) names.push_back(k);
  CHECK(names == std::vector<std::string>{"bn1.bias", "bn1.num_batches_tracked", "bn1.running_mean",
                                          "bn1.running_var", "bn1.weight", "bn2.bias", "bn2.num_batches_tracked",
                                          "bn2.running_mean", "bn2.running_var", "bn2.weight", "conv1.weight",
                                          "conv2.weight"});
  CHECK(sd.at("conv1.weight").shape() == tg::Shape{4, 4, 3, 3});
  CHECK(sd.at("conv1.weight").dtype() == tg::kFloat32);
  CHECK(sd.at("bn1.running_var").shape() == tg::Shape{4});
  CHECK(sd.at("bn1.num_batches_tracked").dtype() == tg::kInt64);
  CHECK(sd.at("bn1.num_batches_tracked").dim() == 0);
  CHECK(sd.at("bn1.num_batches_tracked").item<int64_t>() == 3);
  for (float v : sd.at("bn2.running_var").to_vector<float>()) CHECK((v > 0.1f && v != 1.0f));

  const auto io = tg::load_tensors(kGolden + "/resnet_block_io.safetensors");
  CHECK(io.at("input").shape() == tg::Shape{2, 4, 6, 6});
  CHECK(io.at("output").shape() == tg::Shape{2, 4, 6, 6});
}

namespace {

// PyTorch's ResNet basic block, named as tests/golden/generate_resnet_block.py names it.
struct BasicBlock : tg::nn::Module {
  std::shared_ptr<tg::nn::Conv2d> conv1, conv2;
  std::shared_ptr<tg::nn::BatchNorm2d> bn1, bn2;
  explicit BasicBlock(int64_t c) : tg::nn::Module("BasicBlock") {
    conv1 = register_module("conv1", std::make_shared<tg::nn::Conv2d>(tg::nn::Conv2dOptions(c, c, {3}).padding({1}).bias(false)));
    bn1 = register_module("bn1", std::make_shared<tg::nn::BatchNorm2d>(c));
    conv2 = register_module("conv2", std::make_shared<tg::nn::Conv2d>(tg::nn::Conv2dOptions(c, c, {3}).padding({1}).bias(false)));
    bn2 = register_module("bn2", std::make_shared<tg::nn::BatchNorm2d>(c));
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = tg::relu(bn1->forward(conv1->forward(x)));
    return tg::relu(bn2->forward(conv2->forward(out)) + x);
  }
};

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto u = a.to_vector<double>(), v = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < u.size(); ++i) m = std::max(m, std::abs(u[i] - v[i]));
  return m;
}

// Copies of every tensor in the module's state, to compare with later.
std::map<std::string, Tensor> snapshot(const tg::nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, t] : m.state_dict()) out[k] = t.detach().clone();
  return out;
}

}  // namespace

TEST_CASE("serialize: a PyTorch ResNet block loaded with tg::load gives PyTorch's output") {
  const auto io = tg::load_tensors(kGolden + "/resnet_block_io.safetensors");
  const std::string weights = kGolden + "/resnet_block.safetensors";
  tg::manual_seed(3);
  BasicBlock block(4);
  tg::load(block, weights);
  block.eval();
  CHECK(same(snapshot(block), tg::load_tensors(weights)));  // every parameter and buffer, bit for bit
  const double diff = max_abs_diff(block.forward(io.at("input")), io.at("output"));
  INFO("max |tapegrad - PyTorch| = " << diff);
  CHECK(diff <= 1e-5);

  // float32 weights into a float64 model convert on load, as PyTorch's copy_ does.
  BasicBlock block64(4);
  block64.to(tg::kFloat64);
  tg::load(block64, weights);
  block64.eval();
  CHECK(block64.conv1->weight.dtype() == tg::kFloat64);
  CHECK(block64.bn1->num_batches_tracked.dtype() == tg::kInt64);
  CHECK(block64.bn1->num_batches_tracked.item<int64_t>() == 3);
  CHECK(max_abs_diff(block64.forward(io.at("input").to(tg::kFloat64)), io.at("output")) <= 1e-5);
}

TEST_CASE("serialize: tg::save and tg::load round trip a module, converting dtypes") {
  TempDir dir;
  const std::string path = dir.file("block.safetensors");
  tg::manual_seed(11);
  BasicBlock a(4);
  a.bn1->running_mean.fill_(0.5);
  a.bn2->running_var.fill_(2.0);
  a.bn1->num_batches_tracked.fill_(17);
  tg::save(a, path);
  CHECK(same(tg::load_tensors(path), snapshot(a)));

  tg::manual_seed(12);
  BasicBlock b(4);
  CHECK_FALSE(same(snapshot(b), snapshot(a)));
  Tensor conv_handle = b.conv1->weight;
  tg::load(b, path);
  CHECK(same(snapshot(b), snapshot(a)));
  CHECK(bytes_of(conv_handle) == bytes_of(a.conv1->weight));  // loaded in place: handles stay valid
  a.eval();
  b.eval();
  const Tensor x = tg::randn({1, 4, 5, 5});
  CHECK(same(a.forward(x), b.forward(x)));

  // A float64 file (as a float64 PyTorch model exports) loads into a float32 model.
  std::map<std::string, Tensor> as64;
  for (const auto& [k, t] : snapshot(a)) as64[k] = t.dtype() == tg::kFloat32 ? t.to(tg::kFloat64) : t;
  tg::save_tensors(as64, path);
  tg::manual_seed(13);
  BasicBlock c(4);
  tg::load(c, path);
  CHECK(c.conv1->weight.dtype() == tg::kFloat32);
  CHECK(same(snapshot(c), snapshot(a)));
}

TEST_CASE("serialize: a mismatched file names the keys and leaves the module unchanged") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const auto good = tg::load_tensors(kGolden + "/resnet_block.safetensors");
  tg::manual_seed(5);
  BasicBlock block(4);
  const auto before = snapshot(block);
  auto unchanged = [&] { return same(snapshot(block), before); };

  SUBCASE("a missing key") {
    auto sd = good;
    sd.erase("bn2.bias");
    tg::save_tensors(sd, path);
    check_error([&] { tg::load(block, path); }, {"load: '" + path + "'", "bn2.bias"});
    CHECK(unchanged());
  }
  SUBCASE("an unexpected key") {
    auto sd = good;
    sd["fc.weight"] = tg::ones({2, 2});
    tg::save_tensors(sd, path);
    check_error([&] { tg::load(block, path); }, {path, "fc.weight"});
    CHECK(unchanged());
  }
  SUBCASE("a wrongly shaped key") {
    auto sd = good;
    sd["conv1.weight"] = tg::ones({4, 4, 1, 1});
    tg::save_tensors(sd, path);
    check_error([&] { tg::load(block, path); }, {path, "conv1.weight"});
    CHECK(unchanged());
  }
  SUBCASE("several problems at once are all listed") {
    auto sd = good;
    sd.erase("bn1.running_mean");
    sd.erase("conv2.weight");
    sd["extra.bias"] = tg::ones({4});
    tg::save_tensors(sd, path);
    check_error([&] { tg::load(block, path); }, {path, "bn1.running_mean", "conv2.weight", "extra.bias"});
    CHECK(unchanged());
  }
  SUBCASE("a corrupt file") {
    std::string bytes = read_bytes(kGolden + "/resnet_block.safetensors");
    write_bytes(path, bytes.substr(0, bytes.size() - 1));
    check_error([&] { tg::load(block, path); }, {"load: '" + path + "'", "past the end"});
    CHECK(unchanged());
  }
  SUBCASE("a value that does not convert to an int64 buffer") {
    auto sd = good;
    sd["bn1.num_batches_tracked"] = f32({std::nanf("")}, {});
    tg::save_tensors(sd, path);
    check_error([&] { tg::load(block, path); }, {path, "bn1.num_batches_tracked", "int64"});
    CHECK(unchanged());
    sd["bn1.num_batches_tracked"] = f64({2.5}, {});
    tg::save_tensors(sd, path);
    check_error([&] { tg::load(block, path); }, {path, "bn1.num_batches_tracked", "2.5"});
    CHECK(unchanged());
    sd["bn1.num_batches_tracked"] = f64({7.0}, {});  // integral: converts, as copy_ does
    tg::save_tensors(sd, path);
    tg::load(block, path);
    CHECK(block.bn1->num_batches_tracked.dtype() == tg::kInt64);
    CHECK(block.bn1->num_batches_tracked.item<int64_t>() == 7);
  }
  SUBCASE("non-strict loading takes what matches") {
    auto sd = good;
    sd.erase("bn2.bias");
    sd["fc.weight"] = tg::ones({2, 2});
    tg::save_tensors(sd, path);
    tg::load(block, path, /*strict=*/false);
    CHECK(same(block.bn1->weight, good.at("bn1.weight")));
    CHECK(same(block.conv2->weight, good.at("conv2.weight")));
    CHECK(same(block.bn2->bias, before.at("bn2.bias")));
  }
}
