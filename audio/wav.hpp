#pragma once
/// tg::audio WAV files: RIFF/WAVE with integer PCM samples, read into float tensors in [-1, 1]
/// (as torchaudio.load) and written as 16-bit PCM.
///
///   tg::audio::Wave w = tg::audio::read_wav("speech.wav");   // w.samples [channels, frames]
///   tg::audio::write_wav("copy.wav", w.samples, w.sample_rate);
#include <cstdint>
#include <string>

#include "../autograd/tensor.hpp"

namespace tg::audio {

/// A decoded WAV file: float32 samples [channels, frames] in [-1, 1], and frames per second.
struct Wave {
  Tensor samples;
  int64_t sample_rate = 0;
};

/// Reads PCM 8-bit (unsigned), 16-, 24- or 32-bit (signed) WAV files, plain or
/// WAVE_FORMAT_EXTENSIBLE with a PCM sub-format, any channel count; a k-bit sample s becomes
/// s / 2^(k-1). Unknown chunks are skipped. A file that is missing, not RIFF/WAVE, has no `fmt `
/// or `data` chunk, holds floating-point or compressed samples, or is truncated (a data chunk
/// longer than the file, or a partial frame) throws tg::Error naming the path and the problem.
Wave read_wav(const std::string& path);

/// Writes 16-bit PCM: samples [frames] (mono) or [channels, frames], floating, values clamped
/// to [-1, 1] and rounded to round(x * 32767). Throws tg::Error on a bad shape, a non-finite
/// sample, a sample_rate outside [1, 2^31) or a file that cannot be written.
void write_wav(const std::string& path, const Tensor& samples, int64_t sample_rate);

}  // namespace tg::audio
