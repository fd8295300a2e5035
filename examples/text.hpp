#pragma once
// Text on the examples' pictures (labels of montages and detections), with stb_truetype from
// Debian's libstb-dev (the programs link PkgConfig::STB, which holds its implementation).
#include <stb/stb_truetype.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <tapegrad.hpp>

namespace examples {

class Font {
 public:
  /// Reads a TrueType file; `program` names the caller in the error.
  Font(const std::string& path, const std::string& program) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw tg::Error(fmt::format("{}: cannot open font '{}'", program, path));
    data_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (!stbtt_InitFont(&info_, reinterpret_cast<const unsigned char*>(data_.data()), 0))
      throw tg::Error(fmt::format("{}: '{}' is not a TrueType font", program, path));
  }

  /// Renders text `px` pixels high with its baseline at (x, y): plot(x, y, alpha) for every
  /// covered pixel, alpha in (0, 1]; the pixel may lie outside the picture.
  template <typename Plot>
  void draw(const std::string& text, int x, int y, float px, Plot&& plot) const {
    const float scale = stbtt_ScaleForPixelHeight(&info_, px);
    float pen = float(x);
    for (size_t i = 0; i < text.size(); ++i) {
      const int ch = static_cast<unsigned char>(text[i]);
      int adv = 0, lsb = 0, x0 = 0, y0 = 0, x1 = 0, y1 = 0;
      stbtt_GetCodepointHMetrics(&info_, ch, &adv, &lsb);
      stbtt_GetCodepointBitmapBox(&info_, ch, scale, scale, &x0, &y0, &x1, &y1);
      const int gw = x1 - x0, gh = y1 - y0;
      if (gw > 0 && gh > 0) {
        std::vector<unsigned char> bmp(size_t(gw * gh));
        stbtt_MakeCodepointBitmap(&info_, bmp.data(), gw, gh, gw, scale, scale, ch);
        for (int yy = 0; yy < gh; ++yy)
          for (int xx = 0; xx < gw; ++xx)
            if (const unsigned char a = bmp[size_t(yy * gw + xx)])
              plot(int64_t(std::lround(pen)) + x0 + xx, int64_t(y) + y0 + yy, float(a) / 255.0f);
      }
      pen += float(adv) * scale;
      if (i + 1 < text.size())
        pen += scale * float(stbtt_GetCodepointKernAdvance(&info_, ch, static_cast<unsigned char>(text[i + 1])));
    }
  }

  /// The same, blended in colour rgb into img [3, H, W] (float32), clipped to the picture.
  void draw(tg::Tensor& img, const std::string& text, int x, int y, float px, const float rgb[3]) const {
    const int64_t h = img.size(1), w = img.size(2);
    float* p = img.data_ptr<float>();
    draw(text, x, y, px, [&](int64_t X, int64_t Y, float alpha) {
      if (X < 0 || Y < 0 || X >= w || Y >= h) return;
      for (int c = 0; c < 3; ++c) {
        float& v = p[(c * h + Y) * w + X];
        v = (1 - alpha) * v + alpha * rgb[c];
      }
    });
  }

 private:
  std::string data_;
  stbtt_fontinfo info_{};
};

}  // namespace examples
