// PNG files through libpng. libpng reports errors by calling our error function, which records
// the message and longjmps back to the setjmp of the step that was running. C++ allows a longjmp
// only where an exception would destroy no objects, so each step that can fail (read_header,
// read_pixels, write_all) is a small function whose locals are all trivially destructible; the
// objects that need cleaning up (the FILE, libpng's structs, the pixel buffers) live in the
// caller, which turns a failed step into a tg::Error.
#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "vision.hpp"

namespace tg::vision {

namespace {

struct PngMessage {
  char text[256] = "unknown libpng error";
};

void on_png_error(png_structp png, png_const_charp msg) {
  auto* m = static_cast<PngMessage*>(png_get_error_ptr(png));
  std::snprintf(m->text, sizeof m->text, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}
// Warnings (a bad ancillary chunk, an sRGB profile libpng dislikes) do not stop the image.
void on_png_warning(png_structp, png_const_charp) {}

struct File {
  std::FILE* f = nullptr;
  ~File() {
    if (f) std::fclose(f);
  }
};

struct ReadStructs {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadStructs() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

struct WriteStructs {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~WriteStructs() {
    if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
  }
};

struct Header {
  png_uint_32 width = 0, height = 0;
  int channels = 0, bit_depth = 0;
  size_t row_bytes = 0;
};

// Reads the chunks before the image data and sets the transforms to 8- or 16-bit gray, gray +
// alpha, RGB or RGBA. False (with the message recorded) when libpng fails.
bool read_header(png_structp png, png_infop info, std::FILE* f, Header* h) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_swap(png);  // samples as native little-endian uint16
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  h->width = png_get_image_width(png, info);
  h->height = png_get_image_height(png, info);
  h->channels = png_get_channels(png, info);
  h->bit_depth = png_get_bit_depth(png, info);
  h->row_bytes = png_get_rowbytes(png, info);
  return true;
}

bool read_pixels(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

bool write_all(png_structp png, png_infop info, std::FILE* f, png_uint_32 width, png_uint_32 height, int color,
               png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, f);
  png_set_IHDR(png, info, width, height, 8, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

// Images past this many samples are refused before anything is allocated (a corrupt header can
// claim 2^31 x 2^31 pixels).
constexpr uint64_t kMaxSamples = uint64_t(1) << 31;

}  // namespace

Tensor read_png(const std::string& path) {
  File file{std::fopen(path.c_str(), "rb")};
  if (!file.f) throw Error(fmt::format("read_png: cannot open '{}': {}", path, std::strerror(errno)));
  png_byte signature[8];
  if (std::fread(signature, 1, 8, file.f) != 8 || png_sig_cmp(signature, 0, 8) != 0)
    throw Error(fmt::format("read_png: '{}' is not a PNG file (no PNG signature)", path));
  PngMessage msg;
  ReadStructs s;
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &msg, on_png_error, on_png_warning);
  if (s.png) s.info = png_create_info_struct(s.png);
  if (!s.png || !s.info) throw Error(fmt::format("read_png: '{}': libpng could not allocate its structs", path));

  Header h;
  if (!read_header(s.png, s.info, file.f, &h))
    throw Error(fmt::format("read_png: '{}' is corrupt: {}", path, msg.text));
  const uint64_t samples = uint64_t(h.width) * h.height * uint64_t(h.channels);
  if (h.width == 0 || h.height == 0 || samples > kMaxSamples || (h.bit_depth != 8 && h.bit_depth != 16))
    throw Error(fmt::format("read_png: '{}': unsupported image ({} x {}, {} channels of {} bits)", path, h.width,
                            h.height, h.channels, h.bit_depth));
  std::vector<png_byte> pixels(h.row_bytes * h.height);
  std::vector<png_bytep> rows(h.height);
  for (png_uint_32 y = 0; y < h.height; ++y) rows[y] = pixels.data() + size_t(y) * h.row_bytes;
  if (!read_pixels(s.png, rows.data())) throw Error(fmt::format("read_png: '{}' is corrupt: {}", path, msg.text));

  // Interleaved rows -> [C, H, W] planes.
  const int64_t c = h.channels, hh = h.height, w = h.width;
  Tensor img = empty({c, hh, w});
  float* out = img.data_ptr<float>();
  for (int64_t y = 0; y < hh; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t ch = 0; ch < c; ++ch) {
        const size_t i = size_t(x * c + ch);
        const float v = h.bit_depth == 8 ? float(rows[size_t(y)][i]) / 255.0f
                                         : float(reinterpret_cast<const uint16_t*>(rows[size_t(y)])[i]) / 65535.0f;
        out[(ch * hh + y) * w + x] = v;
      }
  return img;
}

void write_png(const std::string& path, const Tensor& img) {
  if (!img.defined() || img.dim() != 3 || img.size(0) < 1 || img.size(0) > 4 || img.size(1) < 1 || img.size(2) < 1 ||
      !is_floating(img.dtype()))
    throw Error(fmt::format("write_png: expected a floating image [C, H, W] with C = 1, 3 or 4 and H, W >= 1, got {}",
                            img.defined() ? fmt::format("{} {}", dtype_name(img.dtype()), shape_str(img.shape()))
                                          : "undefined"));
  const int64_t c = img.size(0), h = img.size(1), w = img.size(2);
  if (h > int64_t(PNG_UINT_31_MAX) || w > int64_t(PNG_UINT_31_MAX))
    throw Error(fmt::format("write_png: {} is too large for a PNG", shape_str(img.shape())));
  const std::vector<double> v = img.to_vector<double>();
  std::vector<png_byte> pixels(size_t(c * h * w));
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double s = v[size_t((ch * h + y) * w + x)];
        if (std::isnan(s))
          throw Error(fmt::format("write_png: NaN at channel {}, row {}, column {} of {} (writing '{}')", ch, y, x,
                                  shape_str(img.shape()), path));
        pixels[size_t((y * w + x) * c + ch)] = png_byte(std::floor(std::clamp(s, 0.0, 1.0) * 255.0 + 0.5));
      }
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) rows[size_t(y)] = pixels.data() + size_t(y * w * c);
  const int color = c == 1 ? PNG_COLOR_TYPE_GRAY
                  : c == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                  : c == 3 ? PNG_COLOR_TYPE_RGB
                           : PNG_COLOR_TYPE_RGB_ALPHA;

  File file{std::fopen(path.c_str(), "wb")};
  if (!file.f) throw Error(fmt::format("write_png: cannot open '{}' for writing: {}", path, std::strerror(errno)));
  PngMessage msg;
  bool ok;
  {
    WriteStructs s;
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &msg, on_png_error, on_png_warning);
    if (s.png) s.info = png_create_info_struct(s.png);
    if (!s.png || !s.info) {
      std::snprintf(msg.text, sizeof msg.text, "libpng could not allocate its structs");
      ok = false;
    } else {
      ok = write_all(s.png, s.info, file.f, png_uint_32(w), png_uint_32(h), color, rows.data());
    }
  }
  if (ok && (std::fflush(file.f) != 0 || std::ferror(file.f))) {
    std::snprintf(msg.text, sizeof msg.text, "%s", std::strerror(errno));
    ok = false;
  }
  const bool closed = std::fclose(file.f) == 0;
  file.f = nullptr;
  if (!ok || !closed) {
    std::remove(path.c_str());  // no half-written file left behind
    throw Error(fmt::format("write_png: writing '{}' failed: {}", path, ok ? "close failed" : msg.text));
  }
}

}  // namespace tg::vision
