#pragma once
/// tapegrad: reverse-mode automatic differentiation with a dynamic tape, in C++17.
/// One include for everything; link the CMake target tapegrad::tapegrad.
#include "audio/audio.hpp"
#include "audio/wav.hpp"
#include "autograd/autograd.hpp"
#include "autograd/checkpoint.hpp"
#include "autograd/dot.hpp"
#include "autograd/dtype.hpp"
#include "autograd/error.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/tensor.hpp"
#include "data/data.hpp"
#include "models/models.hpp"
#ifdef TAPEGRAD_HAS_MPI  // set by the build when tg::distributed is compiled in (TAPEGRAD_MPI)
#include "distributed/distributed.hpp"
#endif
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "vision/vision.hpp"
