// roi_align as a composite: the bilinear taps of every sample are computed from the boxes (which
// take no gradient), and the output is a weighted sum of input pixels picked with index_select.
// Its gradient (an index_add of the weighted output gradient) and second derivatives come from
// those primitives. The geometry follows torchvision's CPU kernel (roi_align_kernel.cpp) step by
// step, in the input's dtype.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "vision.hpp"

namespace tg::vision {

namespace {

std::string describe(const Tensor& t) {
  return t.defined() ? fmt::format("{} {}", dtype_name(t.dtype()), shape_str(t.shape())) : "undefined";
}

// The taps of one box: for each of its out_h * out_w bins, `taps` (row, weight) pairs, rows
// indexing the input viewed as [N * H * W, C]. Weights include the 1 / samples average.
struct BoxTaps {
  int64_t taps = 0;
  std::vector<int64_t> rows;
  std::vector<double> weights;
};

template <typename T>
BoxTaps box_taps(const T* roi, int64_t height, int64_t width, int64_t ph_n, int64_t pw_n, T scale,
                 int64_t sampling_ratio, bool aligned) {
  const int64_t b = int64_t(roi[0]);
  const T offset = aligned ? T(0.5) : T(0);
  const T start_w = roi[1] * scale - offset, start_h = roi[2] * scale - offset;
  const T end_w = roi[3] * scale - offset, end_h = roi[4] * scale - offset;
  T roi_w = end_w - start_w, roi_h = end_h - start_h;
  if (!aligned) {  // the original Mask R-CNN: boxes at least one pixel wide
    roi_w = std::max(roi_w, T(1));
    roi_h = std::max(roi_h, T(1));
  }
  const T bin_h = roi_h / T(ph_n), bin_w = roi_w / T(pw_n);
  const int64_t grid_h = sampling_ratio > 0 ? sampling_ratio : int64_t(std::ceil(roi_h / T(ph_n)));
  const int64_t grid_w = sampling_ratio > 0 ? sampling_ratio : int64_t(std::ceil(roi_w / T(pw_n)));
  const T count = T(std::max<int64_t>(grid_h * grid_w, 1));

  BoxTaps t;
  // A box with no samples (zero size, adaptive grid) still gets one tap of weight 0, so that the
  // output stays on the tape.
  t.taps = std::max<int64_t>(4 * grid_h * grid_w, 1);
  t.rows.assign(size_t(ph_n * pw_n * t.taps), b * height * width);
  t.weights.assign(t.rows.size(), 0.0);
  for (int64_t ph = 0; ph < ph_n; ++ph)
    for (int64_t pw = 0; pw < pw_n; ++pw) {
      size_t k = size_t((ph * pw_n + pw) * t.taps);
      for (int64_t iy = 0; iy < grid_h; ++iy) {
        const T y0 = start_h + T(ph) * bin_h + T(iy + 0.5) * bin_h / T(grid_h);
        for (int64_t ix = 0; ix < grid_w; ++ix, k += 4) {
          const T x0 = start_w + T(pw) * bin_w + T(ix + 0.5) * bin_w / T(grid_w);
          if (y0 < T(-1) || y0 > T(height) || x0 < T(-1) || x0 > T(width)) continue;  // outside: weight 0
          T y = std::max(y0, T(0)), x = std::max(x0, T(0));
          int64_t y_lo = int64_t(y), x_lo = int64_t(x), y_hi, x_hi;
          if (y_lo >= height - 1) {
            y_hi = y_lo = height - 1;
            y = T(y_lo);
          } else {
            y_hi = y_lo + 1;
          }
          if (x_lo >= width - 1) {
            x_hi = x_lo = width - 1;
            x = T(x_lo);
          } else {
            x_hi = x_lo + 1;
          }
          const T ly = y - T(y_lo), lx = x - T(x_lo), hy = T(1) - ly, hx = T(1) - lx;
          const int64_t base = b * height * width;
          const int64_t r[4] = {base + y_lo * width + x_lo, base + y_lo * width + x_hi, base + y_hi * width + x_lo,
                                base + y_hi * width + x_hi};
          const T w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
          for (int c = 0; c < 4; ++c) {
            t.rows[k + size_t(c)] = r[c];
            t.weights[k + size_t(c)] = double(w[c] / count);
          }
        }
      }
    }
  return t;
}

}  // namespace

Tensor roi_align(const Tensor& input, const Tensor& boxes, const RoiAlignOptions& o) {
  if (!input.defined() || input.dim() != 4 || !is_floating(input.dtype()))
    throw Error(fmt::format("roi_align: expected a floating input [N, C, H, W], got {}", describe(input)));
  if (!boxes.defined() || boxes.dim() != 2 || boxes.size(1) != 5 || !is_floating(boxes.dtype()))
    throw Error(fmt::format(
        "roi_align: expected floating boxes [K, 5] of (image index, x1, y1, x2, y2) rows (or a list of [L, 4]), got {}",
        describe(boxes)));
  const IntList& os = o.output_size();
  if ((os.size() != 1 && os.size() != 2) || *std::min_element(os.begin(), os.end()) < 1)
    throw Error(fmt::format("roi_align: expected output_size as one or two positive values, got [{}]",
                            fmt::join(os, ", ")));
  if (!std::isfinite(o.spatial_scale()) || o.spatial_scale() <= 0)
    throw Error(fmt::format("roi_align: expected a positive spatial_scale, got {}", o.spatial_scale()));
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t ph = os[0], pw = os.size() == 2 ? os[1] : os[0], k_n = boxes.size(0);
  if (h < 1 || w < 1)
    throw Error(fmt::format("roi_align: the input's spatial size must be positive, got {}", shape_str(input.shape())));

  // Taps per box, in the input's dtype (as torchvision computes them).
  const Tensor rois = boxes.detach().to(input.dtype());
  std::vector<BoxTaps> taps(static_cast<size_t>(k_n));
  dispatch_floating(input.dtype(), "roi_align", [&](auto z) {
    using T = decltype(z);
    const T* r = typed<T>(rois);
    for (int64_t k = 0; k < k_n; ++k) {
      const T* roi = r + 5 * k;
      for (int i = 0; i < 5; ++i)
        if (!std::isfinite(roi[i]))
          throw Error(fmt::format("roi_align: box {} has a non-finite value ({})", k, double(roi[i])));
      if (roi[0] < 0 || roi[0] >= T(n) || roi[0] != std::floor(roi[0]))
        throw Error(fmt::format("roi_align: box {} names image {}, expected an integer in [0, {})", k,
                                double(roi[0]), n));
      taps[size_t(k)] = box_taps<T>(roi, h, w, ph, pw, T(o.spatial_scale()), o.sampling_ratio(), o.aligned());
    }
  });

  // The input as rows of channels: row (b * H + y) * W + x holds the C values of one pixel.
  const Tensor rows = input.permute({0, 2, 3, 1}).reshape({n * h * w, c});
  // Boxes with the same number of taps per bin are pooled together, one tap at a time:
  // out += index_select(rows, tap rows) * tap weights (so that without grad mode only two
  // [boxes * bins, C] tensors are alive at once).
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t k = 0; k < k_n; ++k) groups[taps[size_t(k)].taps].push_back(k);
  std::vector<Tensor> pooled;
  std::vector<double> position(size_t(k_n * ph * pw));  // output row (box, bin) -> row of cat(pooled)
  int64_t next_row = 0;
  for (const auto& [t_n, members] : groups) {
    const int64_t bins = ph * pw, g_rows = int64_t(members.size()) * bins;
    Tensor acc;
    for (int64_t t = 0; t < t_n; ++t) {
      std::vector<double> idx(static_cast<size_t>(g_rows)), wt(static_cast<size_t>(g_rows));
      for (size_t m = 0; m < members.size(); ++m) {
        const BoxTaps& bt = taps[size_t(members[m])];
        for (int64_t bin = 0; bin < bins; ++bin) {
          const size_t src = size_t(bin * t_n + t), dst = m * size_t(bins) + size_t(bin);
          idx[dst] = double(bt.rows[src]);
          wt[dst] = bt.weights[src];
        }
      }
      Tensor term = index_select(rows, 0, tensor(idx, {g_rows}, kInt64)) * tensor(wt, {g_rows, 1}, input.dtype());
      acc = acc.defined() ? acc + term : term;
    }
    for (size_t m = 0; m < members.size(); ++m)
      for (int64_t bin = 0; bin < bins; ++bin)
        position[size_t(members[m] * bins + bin)] = double(next_row + int64_t(m) * bins + bin);
    next_row += g_rows;
    pooled.push_back(acc);
  }
  Tensor out;
  if (k_n == 0) {
    out = index_select(rows, 0, empty({0}, kInt64));  // [0, C], still on the tape
  } else {
    out = pooled.size() == 1 ? pooled[0] : cat(pooled, 0);
    if (groups.size() > 1) out = index_select(out, 0, tensor(position, {k_n * ph * pw}, kInt64));
  }
  return out.reshape({k_n, ph, pw, c}).permute({0, 3, 1, 2});
}

