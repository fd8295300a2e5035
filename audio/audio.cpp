// mu-law companding. Element loops in the input's dtype, in torchaudio's order of operations,
// so that float32 codes agree with torchaudio's exactly (tests/golden/generate_audio.py).
#include "audio.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tg::audio {

namespace {

void check_channels(const char* op, int64_t channels) {
  if (channels < 2)
    throw Error(fmt::format("{}: quantization_channels must be at least 2, got {}", op, channels));
}

template <typename T>
T sign(T v) {
  return T((v > 0) - (v < 0));
}

}  // namespace

Tensor mu_law_encode(const Tensor& x, int64_t quantization_channels) {
  if (!x.defined()) throw Error("mu_law_encode: the input is undefined");
  check_channels("mu_law_encode", quantization_channels);
  if (!is_floating(x.dtype()))
    throw Error(fmt::format("mu_law_encode: expected a floating waveform (float32 or float64) in [-1, 1], got {} {}",
                            dtype_name(x.dtype()), shape_str(x.shape())));
  Tensor q = empty(x.shape(), kInt64);
  int64_t* out = q.data_ptr<int64_t>();
  dispatch_floating(x.dtype(), "mu_law_encode", [&](auto z) {
    using T = decltype(z);
    const T* in = typed<T>(x);
    const T mu = T(quantization_channels - 1), log1p_mu = std::log1p(mu);
    for (int64_t i = 0; i < x.numel(); ++i) {
      T v = in[i];
      if (!std::isfinite(v))
        throw Error(fmt::format("mu_law_encode: sample {} of the input {} is {}", i, shape_str(x.shape()), double(v)));
      v = std::clamp(v, T(-1), T(1));
      const T companded = sign(v) * std::log1p(mu * std::abs(v)) / log1p_mu;
      out[i] = int64_t((companded + 1) / 2 * mu + T(0.5));  // truncation, as .to(torch.int64)
    }
  });
  return q;
}

Tensor mu_law_decode(const Tensor& q, int64_t quantization_channels) {
  if (!q.defined()) throw Error("mu_law_decode: the input is undefined");
  check_channels("mu_law_decode", quantization_channels);
  const int64_t top = quantization_channels - 1;
  Tensor codes = q;
  if (q.dtype() == kInt64) {
    const int64_t* c = q.data_ptr<int64_t>();
    for (int64_t i = 0; i < q.numel(); ++i)
      if (c[i] < 0 || c[i] > top)
        throw Error(fmt::format("mu_law_decode: expected codes in [0, {}], got {} at index {} of {}", top, c[i], i,
                                shape_str(q.shape())));
    codes = q.to(kFloat32);
  }
  Tensor y = empty(codes.shape(), codes.dtype());
  dispatch_floating(codes.dtype(), "mu_law_decode", [&](auto z) {
    using T = decltype(z);
    const T* in = typed<T>(codes);
    T* out = typed<T>(y);
    const T mu = T(top), log1p_mu = std::log1p(mu);
    for (int64_t i = 0; i < codes.numel(); ++i) {
      const T t = in[i] / mu * 2 - 1;
      out[i] = sign(t) * (std::exp(std::abs(t) * log1p_mu) - 1) / mu;
    }
  });
  return y;
}

}  // namespace tg::audio
