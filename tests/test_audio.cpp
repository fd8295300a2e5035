// tg::audio: mu-law companding against torchaudio's formulas (tests/golden/generate_audio.py),
// the round-trip error bound, and bad arguments.
#include <doctest/doctest.h>

#include <cmath>

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
