// Direct convolution: the plans and the level-independent parts (see conv_direct.hpp for the
// scheme); the vector kernels are in conv_direct_impl.hpp, compiled once per level.
#include "conv_direct.hpp"

#include <algorithm>
#include <limits>

#include "../window.hpp"

namespace tg::prim::direct {

extern const Kernels kGenericKernels, kAvx2Kernels, kAvx512Kernels;

namespace {

// Weight grad: positions per pass, so that a pass's gradient and input rows stay in cache while
// every tap block runs over them (docs/benchmarks.md has the measurements).
constexpr int64_t kChunk = 128;

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

}  // namespace

const Kernels& kernels_for(kernels::Isa isa) {
  switch (isa) {
    case kernels::Isa::Avx512: return kAvx512Kernels;
    case kernels::Isa::Avx2: return kAvx2Kernels;
    default: return kGenericKernels;
  }
}

// The forward's last tile may read up to V vectors past the last position, plus one vector.
int64_t Plan::padded_floats() const { return groups * cg * pplane + (k->vecs + 1) * k->lanes; }

bool make_plan(int64_t cg, int64_t og, int64_t groups, const std::array<int64_t, 3>& in,
               const std::array<int64_t, 3>& out, const std::array<int64_t, 3>& k,
               const std::array<int64_t, 3>& d, const std::array<int64_t, 3>& p, bool weight_grad, Plan& pl) {
  if (cg < 1 || og < 1) return false;
  pl = Plan{};
  pl.k = &kernels_for(kernels::active_isa());
  const int64_t lanes = pl.k->lanes;
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
  pl.ogr = round_up(og, pl.k->rows);
  pl.ogl = round_up(og, lanes);
  pl.kpad = round_up(pl.kk, pl.k->tap_pad);
  // Tap offsets are int32 (an offset table read every step of the tiles' inner loops).
  if (double(groups * cg) * double(pl.pplane) + 1024 > double(std::numeric_limits<int32_t>::max())) return false;
  // Padding rows (channels up to R or W) and taps (up to tap_pad) are computed and thrown away,
  // and still beat OpenBLAS on the unfolded sample down to 4 output channels forward and 8 for
  // the weight gradient; depthwise convolutions do not (docs/benchmarks.md). A grid with many
  // discarded positions (small planes with wide padding) is not taken either. The forward's
  // vectors run along the grid, or, when the output width is a multiple of W and that is fewer,
  // along the output rows: no discarded positions at all.
  const int64_t L = out[0] * out[1] * out[2];
  pl.vectors = (pl.q + lanes - 1) / lanes;
  if (out[2] % lanes == 0 && L / lanes < pl.vectors) {
    pl.row_vectors = out[2] / lanes;
    pl.vectors = L / lanes;
  }
  if (pl.row_vectors == 0 && 4 * pl.q > 5 * L + 4 * pl.k->vecs * lanes) return false;
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
  const int64_t R = pl.k->rows;
  for (int64_t g = 0; g < pl.groups; ++g)
    for (int64_t o = 0; o < pl.ogr; ++o) {
      float* dst = packed + (g * pl.ogr + o / R * R) * pl.kk + o % R;
      for (int64_t k = 0; k < pl.kk; ++k) dst[k * R] = o < pl.og ? w[(g * pl.og + o) * pl.kk + k] : 0.0f;
    }
}

void weight_grad_finish(const Plan& pl, const float* dwt, float* dw) {
  for (int64_t g = 0; g < pl.groups; ++g)
    for (int64_t o = 0; o < pl.og; ++o)
      for (int64_t k = 0; k < pl.kk; ++k) dw[(g * pl.og + o) * pl.kk + k] += dwt[(g * pl.kpad + k) * pl.ogl + o];
}

int64_t weight_grad_scratch(const Plan& pl) { return pl.q * pl.ogl; }

int64_t forward_items(const Plan& pl) { return pl.groups * ((pl.vectors + pl.k->vecs - 1) / pl.k->vecs); }

int64_t tap_blocks(const Plan& pl) { return pl.kpad / pl.k->tap_pad; }

void weight_grad_sample(const Plan& pl, const float* g, const float* padded, float* dwt, float* scratch) {
  for (int64_t gi = 0; gi < pl.groups; ++gi) {
    transpose_gradient(pl, g, gi, scratch);
    weight_grad_taps(pl, scratch, padded, gi, dwt, 0, tap_blocks(pl));
  }
}

void forward_sample(const Plan& pl, const float* padded, const float* packed, const float* bias, float* y,
                    int64_t i0, int64_t i1) {
  pl.k->forward(pl, padded, packed, bias, y, i0, i1);
}

void transpose_gradient(const Plan& pl, const float* g, int64_t group, float* gt) {
  pl.k->transpose_gradient(pl, g, group, gt);
}

void weight_grad_taps(const Plan& pl, const float* gt, const float* padded, int64_t group, float* dwt, int64_t b0,
                      int64_t b1) {
  pl.k->weight_grad_taps(pl, gt, padded, group, dwt, b0, b1);
}

}  // namespace tg::prim::direct
