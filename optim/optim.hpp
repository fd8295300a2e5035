#pragma once
/// tg::optim: optimizers with parameter groups and resumable state, learning-rate schedulers,
/// and gradient clipping (tg::nn::utils). See docs/optim.md.
#include "adagrad.hpp"
#include "adam.hpp"
#include "clip.hpp"
#include "delta_bar_delta.hpp"
#include "lbfgs.hpp"
#include "lr_scheduler.hpp"
#include "optimizer.hpp"
#include "rmsprop.hpp"
#include "sgd.hpp"
