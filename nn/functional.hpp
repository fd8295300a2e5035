#pragma once
/// tg::nn::functional: layers as functions, each composed from autograd primitives only (no
/// hand-written backward; see docs/nn.md for the primitives each one is made of).
///
///   namespace F = tg::nn::functional;
///   Tensor y = F::conv2d(x, w, b, F::ConvOptions().stride({2}).padding({1}));
#include <optional>
#include <string>
#include <vector>

#include "../autograd/arg.hpp"
#include "../autograd/tensor.hpp"

namespace tg {

enum class InterpolateMode { Nearest, Bilinear };
constexpr InterpolateMode kNearest = InterpolateMode::Nearest;
constexpr InterpolateMode kBilinear = InterpolateMode::Bilinear;

enum class PadMode { Constant, Reflect, Replicate };
constexpr PadMode kConstant = PadMode::Constant;
constexpr PadMode kReflect = PadMode::Reflect;
constexpr PadMode kReplicate = PadMode::Replicate;

enum class Reduction { None, Mean, Sum };
constexpr Reduction kNone = Reduction::None;
constexpr Reduction kMean = Reduction::Mean;
constexpr Reduction kSum = Reduction::Sum;

namespace nn::functional {

/// A list of ints that also accepts a single int: `.stride(2)` or `.stride({2, 1})`.
struct IntList : std::vector<int64_t> {
  IntList() = default;
  IntList(int64_t v) : std::vector<int64_t>{v} {}                                  // NOLINT
  IntList(std::initializer_list<int64_t> v) : std::vector<int64_t>(v) {}           // NOLINT
  IntList(std::vector<int64_t> v) : std::vector<int64_t>(std::move(v)) {}          // NOLINT
  IntList(int v) : std::vector<int64_t>{int64_t(v)} {}                             // NOLINT
};

/// Stride, padding, dilation: one value for every spatial dim, or one per dim.
class ConvOptions {
  TG_ARG(IntList, stride){1};
  TG_ARG(IntList, padding){0};
  TG_ARG(IntList, dilation){1};
  TG_ARG(int64_t, groups){1};
};

class ConvTransposeOptions {
  TG_ARG(IntList, stride){1};
  TG_ARG(IntList, padding){0};
  TG_ARG(IntList, output_padding){0};
  TG_ARG(IntList, dilation){1};
  TG_ARG(int64_t, groups){1};
};

/// Pooling windows; an empty stride means stride = kernel (PyTorch's default).
class PoolOptions {
 public:
  PoolOptions() = default;
  explicit PoolOptions(IntList kernel) : kernel_size_(std::move(kernel)) {}
  TG_ARG(IntList, kernel_size);
  TG_ARG(IntList, stride);
  TG_ARG(IntList, padding){0};
  TG_ARG(IntList, dilation){1};
  TG_ARG(bool, ceil_mode){false};
  TG_ARG(bool, count_include_pad){true};
};

class InterpolateOptions {
  TG_ARG(IntList, size);
  TG_ARG(std::vector<double>, scale_factor);
  TG_ARG(InterpolateMode, mode){kNearest};
  TG_ARG(bool, align_corners){false};

