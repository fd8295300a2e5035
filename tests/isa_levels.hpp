#pragma once
// Runs a test body once per instruction-set level this processor can execute (so an AVX-512
// machine tests the AVX2 and generic kernels too), with the level in CAPTURE; restores the level
// in use.
#include <doctest/doctest.h>

#include <string>

#include "autograd/kernels/isa.hpp"

namespace tg::testing {

template <typename F>
void at_every_isa(F f) {
  using tg::kernels::Isa;
  const Isa before = tg::kernels::active_isa();
  for (Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512}) {
    if (int(isa) > int(tg::kernels::best_isa())) continue;
    const std::string level = tg::kernels::isa_name(isa);
    CAPTURE(level);
    tg::kernels::set_isa(isa);
    f();
  }
  tg::kernels::set_isa(before);
}

}  // namespace tg::testing
