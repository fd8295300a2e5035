// Direct convolution kernels (see conv_direct.hpp for the scheme).
#include "conv_direct.hpp"

#include <algorithm>
#include <limits>

#include "window.hpp"

#if defined(__AVX512F__)
// GCC 12 warns that _mm512_undefined_ps() (inside the shuffle intrinsics) is uninitialised: its
// bug 105593, a false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define TG_DIRECT_CONV 1
#else
#define TG_DIRECT_CONV 0
#endif

namespace tg::prim::direct {
namespace {

constexpr int64_t kRows = 8;     // forward tile: output channels
constexpr int64_t kVecs = 3;     // forward tile: 16-float vectors of positions
constexpr int64_t kLanes = 16;
constexpr int64_t kTapPad = 24;  // weight-grad tiles take 6, 8 or 12 taps: kk is padded to 24
constexpr int64_t kChunk = 128;  // weight grad: positions per pass (measured: 48-512, best 128)

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

}  // namespace

int64_t Plan::padded_floats() const { return groups * cg * pplane + kVecs * kLanes + kLanes; }

bool available() { return TG_DIRECT_CONV != 0; }

bool make_plan(int64_t cg, int64_t og, int64_t groups, const std::array<int64_t, 3>& in,
               const std::array<int64_t, 3>& out, const std::array<int64_t, 3>& k,
               const std::array<int64_t, 3>& d, const std::array<int64_t, 3>& p, bool weight_grad, Plan& pl) {
  if (!available() || cg < 1 || og < 1) return false;
  pl = Plan{};
  pl.groups = groups;
  pl.cg = cg;
  pl.og = og;
  pl.in = in;
  pl.out = out;
  pl.p = p;
  for (size_t i = 0; i < 3; ++i) {
    pl.pin[i] = in[i] + 2 * p[i];
    if (out[i] < 1 || out[i] != pl.pin[i] - d[i] * (k[i] - 1)) return false;  // stride 1 only
  }
  pl.pplane = pl.pin[0] * pl.pin[1] * pl.pin[2];
  pl.q = ((out[0] - 1) * pl.pin[1] + out[1] - 1) * pl.pin[2] + out[2];
  const int64_t taps = k[0] * k[1] * k[2];
  pl.kk = cg * taps;
  pl.og8 = round_up(og, kRows);
  pl.og16 = round_up(og, kLanes);
  pl.kpad = round_up(pl.kk, kTapPad);
  // Tap offsets are int32 (an offset table read every step of the tiles' inner loops).
  if (double(groups * cg) * double(pl.pplane) + 1024 > double(std::numeric_limits<int32_t>::max())) return false;
  // Padding rows (channels up to 8 or 16) and taps (up to 24) are computed and thrown away, and
  // still beat OpenBLAS on the unfolded sample, measured one thread, 32 samples: 12 output
  // channels 75-92 GFLOP/s forward and 66-79 weight gradient against GEMM's 25-43 (unfold not
  // even counted); one input channel (9 taps padded to 24) 60 and 28-34 against 17-18; 4 output
  // channels 49 forward against 26, but 26 weight gradient against 25; depthwise (one channel in
  // and out per group) 7 forward and 2 weight gradient against 6-8 and 4. Hence at least 4
  // output channels per group forward and 8 for the weight gradient. A grid with many discarded
  // positions (small planes with wide padding) is not taken either.
  // The forward's vectors of 16 positions run along the grid, or, when the output width is a
  // multiple of 16 and that is fewer, along the output rows: no discarded positions at all.
  const int64_t L = out[0] * out[1] * out[2];
  pl.vectors = (pl.q + kLanes - 1) / kLanes;
  if (out[2] % kLanes == 0 && L / kLanes < pl.vectors) {
    pl.row_vectors = out[2] / kLanes;
    pl.vectors = L / kLanes;
  }
  if (pl.row_vectors == 0 && 4 * pl.q > 5 * L + 4 * kVecs * kLanes) return false;
  if (og < (weight_grad ? 8 : 4)) return false;
  // The weight gradient's passes: output rows cut at kChunk positions, whole rows grouped while
  // they fit, so each pass's gradient and input rows stay in cache while every tap block runs.
  pl.pass_start.push_back(0);
  int64_t in_pass = 0;
  for (int64_t od = 0; od < out[0]; ++od)
    for (int64_t oh = 0; oh < out[1]; ++oh)
      for (int64_t ow = 0; ow < out[2]; ow += kChunk) {
        const int64_t q = (od * pl.pin[1] + oh) * pl.pin[2] + ow, n = std::min(kChunk, out[2] - ow);
        if (in_pass > 0 && in_pass + n > kChunk) {
          pl.pass_start.push_back(pl.spans.size());
          in_pass = 0;
        }
        pl.spans.push_back({q, q + n});
        in_pass += n;
      }
  pl.pass_start.push_back(pl.spans.size());
  pl.off.assign(size_t(pl.kpad), 0);
  for (int64_t ci = 0; ci < cg; ++ci)
    for (int64_t a = 0; a < k[0]; ++a)
      for (int64_t b = 0; b < k[1]; ++b)
        for (int64_t c = 0; c < k[2]; ++c)
          pl.off[size_t(((ci * k[0] + a) * k[1] + b) * k[2] + c)] =
              int32_t(ci * pl.pplane + (a * d[0] * pl.pin[1] + b * d[1]) * pl.pin[2] + c * d[2]);
  return true;
}

void pad_sample(const Plan& pl, const float* x, float* padded, int64_t c0, int64_t c1) {
  const int64_t plane = pl.in[0] * pl.in[1] * pl.in[2];
  for (int64_t c = c0; c < c1; ++c) window::copy_to_padded(pl.in, pl.p, x + c * plane, padded + c * pl.pplane);
}

void pack_weights(const Plan& pl, const float* w, float* packed) {
  for (int64_t g = 0; g < pl.groups; ++g)
    for (int64_t o = 0; o < pl.og8; ++o) {
      float* dst = packed + (g * pl.og8 + o / kRows * kRows) * pl.kk + o % kRows;
      for (int64_t k = 0; k < pl.kk; ++k) dst[k * kRows] = o < pl.og ? w[(g * pl.og + o) * pl.kk + k] : 0.0f;
    }
}

void weight_grad_finish(const Plan& pl, const float* dwt, float* dw) {
  for (int64_t g = 0; g < pl.groups; ++g)
    for (int64_t o = 0; o < pl.og; ++o)
      for (int64_t k = 0; k < pl.kk; ++k) dw[(g * pl.og + o) * pl.kk + k] += dwt[(g * pl.kpad + k) * pl.og16 + o];
}

int64_t weight_grad_scratch(const Plan& pl) { return pl.q * pl.og16; }

int64_t forward_items(const Plan& pl) { return pl.groups * ((pl.vectors + kVecs - 1) / kVecs); }

int64_t tap_blocks(const Plan& pl) { return pl.kpad / kTapPad; }

void weight_grad_sample(const Plan& pl, const float* g, const float* padded, float* dwt, float* scratch) {
  for (int64_t gi = 0; gi < pl.groups; ++gi) {
    transpose_gradient(pl, g, gi, scratch);
    weight_grad_taps(pl, scratch, padded, gi, dwt, 0, tap_blocks(pl));
  }
}

#if TG_DIRECT_CONV
namespace {

// Where one vector of 16 grid positions lands in the output: up to a few masked row segments.
struct Segment {
  int64_t y;  // output index of lane 0 (lanes outside the mask are never touched)
  __mmask16 mask;
};

// Vector j of a group's forward: its first grid position, and where its lanes land in the output
// (one full segment along an output row, or up to a few masked row segments along the grid).
int64_t vector_at(const Plan& pl, int64_t j, Segment* seg, int& nseg) {
  if (pl.row_vectors) {
    const int64_t t = j / pl.row_vectors, c = j % pl.row_vectors * kLanes;  // output row t, column c
    nseg = 1;
    seg[0] = {t * pl.out[2] + c, __mmask16(0xffff)};
    return ((t / pl.out[1]) * pl.pin[1] + t % pl.out[1]) * pl.pin[2] + c;
  }
  const int64_t q0 = j * kLanes;
  nseg = 0;
  for (int64_t qa = q0; qa < q0 + kLanes;) {
    const int64_t r = qa / pl.pin[2], od = r / pl.pin[1], oh = r % pl.pin[1];
    if (od >= pl.out[0]) break;
    const int64_t end = std::min(q0 + kLanes, r * pl.pin[2] + pl.out[2]);
    if (oh < pl.out[1] && qa < end) {
      const unsigned lo = unsigned(qa - q0), hi = unsigned(end - q0);
      seg[nseg++] = {(od * pl.out[1] + oh) * pl.out[2] - r * pl.pin[2] + q0,
                     __mmask16(((1u << hi) - 1u) & ~((1u << lo) - 1u))};
    }
    qa = (r + 1) * pl.pin[2];
  }
  return q0;
}

// y[r][v][lane] = bias[r] + sum_k a[k][r] x[off[k] + qv[v] + lane] for the `rows` valid rows of
// an 8 x 16 NV tile: the accumulators stay in registers for the whole reduction (kept local, so
// the compiler does not write them back each step), then land through the segments.
template <int NV>
void forward_tile(const float* __restrict a, const float* __restrict x, const int64_t* qv, const int32_t* __restrict off,
                  int64_t kk, const float* bias, int64_t rows, float* y, int64_t ldy, const Segment (*seg)[kLanes + 2],
                  const int* nseg) {
  __m512 acc[kRows][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_set1_ps(bias ? bias[r] : 0.0f);
  for (int64_t k = 0; k < kk; ++k) {
    const float* b = x + off[k];
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + qv[v]);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m512 ar = _mm512_set1_ps(a[k * kRows + r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r)
    if (r < rows)
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v)
        for (int s = 0; s < nseg[v]; ++s) _mm512_mask_storeu_ps(y + r * ldy + seg[v][s].y, seg[v][s].mask, acc[r][v]);
}

// dst[j * ldd + i] = src[i * lds + j] for a rows x cols block (at most 16 x 16), zero for rows
// i >= `rows`; 16 x 16 in registers (unpack, then 128-bit lane shuffles).
void transpose_block(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  const __mmask16 m = __mmask16((1u << cols) - 1u);
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + i * lds) : _mm512_setzero_ps();
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 16; i += 8)
    for (int j = 0; j < 4; ++j) {
      t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
      t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
  }
  for (int j = 0; j < cols; ++j) _mm512_storeu_ps(dst + j * ldd, r[j]);
}

// acc[j][v] (taps x output channels) += sum over the spans' positions q of x[off[j] + q] gt[q][16 v]:
// the weight gradient, transposed, of KB taps and 16 NV channels. Only output positions are
// visited, so gt needs no zeros for the discarded ones.
template <int KB, int NV>
void weight_tile(const float* __restrict x, const int32_t* __restrict off, const float* __restrict gt, int64_t ldg,
                 const Span* spans, int64_t nspans, float* __restrict dwt, int64_t ldd) {
  __m512 acc[KB][NV];
  const float* xs[KB];
#pragma GCC unroll 12
  for (int j = 0; j < KB; ++j) {
    xs[j] = x + off[j];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_loadu_ps(dwt + j * ldd + v * kLanes);
  }
  for (int64_t s = 0; s < nspans; ++s)
    for (int64_t q = spans[s].q0; q < spans[s].q1; ++q) {
      __m512 gv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) gv[v] = _mm512_loadu_ps(gt + q * ldg + v * kLanes);
#pragma GCC unroll 12
      for (int j = 0; j < KB; ++j) {
        const __m512 xb = _mm512_set1_ps(xs[j][q]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[j][v] = _mm512_fmadd_ps(xb, gv[v], acc[j][v]);
      }
    }
#pragma GCC unroll 12
  for (int j = 0; j < KB; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(dwt + j * ldd + v * kLanes, acc[j][v]);
}

// dW[16 v ...][every tap] for the channels from c0: the tap blocks of one tile shape.
template <int KB, int NV>
void weight_taps(const Plan& pl, const float* x, const float* gt, const Span* spans, int64_t nspans, float* dwt,
                 int64_t c0, int64_t k0, int64_t k1) {
  for (int64_t k = k0; k < k1; k += KB)
    weight_tile<KB, NV>(x, pl.off.data() + k, gt + c0, pl.og16, spans, nspans, dwt + k * pl.og16 + c0, pl.og16);
}

}  // namespace

void forward_sample(const Plan& pl, const float* padded, const float* packed, const float* bias, float* y,
                    int64_t i0, int64_t i1) {
  const int64_t L = pl.out[0] * pl.out[1] * pl.out[2], tiles = forward_items(pl) / pl.groups;
  Segment seg[kVecs][kLanes + 2];
  int nseg[kVecs];
  int64_t qv[kVecs];
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t g = item / tiles, j0 = item % tiles * kVecs;
    const float* xg = padded + g * pl.cg * pl.pplane;
    const int nv = int(std::min<int64_t>(kVecs, pl.vectors - j0));
    for (int v = 0; v < nv; ++v) qv[v] = vector_at(pl, j0 + v, seg[v], nseg[v]);
    for (int64_t cb = 0; cb < pl.og8; cb += kRows) {
      const float* a = packed + (g * pl.og8 + cb) * pl.kk;
      const int64_t rows = std::min(kRows, pl.og - cb);
      float bias_rows[kRows] = {};  // the last block's padding rows read no bias
      if (bias)
        for (int64_t r = 0; r < rows; ++r) bias_rows[r] = bias[g * pl.og + cb + r];
      const float* br = bias ? bias_rows : nullptr;
      float* yb = y + (g * pl.og + cb) * L;
      if (nv == 3)
        forward_tile<3>(a, xg, qv, pl.off.data(), pl.kk, br, rows, yb, L, seg, nseg);
      else if (nv == 2)
        forward_tile<2>(a, xg, qv, pl.off.data(), pl.kk, br, rows, yb, L, seg, nseg);
      else
        forward_tile<1>(a, xg, qv, pl.off.data(), pl.kk, br, rows, yb, L, seg, nseg);
    }
  }
}

