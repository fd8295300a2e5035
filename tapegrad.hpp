#pragma once
/// tapegrad: reverse-mode automatic differentiation with a dynamic tape, in C++17.
/// One include for everything; link the CMake target tapegrad::tapegrad.
#include "audio/audio.hpp"
#include "autograd/autograd.hpp"
#include "autograd/checkpoint.hpp"
#include "autograd/dtype.hpp"
#include "autograd/error.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/tensor.hpp"
#include "data/data.hpp"
#include "models/models.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "vision/vision.hpp"
