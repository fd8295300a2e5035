#pragma once
// Internal: the geometry of an n-d window op and the im2col / col2im loop, shared by unfold/fold,
// window_argmax and the convolution primitives.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

#include "tensor.hpp"

namespace tg::prim::window {

// The geometry of one window op, padded to 3 spatial dims (leading dims of size 1).
struct Geometry {
  int64_t n = 0, c = 0;
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, p{0, 0, 0}, d{1, 1, 1};
  int64_t kernel_numel() const { return k[0] * k[1] * k[2]; }
  int64_t positions() const { return out[0] * out[1] * out[2]; }
  int64_t plane() const { return in[0] * in[1] * in[2]; }
};

/// Validates the options against the spatial size (`shape` is the op's input, named in errors).
Geometry geometry(int64_t n, int64_t c, const Shape& spatial, const WindowOptions& o, const char* op,
                  const Shape& shape);

template <typename T>
inline void add_row(T* __restrict dst, const T* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

/// The output positions [lo, hi) along one dim (out of them) whose input coordinate
/// o * s + shift lies in [0, in); lo == hi when none does.
inline std::pair<int64_t, int64_t> valid_range(int64_t in, int64_t out, int64_t shift, int64_t s) {
  const int64_t lo = shift >= 0 ? 0 : (-shift + s - 1) / s;
  const int64_t hi = std::min(out, in - shift <= 0 ? int64_t(0) : (in - shift - 1) / s + 1);
  return {std::min(lo, hi), hi};
}

// dst[0, n) = src[0, n), the 64-byte-aligned part of dst with non-temporal stores.
template <typename T>
inline void stream_copy(T* dst, const T* src, int64_t n) {
#if defined(__AVX512F__) || defined(__AVX__)
  char* d = reinterpret_cast<char*>(dst);
  const char* s = reinterpret_cast<const char*>(src);
  int64_t bytes = n * int64_t(sizeof(T));
  const int64_t head = std::min<int64_t>(bytes, (64 - int64_t(reinterpret_cast<uintptr_t>(d) & 63)) & 63);
  std::memcpy(d, s, size_t(head));
  d += head;
  s += head;
  bytes -= head;
  for (; bytes >= 64; bytes -= 64, d += 64, s += 64) {
#if defined(__AVX512F__)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(d), _mm512_loadu_si512(s));
#else
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + 32),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 32)));
#endif
  }
  std::memcpy(d, s, size_t(bytes));
#else
  std::memcpy(dst, src, size_t(n) * sizeof(T));
#endif
}

/// Orders this thread's non-temporal stores (stream_copy's) before what follows, e.g. a join.
inline void stream_fence() {
#if defined(__AVX512F__) || defined(__AVX__)
  _mm_sfence();
#endif
}

/// Copies one plane of extent `in` into the interior of a plane padded by p on every side
/// (extent in + 2p); the borders are left as they are, so a buffer zeroed once stays padded.
template <typename T>
inline void copy_to_padded(const std::array<int64_t, 3>& in, const std::array<int64_t, 3>& p, const T* src, T* dst) {
  const int64_t pin1 = in[1] + 2 * p[1], pin2 = in[2] + 2 * p[2];
  for (int64_t d = 0; d < in[0]; ++d)
    for (int64_t h = 0; h < in[1]; ++h)
      std::copy(src + (d * in[1] + h) * in[2], src + (d * in[1] + h + 1) * in[2],
                dst + ((d + p[0]) * pin1 + h + p[1]) * pin2 + p[2]);
}

