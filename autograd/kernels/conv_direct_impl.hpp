// The direct convolution's vector kernels, written once with xsimd batches. Included only by
// conv_direct_<level>.cpp, each compiled with its level's target flags, after defining
//   TG_KERNEL_NS    the namespace of that level's copies (avx512, avx2, generic): every function
//                   here gets a name of its own per level, so the linker never merges an AVX-512
//                   copy into the code another level runs;
//   TG_KERNEL_ARCH  the xsimd architecture;
//   TG_KERNEL_ISA, TG_KERNEL_ROWS, TG_KERNEL_VECS  the level and its forward tile.
// The weight tiles are listed in weight_grad_taps; TG_KERNEL_TAP_PAD is a multiple of their taps.
#include <immintrin.h>
#include <xsimd/xsimd.hpp>

#include "conv_direct.hpp"

namespace tg::prim::direct::TG_KERNEL_NS {
namespace {

using B = xsimd::batch<float, TG_KERNEL_ARCH>;
constexpr int64_t W = int64_t(B::size);
constexpr int kRows = TG_KERNEL_ROWS;
constexpr int kVecs = TG_KERNEL_VECS;

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Where one vector of W grid positions lands in the output: lanes [lo, hi) go to y + lane.
struct Segment {
  int64_t y;  // output index of lane 0 (lanes outside [lo, hi) are never written)
  int lo, hi;
};

// Vector j of a group's forward: its first grid position, and where its lanes land in the output
// (one full segment along an output row, or up to a few row segments along the grid).
int64_t vector_at(const Plan& pl, int64_t j, Segment* seg, int& nseg) {
  if (pl.row_vectors) {
    const int64_t t = j / pl.row_vectors, c = j % pl.row_vectors * W;  // output row t, column c
    nseg = 1;
    seg[0] = {t * pl.out[2] + c, 0, int(W)};
    return ((t / pl.out[1]) * pl.pin[1] + t % pl.out[1]) * pl.pin[2] + c;
  }
  const int64_t q0 = j * W;
  nseg = 0;
  for (int64_t qa = q0; qa < q0 + W;) {
    const int64_t r = qa / pl.pin[2], od = r / pl.pin[1], oh = r % pl.pin[1];
    if (od >= pl.out[0]) break;
    const int64_t end = min64(q0 + W, r * pl.pin[2] + pl.out[2]);
    if (oh < pl.out[1] && qa < end)
      seg[nseg++] = {(od * pl.out[1] + oh) * pl.out[2] - r * pl.pin[2] + q0, int(qa - q0), int(end - q0)};
    qa = (r + 1) * pl.pin[2];
  }
  return q0;
}

// Stores lanes [lo, hi) of v at y (the whole vector when it is all of them), never touching the
// others (they may lie past the output or belong to another thread's rows): a masked store where
// the level has one. A lane-by-lane copy would become a call to memcpy per partial vector.
// A template so that the branch of the other width is discarded, not compiled.
template <typename V>
inline void store_lanes(const V& v, float* y, int lo, int hi) {
  if (lo == 0 && hi == W) {
    v.store_unaligned(y);
    return;
  }
  // By the level's vector width, not only by the compiler's flags: with -march=native
  // (TAPEGRAD_NATIVE) on an AVX-512 processor the AVX2 file sees __AVX512F__ too.
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    const __mmask16 m = __mmask16(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    _mm512_mask_storeu_ps(y, m, v);
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (W == 8) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)),
                                       _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
    _mm256_maskstore_ps(y, m, v);
    return;
  }
#endif
  alignas(64) float tmp[W];
  v.store_aligned(tmp);
  switch (hi - lo) {  // at most 3 lanes of 4: no loop for the compiler to turn into memcpy
    case 3: y[lo + 2] = tmp[lo + 2]; [[fallthrough]];
    case 2: y[lo + 1] = tmp[lo + 1]; [[fallthrough]];
    case 1: y[lo] = tmp[lo]; break;
    default: for (int i = lo; i < hi; ++i) y[i] = tmp[i];
  }
}

