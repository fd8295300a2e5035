// Grad-CAM from a forward hook and autograd::grad: no parameter's .grad() is touched, and the
// hook is removed on every path out.
#include <fmt/format.h>

#include "../autograd/autograd.hpp"
#include "../nn/module.hpp"
#include "vision.hpp"

namespace tg::vision {

namespace F = nn::functional;

Tensor grad_cam(nn::Module& model, nn::Module& target_layer, const Tensor& input, int64_t class_index) {
  if (!input.defined() || input.dim() != 4 || !is_floating(input.dtype()))
    throw Error(fmt::format("grad_cam: expected a floating input [N, C, H, W], got {}",
                            input.defined() ? fmt::format("{} {}", dtype_name(input.dtype()), shape_str(input.shape()))
                                            : "undefined"));
  const int64_t n = input.size(0), h = input.size(2), w = input.size(3);

  Tensor activation;
  int calls = 0;
  const size_t id = target_layer.register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) {
    activation = out;
    ++calls;
  });
  struct RemoveHook {
    nn::Module& m;
    size_t id;
    ~RemoveHook() { m.remove_forward_hook(id); }
  } remove{target_layer, id};

  GradModeGuard grad_on(true);
  // A fresh leaf that requires grad, so the activation is on the tape even when no parameter
  // requires grad (a frozen model); the caller's tensor is not changed.
  Tensor x = input.detach().requires_grad_();
  Tensor scores = model(x);
  if (!scores.defined() || scores.dim() != 2 || scores.size(0) != n)
    throw Error(fmt::format("grad_cam: expected {} to return class scores [{}, classes], got {}", model.describe(), n,
                            scores.defined() ? shape_str(scores.shape()) : "undefined"));
  if (class_index < 0 || class_index >= scores.size(1))
    throw Error(fmt::format("grad_cam: class_index {} is out of range for {} classes (scores {})", class_index,
                            scores.size(1), shape_str(scores.shape())));
  if (calls != 1)
    throw Error(fmt::format(
        "grad_cam: the target layer {} ran {} times in the forward pass, expected once (a module of your own must be "
        "called through operator(), as Sequential calls its children, or return through after_forward)",
        target_layer.describe(), calls));
  if (activation.dim() != 4 || activation.size(0) != n)
    throw Error(fmt::format("grad_cam: expected the target layer {} to output [{}, K, h, w], got {}",
                            target_layer.describe(), n, shape_str(activation.shape())));
  if (!activation.requires_grad())
    throw Error(fmt::format("grad_cam: the output of the target layer {} is not on the tape (made off the tape, or "
                            "under NoGradGuard inside the model)",
                            target_layer.describe()));

  const Tensor score = scores.narrow(1, class_index, 1).sum();
  std::vector<Tensor> g = autograd::grad({score}, {activation}, {}, false, false, /*allow_unused=*/true);
  if (!g[0].defined())
    throw Error(fmt::format("grad_cam: the class scores do not depend on the output of the target layer {}",
                            target_layer.describe()));

  NoGradGuard no_grad;
  const Tensor a = activation.detach();
  const Tensor weights = g[0].mean({2, 3}, /*keepdim=*/true);         // [N, K, 1, 1]
  Tensor cam = relu((weights * a).sum({1}, /*keepdim=*/true));        // [N, 1, h, w]
  cam = F::interpolate(cam, F::InterpolateOptions().size({h, w}).mode(kBilinear).align_corners(false));
  const Tensor peak = cam.max({2, 3}, /*keepdim=*/true);
  cam = cam / where(gt(peak, zeros_like(peak)), peak, ones_like(peak));  // an all-zero map stays zero
  return cam.squeeze(1);
}

}  // namespace tg::vision
