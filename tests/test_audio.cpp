// tg::audio: mu-law companding against torchaudio's formulas (tests/golden/generate_audio.py),
// the round-trip error bound, and bad arguments; WAV reading and writing.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "golden_io.hpp"

using tg::Tensor;

namespace {

std::vector<golden::Case> audio_cases() {
  return golden::load(std::string(TAPEGRAD_GOLDEN_DIR) + "/audio.txt");
}

}  // namespace

TEST_CASE("mu_law: golden values from torchaudio's formulas") {
  const std::map<std::string, std::function<Tensor(const Tensor&)>> rows = {
      {"encode", [](const Tensor& x) { return tg::audio::mu_law_encode(x); }},
      {"encode_f32", [](const Tensor& x) { return tg::audio::mu_law_encode(x.to(tg::kFloat32), 256); }},
      {"encode_q16", [](const Tensor& x) { return tg::audio::mu_law_encode(x, 16); }},
      {"encode_2d", [](const Tensor& x) { return tg::audio::mu_law_encode(x, 256); }},
      {"decode", [](const Tensor& q) { return tg::audio::mu_law_decode(q); }},
      {"decode_q16", [](const Tensor& q) { return tg::audio::mu_law_decode(q, 16); }},
      {"decode_q1024", [](const Tensor& q) { return tg::audio::mu_law_decode(q, 1024); }},
      {"decode_f64", [](const Tensor& q) { return tg::audio::mu_law_decode(q, 256); }},
  };
  const auto cases = audio_cases();
  CHECK(cases.size() == rows.size());
  for (const auto& c : cases) {
    INFO("case ", c.name);
    REQUIRE(rows.count(c.name) == 1);
    REQUIRE(c.inputs.size() == 1);
    Tensor y = rows.at(c.name)(c.inputs[0]);
    REQUIRE(y.shape() == c.output.shape());
    if (c.output.dtype() == tg::kInt64) {
      CHECK(y.dtype() == tg::kInt64);
      CHECK(y.to_vector<int64_t>() == c.output.to_vector<int64_t>());  // codes agree exactly
    } else {
      // torchaudio decodes int64 codes to float32, floating codes in their own dtype.
      const bool f32 = c.inputs[0].dtype() == tg::kInt64;
      CHECK(y.dtype() == (f32 ? tg::kFloat32 : tg::kFloat64));
      CHECK(golden::mismatch(y, c.output, f32 ? 1e-6 : 1e-14, f32 ? 1e-6 : 1e-14) <= 1.0);
    }
  }
}

TEST_CASE("mu_law: decode(encode(x)) is within the quantisation bound") {
  // Codes are spaced 2/mu apart in the companded value t = ln(1 + mu|x|) / ln(1 + mu) (signed),
  // so rounding moves t by at most 1/mu, and 1 + mu|x| by a factor (1 + mu)^(+-1/mu):
  // |decode(encode(x)) - x| <= ((1 + mu)^(1/mu) - 1) (|x| + 1/mu).
  for (int64_t channels : {256, 16}) {
    for (tg::Dtype d : {tg::kFloat64, tg::kFloat32}) {
      const double mu = double(channels - 1), factor = std::pow(1 + mu, 1 / mu) - 1;
      Tensor x = tg::arange(-1.0, 1.0 + 1e-9, 1.0 / 2048, d);  // 4097 points, both ends included
      Tensor q = tg::audio::mu_law_encode(x, channels);
      Tensor y = tg::audio::mu_law_decode(q, channels);
      auto xs = x.to_vector<double>(), ys = y.to_vector<double>();
      auto qs = q.to_vector<int64_t>();
      double worst = 0;
      for (size_t i = 0; i < xs.size(); ++i) {
        CHECK(qs[i] >= 0);
        CHECK(qs[i] <= channels - 1);
        const double ratio = std::abs(ys[i] - xs[i]) / (factor * (std::abs(xs[i]) + 1 / mu));
        worst = std::max(worst, ratio);
      }
      INFO("channels ", channels, " dtype ", tg::dtype_name(d));
      CHECK(worst <= 1.0 + 1e-4);
      CHECK(worst > 0.9);  // the bound is tight: a coarser quantiser would fail it
      CHECK(qs.front() == 0);
      CHECK(qs.back() == channels - 1);
    }
  }
}