// y[r][v][lane] = bias[r] + sum_k a[k][r] x[off[k] + qv[v] + lane] for the `rows` valid rows of
// an R x V tile: the accumulators stay in registers for the whole reduction (kept local, so the
// compiler does not write them back each step), then land through the segments.
template <int NV>
void forward_tile(const float* __restrict a, const float* __restrict x, const int64_t* qv, const int32_t* __restrict off,
                  int64_t kk, const float* bias, int64_t rows, float* y, int64_t ldy, const Segment (*seg)[W + 2],
                  const int* nseg) {
  B acc[kRows][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[r][v] = B(bias ? bias[r] : 0.0f);
  for (int64_t k = 0; k < kk; ++k) {
    const float* b = x + off[k];
    B bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = B::load_unaligned(b + qv[v]);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const B ar(a[k * kRows + r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(ar, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r)
    if (r < rows)
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v)
        for (int s = 0; s < nseg[v]; ++s) store_lanes(acc[r][v], y + r * ldy + seg[v][s].y, seg[v][s].lo, seg[v][s].hi);
}

void forward(const Plan& pl, const float* padded, const float* packed, const float* bias, float* y, int64_t i0,
             int64_t i1) {
  const int64_t L = pl.out[0] * pl.out[1] * pl.out[2], tiles = forward_items(pl) / pl.groups;
  Segment seg[kVecs][W + 2];
  int nseg[kVecs];
  int64_t qv[kVecs];
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t g = item / tiles, j0 = item % tiles * kVecs;
    const float* xg = padded + g * pl.cg * pl.pplane;
    const int nv = int(min64(kVecs, pl.vectors - j0));
    for (int v = 0; v < nv; ++v) qv[v] = vector_at(pl, j0 + v, seg[v], nseg[v]);
    for (int64_t cb = 0; cb < pl.ogr; cb += kRows) {
      const float* a = packed + (g * pl.ogr + cb) * pl.kk;
      const int64_t rows = min64(kRows, pl.og - cb);
      float bias_rows[kRows] = {};  // the last block's padding rows read no bias
      if (bias)
        for (int64_t r = 0; r < rows; ++r) bias_rows[r] = bias[g * pl.og + cb + r];
      const float* br = bias ? bias_rows : nullptr;
      float* yb = y + (g * pl.og + cb) * L;
      static_assert(kVecs >= 1 && kVecs <= 3, "forward_tile is instantiated for 1 to 3 vectors");
      if (nv == kVecs)
        forward_tile<kVecs>(a, xg, qv, pl.off.data(), pl.kk, br, rows, yb, L, seg, nseg);
      else if (nv == 2)
        forward_tile<2>(a, xg, qv, pl.off.data(), pl.kk, br, rows, yb, L, seg, nseg);
      else
        forward_tile<1>(a, xg, qv, pl.off.data(), pl.kk, br, rows, yb, L, seg, nseg);
    }
  }
}

// dst[j * ldd + i] = src[i * lds + j] for a rows x cols block (at most W x W), zero for rows
// i in [rows, W). Plain loops: the compiler vectorises the contiguous side, and the transpose
// costs little beside the weight tiles it feeds.
void transpose_block(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  for (int64_t j = 0; j < cols; ++j) {
    float* d = dst + j * ldd;
    for (int64_t i = 0; i < rows; ++i) d[i] = src[i * lds + j];
    for (int64_t i = rows; i < W; ++i) d[i] = 0.0f;
  }
}

void transpose_gradient(const Plan& pl, const float* g, int64_t group, float* gt) {
  // Only output positions are written: the tiles never read the others.
  const int64_t L = pl.out[0] * pl.out[1] * pl.out[2];
  const float* gg = g + group * pl.og * L;
  for (int64_t od = 0; od < pl.out[0]; ++od)
    for (int64_t oh = 0; oh < pl.out[1]; ++oh) {
      const int64_t q = (od * pl.pin[1] + oh) * pl.pin[2];
      const float* src = gg + (od * pl.out[1] + oh) * pl.out[2];
      for (int64_t w0 = 0; w0 < pl.out[2]; w0 += W)
        for (int64_t c0 = 0; c0 < pl.ogl; c0 += W)
          transpose_block(src + c0 * L + w0, L, min64(W, pl.og - c0), min64(W, pl.out[2] - w0),
                          gt + (q + w0) * pl.ogl + c0, pl.ogl);
    }
}

// acc[j][v] (taps x output channels) += sum over the spans' positions q of x[off[j] + q] gt[q][W v]:
// the weight gradient, transposed, of KB taps and W NV channels. Only output positions are
// visited, so gt needs no zeros for the discarded ones.
template <int KB, int NV>
void weight_tile(const float* __restrict x, const int32_t* __restrict off, const float* __restrict gt, int64_t ldg,
                 const Span* spans, int64_t nspans, float* __restrict dwt, int64_t ldd) {
  B acc[KB][NV];
  const float* xs[KB];
#pragma GCC unroll 12
  for (int j = 0; j < KB; ++j) {
    xs[j] = x + off[j];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[j][v] = B::load_unaligned(dwt + j * ldd + v * W);
  }
  for (int64_t s = 0; s < nspans; ++s)
    for (int64_t q = spans[s].q0; q < spans[s].q1; ++q) {
      B gv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) gv[v] = B::load_unaligned(gt + q * ldg + v * W);
#pragma GCC unroll 12
      for (int j = 0; j < KB; ++j) {
        const B xb(xs[j][q]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[j][v] = xsimd::fma(xb, gv[v], acc[j][v]);
      }
    }
#pragma GCC unroll 12
  for (int j = 0; j < KB; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[j][v].store_unaligned(dwt + j * ldd + v * W);
}

// dW[W v ...][every tap] for the channels from c0: the tap blocks of one tile shape.
template <int KB, int NV>
void weight_taps(const Plan& pl, const float* x, const float* gt, const Span* spans, int64_t nspans, float* dwt,
                 int64_t c0, int64_t k0, int64_t k1) {
  static_assert(TG_KERNEL_TAP_PAD % KB == 0, "tap blocks must divide the tap padding");
  for (int64_t k = k0; k < k1; k += KB)
    weight_tile<KB, NV>(x, pl.off.data() + k, gt + c0, pl.ogl, spans, nspans, dwt + k * pl.ogl + c0, pl.ogl);
}

void weight_grad_taps(const Plan& pl, const float* gt, const float* padded, int64_t group, float* dwt, int64_t b0,
                      int64_t b1) {
  const float* xg = padded + group * pl.cg * pl.pplane;
  float* dg = dwt + group * pl.kpad * pl.ogl;
  const int64_t k0 = b0 * TG_KERNEL_TAP_PAD, k1 = b1 * TG_KERNEL_TAP_PAD;
  for (size_t p = 0; p + 1 < pl.pass_start.size(); ++p) {
    const Span* sp = pl.spans.data() + pl.pass_start[p];
    const int64_t ns = int64_t(pl.pass_start[p + 1] - pl.pass_start[p]);
    for (int64_t c0 = 0; c0 < pl.ogl; c0 += 4 * W) {
      switch (min64(4, (pl.ogl - c0) / W)) {
        case 4: weight_taps<TG_KERNEL_TILE4, 4>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
        case 3: weight_taps<TG_KERNEL_TILE3, 3>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
        case 2: weight_taps<TG_KERNEL_TILE2, 2>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
        default: weight_taps<TG_KERNEL_TILE1, 1>(pl, xg, gt, sp, ns, dg, c0, k0, k1); break;
      }
    }
  }
}

}  // namespace
}  // namespace tg::prim::direct::TG_KERNEL_NS

namespace tg::prim::direct {
extern const Kernels TG_KERNEL_TABLE;
const Kernels TG_KERNEL_TABLE{TG_KERNEL_ISA,
                              TG_KERNEL_NS::W,
                              TG_KERNEL_ROWS,
                              TG_KERNEL_VECS,
                              TG_KERNEL_TAP_PAD,
                              &TG_KERNEL_NS::forward,
                              &TG_KERNEL_NS::transpose_gradient,
                              &TG_KERNEL_NS::weight_grad_taps};
}  // namespace tg::prim::direct
