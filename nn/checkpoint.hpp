#pragma once
/// checkpoint_sequential: tg::checkpoint over the segments of an nn::Sequential, as
/// torch.utils.checkpoint.checkpoint_sequential.
///
///   Tensor y = tg::checkpoint_sequential(stack, /*segments=*/7, x);   // stack: 49 blocks
#include <cstdint>
#include <memory>

#include "../autograd/checkpoint.hpp"
#include "modules.hpp"

namespace tg {

/// seq(x) in `segments` parts of size(seq) / segments modules each, the last part taking the
/// rest: every part but the last runs under tg::checkpoint (only its input is kept), the last
/// one normally (its output is about to be used). segments must be in [1, size(seq)].
Tensor checkpoint_sequential(nn::Sequential& seq, int64_t segments, const Tensor& x);
Tensor checkpoint_sequential(const std::shared_ptr<nn::Sequential>& seq, int64_t segments, const Tensor& x);

}  // namespace tg