void transpose_gradient(const Plan& pl, const float* g, int64_t group, float* gt) {
  // By 16 x 16 blocks transposed in registers (a gather per position was slower than the tiles
  // it feeds). Only output positions are written: the tiles never read the others.
  const int64_t L = pl.out[0] * pl.out[1] * pl.out[2];
  const float* gg = g + group * pl.og * L;
  for (int64_t od = 0; od < pl.out[0]; ++od)
    for (int64_t oh = 0; oh < pl.out[1]; ++oh) {
      const int64_t q = (od * pl.pin[1] + oh) * pl.pin[2];
      const float* src = gg + (od * pl.out[1] + oh) * pl.out[2];
      for (int64_t w0 = 0; w0 < pl.out[2]; w0 += kLanes)
        for (int64_t c0 = 0; c0 < pl.og16; c0 += kLanes)
          transpose_block(src + c0 * L + w0, L, std::min(kLanes, pl.og - c0), std::min(kLanes, pl.out[2] - w0),
                          gt + (q + w0) * pl.og16 + c0, pl.og16);
    }
}

void weight_grad_taps(const Plan& pl, const float* gt, const float* padded, int64_t group, float* dwt, int64_t b0,
                      int64_t b1) {
  const float* xg = padded + group * pl.cg * pl.pplane;
  float* dg = dwt + group * pl.kpad * pl.og16;
  const int64_t k0 = b0 * kTapPad, k1 = b1 * kTapPad;
  for (size_t p = 0; p + 1 < pl.pass_start.size(); ++p) {
    const Span* sp = pl.spans.data() + pl.pass_start[p];
    const int64_t ns = int64_t(pl.pass_start[p + 1] - pl.pass_start[p]);
    for (int64_t c0 = 0; c0 < pl.og16; c0 += 4 * kLanes) {
      switch (std::min<int64_t>(4, (pl.og16 - c0) / kLanes)) {
        case 4: weight_taps<6, 4>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
        case 3: weight_taps<8, 3>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
        case 2: weight_taps<12, 2>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
        default: weight_taps<12, 1>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
      }
    }
  }
}

#else  // no AVX-512: make_plan never succeeds, so these are never called

void forward_sample(const Plan&, const float*, const float*, const float*, float*, int64_t, int64_t) {}
void transpose_gradient(const Plan&, const float*, int64_t, float*) {}
void weight_grad_taps(const Plan&, const float*, const float*, int64_t, float*, int64_t, int64_t) {}

#endif

}  // namespace tg::prim::direct
