#include "loops.hpp"

namespace tg::kernels {

#define TG_LOOPS_LEVELS(T, suffix)                                                                    \
  extern const Loops<T> kGenericLoops_##suffix, kAvx2Loops_##suffix, kAvx512Loops_##suffix;         \
  template <>                                                                                       \
  const Loops<T>& loops_for<T>(Isa isa) {                                                           \
    switch (isa) {                                                                                  \
      case Isa::Avx512: return kAvx512Loops_##suffix;                                               \
      case Isa::Avx2: return kAvx2Loops_##suffix;                                                   \
      default: return kGenericLoops_##suffix;                                                       \
    }                                                                                               \
  }                                                                                                 \
  template <>                                                                                       \
  const Loops<T>& loops<T>() {                                                                      \
    return loops_for<T>(active_isa());                                                              \
  }
TG_LOOPS_LEVELS(float, f32)
TG_LOOPS_LEVELS(double, f64)
TG_LOOPS_LEVELS(int64_t, i64)
#undef TG_LOOPS_LEVELS

}  // namespace tg::kernels
