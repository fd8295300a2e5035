// WAV reading and writing: the RIFF chunk walk, little-endian integers read byte by byte so the
// code does not depend on the host's byte order.
#include "wav.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <vector>

namespace tg::audio {

namespace {

uint32_t le(const unsigned char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void put(std::vector<unsigned char>& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back((unsigned char)((v >> (8 * i)) & 0xFF));
}

constexpr uint16_t kPcm = 1, kExtensible = 0xFFFE;

}  // namespace

Wave read_wav(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(fmt::format("read_wav: cannot open '{}'", path));
  const std::vector<unsigned char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto fail = [&](const std::string& what) -> Error { return Error(fmt::format("read_wav: '{}': {}", path, what)); };
  if (b.size() < 12 || std::string(b.begin(), b.begin() + 4) != "RIFF" || std::string(b.begin() + 8, b.begin() + 12) != "WAVE")
    throw fail("not a RIFF/WAVE file");
  uint16_t format = 0, channels = 0, bits = 0;
  uint32_t rate = 0;
  bool have_fmt = false;
  size_t pos = 12;
  while (pos + 8 <= b.size()) {
    const std::string id(b.begin() + pos, b.begin() + pos + 4);
    const size_t size = le(&b[pos + 4], 4), body = pos + 8;
    if (id == "fmt ") {
      if (size < 16 || body + size > b.size()) throw fail(fmt::format("truncated fmt chunk ({} bytes)", size));
      format = uint16_t(le(&b[body], 2));
      channels = uint16_t(le(&b[body + 2], 2));
      rate = le(&b[body + 4], 4);
      bits = uint16_t(le(&b[body + 14], 2));
      if (format == kExtensible) {
        if (size < 40) throw fail("truncated WAVE_FORMAT_EXTENSIBLE fmt chunk");
        format = uint16_t(le(&b[body + 24], 2));  // the sub-format GUID's first two bytes
      }
      if (format != kPcm) throw fail(fmt::format("unsupported sample format {} (only integer PCM, format 1)", format));
      if (bits != 8 && bits != 16 && bits != 24 && bits != 32)
        throw fail(fmt::format("unsupported {} bits per sample (8, 16, 24 or 32)", bits));
      if (channels == 0 || rate == 0) throw fail(fmt::format("{} channels at {} Hz", channels, rate));
      have_fmt = true;
    } else if (id == "data") {
      if (!have_fmt) throw fail("data chunk before the fmt chunk");
      if (body + size > b.size())
        throw fail(fmt::format("truncated: the data chunk declares {} bytes, the file holds {}", size, b.size() - body));
      const size_t width = bits / 8, frame = width * channels;
      if (size % frame != 0) throw fail(fmt::format("truncated: {} data bytes is not a whole number of {}-byte frames", size, frame));
      const int64_t frames = int64_t(size / frame);
      Tensor out = empty({int64_t(channels), frames}, kFloat32);
      float* o = out.data_ptr<float>();
      const double scale = 1.0 / double(uint64_t(1) << (bits - 1));
      for (int64_t t = 0; t < frames; ++t)
        for (int64_t c = 0; c < channels; ++c) {
          const unsigned char* p = &b[body + size_t(t) * frame + size_t(c) * width];
          int64_t v = int64_t(le(p, int(width)));
          if (bits == 8) v -= 128;  // 8-bit WAV is unsigned
          else if (v >= (int64_t(1) << (bits - 1))) v -= int64_t(1) << bits;
          o[c * frames + t] = float(double(v) * scale);
        }
      return {out, int64_t(rate)};
    }
    pos = body + size + (size & 1);  // chunks are padded to an even size
  }
  throw fail(have_fmt ? "no data chunk" : "no fmt chunk");
}

void write_wav(const std::string& path, const Tensor& samples, int64_t sample_rate) {
  if (!samples.defined()) throw Error("write_wav: the samples are undefined");
  if (!is_floating(samples.dtype()) || samples.dim() < 1 || samples.dim() > 2)
    throw Error(fmt::format("write_wav: expected floating samples [frames] or [channels, frames], got {} {}",
                            dtype_name(samples.dtype()), shape_str(samples.shape())));
  if (sample_rate < 1 || sample_rate >= (int64_t(1) << 31))
    throw Error(fmt::format("write_wav: sample_rate must be in [1, 2^31), got {}", sample_rate));
  const Tensor s = samples.dim() == 1 ? samples.unsqueeze(0) : samples;
  const int64_t channels = s.size(0), frames = s.size(1);
  if (channels < 1 || channels > 65535) throw Error(fmt::format("write_wav: {} channels", channels));
  const std::vector<double> v = s.to_vector<double>();
  const uint32_t data_bytes = uint32_t(channels * frames * 2);
  std::vector<unsigned char> out;
  out.reserve(44 + data_bytes);
  for (char c : std::string("RIFF")) out.push_back((unsigned char)c);
  put(out, 36 + data_bytes, 4);
  for (char c : std::string("WAVEfmt ")) out.push_back((unsigned char)c);
  put(out, 16, 4);
  put(out, kPcm, 2);
  put(out, uint32_t(channels), 2);
  put(out, uint32_t(sample_rate), 4);
  put(out, uint32_t(sample_rate * channels * 2), 4);
  put(out, uint32_t(channels * 2), 2);
  put(out, 16, 2);
  for (char c : std::string("data")) out.push_back((unsigned char)c);
  put(out, data_bytes, 4);
  for (int64_t t = 0; t < frames; ++t)
    for (int64_t c = 0; c < channels; ++c) {
      const double x = v[size_t(c * frames + t)];
      if (!std::isfinite(x))
        throw Error(fmt::format("write_wav: sample {} of channel {} is {}", t, c, x));
      put(out, uint32_t(uint16_t(int16_t(std::lround(std::clamp(x, -1.0, 1.0) * 32767)))), 2);
    }
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error(fmt::format("write_wav: cannot write '{}'", path));
  f.write(reinterpret_cast<const char*>(out.data()), std::streamsize(out.size()));
  if (!f) throw Error(fmt::format("write_wav: writing '{}' failed", path));
}

}  // namespace tg::audio