/// unfold when output rows have the input's width and consecutive output rows read consecutive
/// input rows (stride 1 along h and w, "same" width: 2 p = d (k - 1)): for each kernel offset,
/// the in-range output rows are one contiguous copy of the plane shifted by the offset; the
/// columns that wrapped in from a neighbouring row are then zeroed (one or two per row), and
/// rows outside the input filled with zeros. A few long copies instead of one short copy per row.
template <typename T>
void unfold_rows_flat(const Geometry& g, const T* img, T* col, int64_t nc0, int64_t nc1) {
  const int64_t K = g.kernel_numel(), L = g.positions(), w = g.in[2], h = g.in[1], oh_n = g.out[1];
  const int64_t in_numel = g.plane();
  for (int64_t nc = nc0; nc < nc1; ++nc) {
    const T* im = img + nc * in_numel;
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          T* row = col + (nc * K + (kd * g.k[1] + kh) * g.k[2] + kw) * L;
          const int64_t shift = kw * g.d[2] - g.p[2];     // input column = output column + shift
          const int64_t row_shift = kh * g.d[1] - g.p[1];  // input row = output row + row_shift
          const auto [lo, hi] = valid_range(w, w, shift, 1);  // output columns in range
          const auto [r0, r1] = valid_range(h, oh_n, row_shift, 1);
          for (int64_t od = 0; od < g.out[0]; ++od) {
            T* r = row + od * oh_n * w;
            const int64_t id = od * g.s[0] - g.p[0] + kd * g.d[0];
            if (id < 0 || id >= g.in[0] || r0 == r1) {
              std::fill(r, r + oh_n * w, T(0));
              continue;
            }
            std::fill(r, r + r0 * w, T(0));
            std::fill(r + r1 * w, r + oh_n * w, T(0));
            // Output elements [r0 * w + lo, (r1 - 1) * w + hi) map to input elements at a fixed
            // offset, all inside this plane.
            const T* src = im + (id * h + row_shift) * w + shift;
            const int64_t f0 = r0 * w + lo, f1 = (r1 - 1) * w + hi;
            std::copy(src + f0, src + f1, r + f0);
            for (int64_t oh = r0; oh < r1; ++oh) {
              T* ro = r + oh * w;
              for (int64_t c = 0; c < lo; ++c) ro[c] = T(0);
              for (int64_t c = hi; c < w; ++c) ro[c] = T(0);
            }
          }
        }
  }
}

/// im2col: col[(nc * K + k) * L + l] = the window value, 0 in the padding, for planes nc in
/// [nc0, nc1), on the calling thread. img and col point at plane 0; the innermost loop runs over
/// output columns with the in-bounds range computed once.
template <typename T>
void unfold_planes(const Geometry& g, const T* img, T* col, int64_t nc0, int64_t nc1) {
  const int64_t K = g.kernel_numel(), L = g.positions();
  const int64_t in_numel = g.plane();
  if (g.s[1] == 1 && g.s[2] == 1 && g.out[2] == g.in[2]) {
    unfold_rows_flat(g, img, col, nc0, nc1);
    return;
  }
  for (int64_t nc = nc0; nc < nc1; ++nc) {
    const T* im = img + nc * in_numel;
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const int64_t kidx = (kd * g.k[1] + kh) * g.k[2] + kw;
          T* row = col + (nc * K + kidx) * L;
          const int64_t shift = kw * g.d[2] - g.p[2];
          const auto [lo, hi] = valid_range(g.in[2], g.out[2], shift, g.s[2]);
          for (int64_t od = 0; od < g.out[0]; ++od) {
            const int64_t id = od * g.s[0] - g.p[0] + kd * g.d[0];
            for (int64_t oh = 0; oh < g.out[1]; ++oh) {
              const int64_t ih = oh * g.s[1] - g.p[1] + kh * g.d[1];
              T* r = row + (od * g.out[1] + oh) * g.out[2];
              if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
                std::fill(r, r + g.out[2], T(0));
                continue;
              }
              const T* src = im + (id * g.in[1] + ih) * g.in[2] + shift;
              const int64_t st = g.s[2];
              std::fill(r, r + lo, T(0));
              if (st == 1)
                std::copy(src + lo, src + hi, r + lo);
              else
                for (int64_t ow = lo; ow < hi; ++ow) r[ow] = src[ow * st];
              std::fill(r + hi, r + g.out[2], T(0));
            }
          }
        }
  }
}

