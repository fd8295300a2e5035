#pragma once
/// tg::audio: mu-law companding of waveforms, as torchaudio.functional.mu_law_encoding /
/// mu_law_decoding.
///
///   tg::Tensor q = tg::audio::mu_law_encode(wave);   // float in [-1, 1] -> int64 codes in [0, 255]
///   tg::Tensor y = tg::audio::mu_law_decode(q);      // -> float32 in [-1, 1]
#include <cstdint>

#include "../autograd/tensor.hpp"

namespace tg::audio {

/// Codes floor((sign(x) ln(1 + mu |x|) / ln(1 + mu) + 1) / 2 * mu + 0.5), mu = channels - 1,
/// computed in x's dtype (float32 or float64) as torchaudio does; any shape; int64 result in
/// [0, quantization_channels - 1]. Samples outside [-1, 1] are clamped to it first (torchaudio
/// would return codes outside the range); NaN or Inf throws. Not differentiable.
Tensor mu_law_encode(const Tensor& x, int64_t quantization_channels = 256);

/// The inverse companding: y = sign(t) ((1 + mu)^|t| - 1) / mu with t = 2 q / mu - 1. int64
/// codes (each in [0, quantization_channels - 1], else tg::Error) give float32, as torchaudio;
/// floating codes keep their dtype. Not differentiable.
Tensor mu_law_decode(const Tensor& q, int64_t quantization_channels = 256);

}  // namespace tg::audio
