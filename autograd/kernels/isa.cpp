#include "isa.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "../error.hpp"

namespace tg::kernels {
namespace {

Isa detect() {
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the operating system saves the wide registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Generic;
}

Isa from_environment() {
  const Isa best = best_isa();
  const char* env = std::getenv("TAPEGRAD_ISA");
  if (!env || !*env) return best;
  const std::string v = env;
  for (Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512})
    if (v == isa_name(isa)) {
      if (int(isa) > int(best))
        throw Error(fmt::format("TAPEGRAD_ISA: this processor cannot run '{}' kernels (best level: {})", v,
                                isa_name(best)));
      return isa;
    }
  throw Error(fmt::format("TAPEGRAD_ISA: expected avx512, avx2 or generic, got '{}'", v));
}

std::atomic<int>& level() {
  static std::atomic<int> l{int(from_environment())};
  return l;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

Isa best_isa() {
  static const Isa best = detect();
  return best;
}

Isa active_isa() { return Isa(level().load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
  if (int(isa) > int(best_isa()))
    throw Error(fmt::format("set_isa: this processor cannot run '{}' kernels (best level: {})", isa_name(isa),
                            isa_name(best_isa())));
  level().store(int(isa), std::memory_order_relaxed);
}

}  // namespace tg::kernels