/// unfold_planes written straight to memory, for outputs too large to stay in cache (stride 1
/// along w): each plane is copied once into a zero-padded scratch plane that stays in L1, and
/// every output row is then a contiguous run of it, written with non-temporal stores (the
/// caller fences). One pass over the output and no read-for-ownership of it.
template <typename T>
void unfold_planes_stream(const Geometry& g, const T* img, T* col, int64_t nc0, int64_t nc1) {
  const int64_t K = g.kernel_numel(), L = g.positions(), plane = g.plane();
  std::array<int64_t, 3> pin{};
  for (size_t i = 0; i < 3; ++i) pin[i] = g.in[i] + 2 * g.p[i];
  const int64_t pplane = pin[0] * pin[1] * pin[2];
  std::vector<T> pad(static_cast<size_t>(pplane), T(0));  // the borders stay zero
  for (int64_t nc = nc0; nc < nc1; ++nc) {
    copy_to_padded(g.in, g.p, img + nc * plane, pad.data());
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          T* dst = col + (nc * K + (kd * g.k[1] + kh) * g.k[2] + kw) * L;
          for (int64_t od = 0; od < g.out[0]; ++od)
            for (int64_t oh = 0; oh < g.out[1]; ++oh, dst += g.out[2])
              stream_copy(dst,
                          pad.data() + ((od * g.s[0] + kd * g.d[0]) * pin[1] + oh * g.s[1] + kh * g.d[1]) * pin[2] +
                              kw * g.d[2],
                          g.out[2]);
        }
  }
}

/// col2im, the adjoint of unfold_planes: img[nc] = the sum of the windows' columns, for planes
/// nc in [nc0, nc1), on the calling thread. Each plane is accumulated into a zero-initialised
/// scratch plane padded by p on every side, so every window row is added whole (no bounds, no
/// clipped tails), then the interior is copied out: img needs no zero-fill. With `stream` the
/// copy out uses non-temporal stores (the caller fences).
template <typename T>
void fold_planes(const Geometry& g, T* img, const T* col, int64_t nc0, int64_t nc1, bool stream = false) {
  const int64_t K = g.kernel_numel(), L = g.positions(), plane = g.plane();
  std::array<int64_t, 3> pin{};  // the padded plane's extent
  for (size_t i = 0; i < 3; ++i) pin[i] = g.in[i] + 2 * g.p[i];
  const int64_t pplane = pin[0] * pin[1] * pin[2];
  std::vector<T> pad_buf(static_cast<size_t>(pplane + 64 / int64_t(sizeof(T))));
  T* pp = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(pad_buf.data()) + 63) & ~uintptr_t(63));
  const int64_t n = g.out[2], st = g.s[2], row_step = g.s[1] * pin[2];
  for (int64_t nc = nc0; nc < nc1; ++nc) {
    std::fill(pp, pp + pplane, T(0));
    const T* c = col + nc * K * L;
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const T* src = c + ((kd * g.k[1] + kh) * g.k[2] + kw) * L;
          for (int64_t od = 0; od < g.out[0]; ++od) {
            T* dst = pp + ((od * g.s[0] + kd * g.d[0]) * pin[1] + kh * g.d[1]) * pin[2] + kw * g.d[2];
            for (int64_t oh = 0; oh < g.out[1]; ++oh, dst += row_step, src += n) {
              __builtin_prefetch(src + 512);  // the column stream, 2 KB ahead
              if (st == 1)
                add_row(dst, src, n);
              else
                for (int64_t ow = 0; ow < n; ++ow) dst[ow * st] += src[ow];
            }
          }
        }
    T* out = img + nc * plane;
    for (int64_t d = 0; d < g.in[0]; ++d)
      for (int64_t h = 0; h < g.in[1]; ++h) {
        const T* src = pp + ((d + g.p[0]) * pin[1] + h + g.p[1]) * pin[2] + g.p[2];
        T* dst = out + (d * g.in[1] + h) * g.in[2];
        if (stream)
          stream_copy(dst, src, g.in[2]);
        else
          std::copy(src, src + g.in[2], dst);
      }
  }
}

}  // namespace tg::prim::window
