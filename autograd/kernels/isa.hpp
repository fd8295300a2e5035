#pragma once
// Internal: the instruction-set level the hand-vectorised kernels run at. Each kernel source is
// compiled once per level (kernels/*_avx512.cpp, *_avx2.cpp, *_generic.cpp, each with its own
// target flags) and the level is chosen at run time: the best one this processor and its
// operating system support, lowered by the environment variable TAPEGRAD_ISA
// (avx512 | avx2 | generic) or by set_isa (tests run every level the machine can execute).
namespace tg::kernels {

enum class Isa { Generic = 0, Avx2 = 1, Avx512 = 2 };

/// "generic", "avx2" or "avx512".
const char* isa_name(Isa isa);
/// The best level the processor supports (AVX2 means AVX2 + FMA; AVX-512 means AVX-512F + FMA).
Isa best_isa();
/// The level in use: best_isa(), or TAPEGRAD_ISA's level if lower (a higher or unknown value is
/// an error at the first kernel call).
Isa active_isa();
/// Sets the level for every later kernel call (tests, benchmarks); throws tg::Error when the
/// processor cannot run it. Not meant to be called while other threads run kernels.
void set_isa(Isa isa);

}  // namespace tg::kernels