TEST_CASE("mu_law: every code survives decode then encode; decoding is increasing") {
  for (int64_t channels : {256, 16, 2}) {
    Tensor q = tg::arange(0, double(channels));
    Tensor y = tg::audio::mu_law_decode(q, channels);
    CHECK(y.dtype() == tg::kFloat32);
    CHECK(tg::audio::mu_law_encode(y, channels).to_vector<int64_t>() == q.to_vector<int64_t>());
    auto v = y.to_vector<double>();
    CHECK(v.front() == doctest::Approx(-1.0));
    CHECK(v.back() == doctest::Approx(1.0));
    for (size_t i = 1; i < v.size(); ++i) CHECK(v[i] > v[i - 1]);
  }
}

TEST_CASE("mu_law: out-of-range samples are clamped; bad arguments throw") {
  Tensor x = tg::tensor({-3.0, -1.0, 1.0, 2.5}, {4});
  CHECK(tg::audio::mu_law_encode(x).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 255, 255});
  CHECK_THROWS_AS(tg::audio::mu_law_encode(tg::tensor({0.1, std::nan("")}, {2})), tg::Error);
  CHECK_THROWS_AS(tg::audio::mu_law_encode(tg::arange(0, 4)), tg::Error);  // int64 is not a waveform
  CHECK_THROWS_AS(tg::audio::mu_law_encode(x, 1), tg::Error);
  CHECK_THROWS_AS(tg::audio::mu_law_encode(Tensor()), tg::Error);
  CHECK_THROWS_AS(tg::audio::mu_law_decode(tg::tensor({0, 256}, {2}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::audio::mu_law_decode(tg::tensor({-1}, {1}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(tg::audio::mu_law_decode(tg::arange(0, 4), 0), tg::Error);
  try {
    tg::audio::mu_law_decode(tg::tensor({3, 300}, {2}, tg::kInt64));
    FAIL("expected a tg::Error");
  } catch (const tg::Error& e) {
    const std::string m = e.what();
    CHECK(m.find("mu_law_decode") != std::string::npos);
    CHECK(m.find("[0, 255]") != std::string::npos);
    CHECK(m.find("300") != std::string::npos);
  }
  // Empty waveforms are fine.
  CHECK(tg::audio::mu_law_encode(tg::zeros({0})).numel() == 0);
}

namespace {

// A path in the temporary directory, removed at scope exit.
struct TempWav {
  std::filesystem::path path;
  explicit TempWav(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("tapegrad-wav-" + std::to_string(::getpid()) + "-" + name)) {}
  ~TempWav() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

std::vector<unsigned char> file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::filesystem::path& p, const std::vector<unsigned char>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

}  // namespace

TEST_CASE("wav: write then read gives the samples back within half a 16-bit step") {
  TempWav f("roundtrip.wav");
  tg::manual_seed(3);
  const Tensor x = tg::rand({2, 501}) * 2.0 - 1.0;  // two channels, an odd frame count
  tg::audio::write_wav(f.path.string(), x, 22050);
  CHECK(std::filesystem::file_size(f.path) == 44 + 2 * 501 * 2);
  const tg::audio::Wave w = tg::audio::read_wav(f.path.string());
  CHECK(w.sample_rate == 22050);
  REQUIRE(w.samples.shape() == tg::Shape{2, 501});
  CHECK(w.samples.dtype() == tg::kFloat32);
  const std::vector<double> a = x.to_vector<double>(), b = w.samples.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] * 32767.0 / 32768.0 - b[i]));
  CHECK(worst <= 0.5 / 32768 + 1e-7);

  // Mono [T] reads back as [1, T]; values past +-1 are clamped; the file is bit-exact when re-written.
  const Tensor m = tg::tensor({0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0}, {7}, tg::kFloat64);
  tg::audio::write_wav(f.path.string(), m, 16000);
  const tg::audio::Wave mw = tg::audio::read_wav(f.path.string());
  REQUIRE(mw.samples.shape() == tg::Shape{1, 7});
  const std::vector<double> mv = mw.samples.to_vector<double>();
  CHECK(mv[3] == doctest::Approx(32767.0 / 32768));
  CHECK(mv[5] == doctest::Approx(32767.0 / 32768));
  CHECK(mv[6] == doctest::Approx(-32767.0 / 32768));
  const std::vector<unsigned char> first = file_bytes(f.path);
  tg::audio::write_wav(f.path.string(), mw.samples * (32768.0 / 32767.0), 16000);
  CHECK(file_bytes(f.path) == first);
}

TEST_CASE("wav: 8-bit unsigned and 24-bit files, extra chunks skipped") {
  TempWav f("formats.wav");
  auto header = [](uint16_t bits, std::vector<unsigned char> data, bool extra_chunk) {
    std::vector<unsigned char> b;
    auto put = [&](uint32_t v, int n) {
      for (int i = 0; i < n; ++i) b.push_back((unsigned char)(v >> (8 * i)));
    };
    auto tag = [&](const char* s) {
      for (int i = 0; i < 4; ++i) b.push_back((unsigned char)s[i]);
    };
    tag("RIFF");
    put(0, 4);  // readers do not need the RIFF size
    tag("WAVE");
    if (extra_chunk) {
      tag("LIST");
      put(3, 4);
      b.insert(b.end(), {1, 2, 3, 0});  // an odd size, padded
    }
    tag("fmt ");
    put(16, 4);
    put(1, 2);
    put(1, 2);
    put(8000, 4);
    put(8000 * bits / 8, 4);
    put(bits / 8, 2);
    put(bits, 2);
    tag("data");
    put(uint32_t(data.size()), 4);
    b.insert(b.end(), data.begin(), data.end());
    return b;
  };
  write_bytes(f.path, header(8, {128, 255, 0}, true));
  std::vector<double> v = tg::audio::read_wav(f.path.string()).samples.to_vector<double>();
  CHECK(v == std::vector<double>{0.0, 127.0 / 128, -1.0});
  write_bytes(f.path, header(24, {0, 0, 0x40, 0, 0, 0xC0}, false));
  v = tg::audio::read_wav(f.path.string()).samples.to_vector<double>();
  CHECK(v == std::vector<double>{0.5, -0.5});
}

TEST_CASE("wav: truncated, corrupt and unsupported files throw tg::Error naming the problem") {
  TempWav f("bad.wav");
  const Tensor x = tg::zeros({100});
  tg::audio::write_wav(f.path.string(), x, 16000);
  std::vector<unsigned char> good = file_bytes(f.path);
  auto message = [&](const std::vector<unsigned char>& bytes) -> std::string {
    write_bytes(f.path, bytes);
    try {
      tg::audio::read_wav(f.path.string());
    } catch (const tg::Error& e) {
      return e.what();
    }
    return "no error";
  };
  std::vector<unsigned char> b(good.begin(), good.end() - 10);  // the data chunk cut short
  CHECK(message(b).find("truncated") != std::string::npos);
  b.assign(good.begin(), good.end() - 1);  // half a frame
  CHECK(message(b).find("truncated") != std::string::npos);
  b.assign(good.begin(), good.begin() + 30);  // inside the fmt chunk
  CHECK(message(b).find("truncated fmt") != std::string::npos);
  b = good;
  b[0] = 'X';
  CHECK(message(b).find("not a RIFF/WAVE") != std::string::npos);
  b = good;
  b[20] = 3;  // IEEE float samples
  CHECK(message(b).find("unsupported sample format 3") != std::string::npos);
  b = good;
  b[34] = 12;  // 12 bits per sample
  CHECK(message(b).find("unsupported 12 bits") != std::string::npos);
  b.assign(good.begin(), good.begin() + 36);  // fmt but no data chunk
  CHECK(message(b).find("no data chunk") != std::string::npos);
  CHECK(message({}).find("not a RIFF/WAVE") != std::string::npos);
  CHECK_THROWS_AS(tg::audio::read_wav("/nonexistent/speech.wav"), tg::Error);

  CHECK_THROWS_AS(tg::audio::write_wav(f.path.string(), tg::zeros({2, 2, 2}), 16000), tg::Error);
  CHECK_THROWS_AS(tg::audio::write_wav(f.path.string(), tg::zeros({4}, tg::TensorOptions().dtype(tg::kInt64)), 16000),
                  tg::Error);
  CHECK_THROWS_AS(tg::audio::write_wav(f.path.string(), x, 0), tg::Error);
  CHECK_THROWS_AS(tg::audio::write_wav(f.path.string(), x / 0.0, 16000), tg::Error);  // NaN
  CHECK_THROWS_AS(tg::audio::write_wav("/nonexistent/dir/out.wav", x, 16000), tg::Error);
}