 public:
  InterpolateOptions& scale_factor(double s) {
    scale_factor_ = {s};
    return *this;
  }
};

class CrossEntropyOptions {
  TG_ARG(Tensor, weight);
  TG_ARG(int64_t, ignore_index){-100};
  TG_ARG(double, label_smoothing){0.0};
  TG_ARG(Reduction, reduction){kMean};
};

// ---- linear and convolution ----
/// x [..., in] @ w[out, in]^T + b[out].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = {});
/// x [N, C, L] / [N, C, H, W] / [N, C, D, H, W]; w [O, C / groups, *kernel]; b [O].
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b = {}, const ConvOptions& o = {});
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = {}, const ConvOptions& o = {});
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& b = {}, const ConvOptions& o = {});
/// w [C, O / groups, *kernel] (PyTorch's layout); the adjoint of convolution, built with fold.
Tensor conv_transpose1d(const Tensor& x, const Tensor& w, const Tensor& b = {}, const ConvTransposeOptions& o = {});
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b = {}, const ConvTransposeOptions& o = {});
Tensor conv_transpose3d(const Tensor& x, const Tensor& w, const Tensor& b = {}, const ConvTransposeOptions& o = {});
/// Locally connected 2-D: unshared weights, one filter bank per output position.
/// x [N, C, H, W]; w [OH * OW, O, C * kh * kw] (position-major, then the unfold layout of a
/// window: channel, row, column); b [O, OH, OW] or undefined.
Tensor locally_connected2d(const Tensor& x, const Tensor& w, const Tensor& b, IntList kernel,
                           const ConvOptions& o = {});

// ---- pooling ----
Tensor max_pool1d(const Tensor& x, const PoolOptions& o);
Tensor max_pool2d(const Tensor& x, const PoolOptions& o);
Tensor max_pool3d(const Tensor& x, const PoolOptions& o);
Tensor avg_pool1d(const Tensor& x, const PoolOptions& o);
Tensor avg_pool2d(const Tensor& x, const PoolOptions& o);
Tensor avg_pool3d(const Tensor& x, const PoolOptions& o);
/// API.md's positional forms: max_pool2d(x, kernel, stride, padding).
Tensor max_pool2d(const Tensor& x, IntList kernel, IntList stride = {}, IntList padding = 0);
Tensor avg_pool2d(const Tensor& x, IntList kernel, IntList stride = {}, IntList padding = 0);
Tensor adaptive_avg_pool2d(const Tensor& x, IntList output_size);
Tensor adaptive_max_pool2d(const Tensor& x, IntList output_size);
/// Mean / max over all spatial dims, keeping [N, C].
Tensor global_avg_pool(const Tensor& x);
Tensor global_max_pool(const Tensor& x);

// ---- resampling and padding ----
/// Nearest or bilinear (4-D input), by size or scale factor.
Tensor interpolate(const Tensor& x, const InterpolateOptions& o);
/// F.pad: pads (before, after) pairs from the last dim; reflect/replicate pad the last 1-3 dims.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode = kConstant, double value = 0.0);

// ---- normalisation ----
/// x [N, C, *]; running statistics updated in training (momentum, unbiased variance) when given.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight = {},
                  const Tensor& bias = {}, bool training = false, double momentum = 0.1, double eps = 1e-5);
namespace detail {
/// relu(batch_norm(...)) in one pass over x (prim::fma_relu): what Sequential runs for a
/// BatchNorm followed by a ReLU.
Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps);
}  // namespace detail
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);
Tensor instance_norm(const Tensor& x, const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5);
/// AlexNet's LRN across channels: x / (k + alpha / size * sum of squares over `size` channels)^beta.
Tensor local_response_norm(const Tensor& x, int64_t size, double alpha = 1e-4, double beta = 0.75, double k = 1.0);

// ---- dropout ----
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true);
/// Zeroes whole channels of [N, C, *].
Tensor dropout2d(const Tensor& x, double p = 0.5, bool training = true);

// ---- activations ----
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor elu(const Tensor& x, double alpha = 1.0);
/// Exact GELU, x * Phi(x), or the tanh approximation.
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// ---- losses ----
/// logits [N, C] or [N, C, *]; target int64 class indices [N] or [N, *].
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o = {});
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const CrossEntropyOptions& o = {});
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r = kMean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r = kMean);
Tensor binary_cross_entropy(const Tensor& p, const Tensor& target, const Tensor& weight = {}, Reduction r = kMean);
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const Tensor& weight = {},
                                        const Tensor& pos_weight = {}, Reduction r = kMean);

}  // namespace nn::functional
}  // namespace tg