Tensor roi_align(const Tensor& input, const std::vector<Tensor>& boxes, const RoiAlignOptions& o) {
  if (input.defined() && input.dim() == 4 && int64_t(boxes.size()) != input.size(0))
    throw Error(fmt::format("roi_align: expected one box tensor per image ({}), got {}", input.size(0),
                            boxes.size()));
  std::vector<Tensor> rows;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const Tensor& b = boxes[i];
    if (!b.defined() || b.dim() != 2 || b.size(1) != 4 || !is_floating(b.dtype()))
      throw Error(fmt::format("roi_align: expected the boxes of image {} as a floating [L, 4] tensor, got {}", i,
                              describe(b)));
    Tensor d = b.detach();
    rows.push_back(cat({full({b.size(0), 1}, double(i), d.dtype()), d}, 1));
  }
  Tensor all = rows.empty() ? empty({0, 5}, input.defined() ? input.dtype() : kFloat32) : cat(rows, 0);
  return roi_align(input, all, o);
}

Tensor roi_align(const Tensor& input, const Tensor& boxes, IntList output_size, double spatial_scale,
                 int64_t sampling_ratio, bool aligned) {
  return roi_align(input, boxes,
                   RoiAlignOptions(std::move(output_size)).spatial_scale(spatial_scale).sampling_ratio(sampling_ratio).aligned(aligned));
}

Tensor roi_align(const Tensor& input, const std::vector<Tensor>& boxes, IntList output_size, double spatial_scale,
                 int64_t sampling_ratio, bool aligned) {
  return roi_align(input, boxes,
                   RoiAlignOptions(std::move(output_size)).spatial_scale(spatial_scale).sampling_ratio(sampling_ratio).aligned(aligned));
}

}  // namespace tg::vision
