#pragma once
/// Gradient checkpointing, as torch.utils.checkpoint.checkpoint (use_reentrant=True): trade
/// compute for memory by keeping only a function's inputs and running it again in backward.
///
///   Tensor y = tg::checkpoint([&](const std::vector<Tensor>& in) { return block->forward(in[0]); }, {x});
///   loss(y).backward();   // block->forward runs again here, recorded, and is backpropagated
///
/// See docs/design.md ("Checkpointing") for the rules and the memory it saves.
#include <functional>
#include <vector>

#include "tensor.hpp"

namespace tg {

using CheckpointFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// fn(inputs) run without recording: no intermediate result is kept, only the inputs (and the
/// random generator's state). When the backward pass reaches the result, fn runs again with
/// recording, on the saved inputs and from the saved generator state (a dropout inside draws the
/// same mask), and is backpropagated: the inputs get their gradients through the result, and
/// every tensor requiring grad that fn uses otherwise (parameters, captured leaves) has the
/// gradient accumulated into its .grad(), as with PyTorch's reentrant checkpoint.
///
/// Without grad mode it is fn(inputs). Inputs may not be modified in place before the backward
/// (the recomputation would see the new values). Not supported, with a tg::Error when it is
/// tried: autograd::grad through a checkpoint (use backward()), and create_graph (double
/// backward) through it. Throws tg::Error on an empty fn, an undefined input or result.
Tensor checkpoint(CheckpointFn fn, const std::vector<Tensor>& inputs);

namespace autograd {
/// True while checkpoint() re-runs a function during backward. A layer whose forward has a side
/// effect that must happen once per forward pass checks it: BatchNorm does not update its
/// running statistics (nor num_batches_tracked) again during the recomputation.
bool in_checkpoint_recompute();
}  // namespace autograd

}  // namespace tg
