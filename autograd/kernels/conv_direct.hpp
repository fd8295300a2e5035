#pragma once
// Internal: direct (implicit-GEMM) convolution kernels for float32, stride 1, written once with
// xsimd batches and compiled for each instruction-set level (kernels/isa.hpp): W lanes per
// vector, 16 on AVX-512, 8 on AVX2, 4 on the generic (SSE2) level.
//
// Each sample's input is copied into zero-padded channel planes. On the padded grid an output
// position q = (od * P1 + oh) * P2 + ow (P = the padded extents) reads its window at
// q + off(ci, kd, kh, kw), one fixed offset per kernel tap: the unfolded matrix is never built,
// and its row for a tap is the padded planes shifted by that offset. The forward's vectors of W
// positions follow the output rows when the width is a multiple of W; otherwise they run along
// the grid, and the positions with ow or oh past the output's extent are computed and discarded.
//
//   forward:      y[co, q] = sum_k W[co, k] x[q + off[k]]         R output channels x V vectors
//                 of positions per register tile, the weights broadcast, the input loaded.
//   weight grad:  dW[co, k] += sum_q g[co, q] x[q + off[k]]       the gradient transposed to
//                 [q, co] so the tile is a block of taps x 1-4 vectors of output channels, the
//                 input broadcast: no horizontal sums.
//
// The tile shapes (R, V, the weight tiles' taps) fill each level's register file: 32 vector
// registers on AVX-512, 16 on AVX2 and SSE2. conv_input_grad at stride 1 is itself a forward
// convolution, so it uses the forward kernel.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "isa.hpp"

namespace tg::prim::direct {

// Grid positions [q0, q1): one output row, or a piece of one.
struct Span {
  int64_t q0, q1;
};

struct Plan;

/// One level's kernels and tile constants (kernels/conv_direct_<level>.cpp).
struct Kernels {
  kernels::Isa isa;
  int64_t lanes;    // W: floats per vector
  int64_t rows;     // forward tile: output channels
  int64_t vecs;     // forward tile: vectors of positions
  int64_t tap_pad;  // weight-grad tiles take tap blocks that divide this
  void (*forward)(const Plan&, const float* padded, const float* packed, const float* bias, float* y, int64_t i0,
                  int64_t i1);
  void (*transpose_gradient)(const Plan&, const float* g, int64_t group, float* gt);
  void (*weight_grad_taps)(const Plan&, const float* gt, const float* padded, int64_t group, float* dwt, int64_t b0,
                           int64_t b1);
};

/// The kernels of a level (every level is compiled in on x86-64).
const Kernels& kernels_for(kernels::Isa isa);

struct Plan {
  const Kernels* k = nullptr;                  // the level the plan was made for
  int64_t groups = 1, cg = 0, og = 0;          // groups, input and output channels per group
  std::array<int64_t, 3> in{}, out{}, pin{};   // input, output, padded input extents (3-D)
  std::array<int64_t, 3> p{};                  // padding
  int64_t pplane = 0;                          // floats per padded plane
  int64_t q = 0;                               // grid positions up to the last output + 1
  int64_t kk = 0;                              // taps per output channel: cg * kernel numel
  int64_t ogr = 0;                             // og rounded up to the forward tile's rows
  int64_t ogl = 0, kpad = 0;                   // weight grad: og to whole vectors, kk to tap_pad
  int64_t row_vectors = 0;                     // forward: vectors per output row when tiles
                                               // follow output rows (widths of W k), else 0
  int64_t vectors = 0;                         // forward: vectors of positions per group
  std::vector<int32_t> off;                    // [kpad] tap offsets into one group's planes
  std::vector<Span> spans;                     // weight grad: the output rows on the grid, in
  std::vector<std::size_t> pass_start;         // passes of about 128 positions (spans[pass_start[i]...])
  int64_t padded_floats() const;               // one sample's padded planes (+ read slack)
};

/// A plan at the active level for x [N, groups * cg, *in] * w [groups * og, cg, *k] at stride 1,
/// or false when the direct kernels do not apply or measured slower than unfold + GEMM: fewer
/// than 4 output channels per group (8 for the weight gradient; depthwise convolutions), or a
/// grid with more than a quarter of discarded positions. The caller then uses unfold + GEMM.
bool make_plan(int64_t cg, int64_t og, int64_t groups, const std::array<int64_t, 3>& in,
               const std::array<int64_t, 3>& out, const std::array<int64_t, 3>& k,
               const std::array<int64_t, 3>& d, const std::array<int64_t, 3>& p, bool weight_grad, Plan& plan);

/// Copies one sample's channels [c0, c1) into the padded planes (the borders of `padded` must be
/// zero: fill it once, the copies never touch them).
void pad_sample(const Plan& pl, const float* x, float* padded, int64_t c0, int64_t c1);

/// The weights [groups * og, kk] in the forward tile's layout: [groups][ogr / R][kk][R], zero rows
/// beyond og. `packed` has groups * ogr * kk floats.
void pack_weights(const Plan& pl, const float* w, float* packed);

/// Work items of one sample's forward: groups x tiles of V vectors of positions.
int64_t forward_items(const Plan& pl);

/// y[n] (all groups), items [i0, i1) of it, from a padded sample, plus the bias when given. A
/// sample split between threads by item writes disjoint parts of y.
void forward_sample(const Plan& pl, const float* padded, const float* packed, const float* bias, float* y,
                    int64_t i0, int64_t i1);

/// Floats of scratch the weight gradient needs: one group's gradient, transposed.
int64_t weight_grad_scratch(const Plan& pl);

/// Blocks of tap_pad taps (kpad / tap_pad): the weight gradient of one group splits between
/// threads by them.
int64_t tap_blocks(const Plan& pl);

/// gt[q][o] = g[group][o] at each output position q of the grid (zero padding channels).
void transpose_gradient(const Plan& pl, const float* g, int64_t group, float* gt);

/// dwt[group][k][ogl] += the weight gradient for the tap blocks [b0, b1) of one group, from its
/// transposed gradient and the padded sample.
void weight_grad_taps(const Plan& pl, const float* gt, const float* padded, int64_t group, float* dwt, int64_t b0,
                      int64_t b1);

/// dwt[group][kpad][ogl] += the sample's weight gradient, transposed (every group, every tap).
void weight_grad_sample(const Plan& pl, const float* g, const float* padded, float* dwt, float* scratch);

/// dw[group * og + o][k] += dwt[group][k][o].
void weight_grad_finish(const Plan& pl, const float* dwt, float* dw);

}  // namespace tg::prim::direct
