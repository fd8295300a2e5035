// OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons (this machine reports family 6,
// model 207) and falls back to its generic "Prescott" SSE3 kernels; with the SkylakeX ones the
// cnn-bn training step ran 1.4x faster here (182 -> 253 samples/s, 1 thread, a loaded machine). When the user has not chosen a core (OPENBLAS_CORETYPE unset) and
// OpenBLAS picked that fallback on a CPU with AVX-512 (or AVX2 + FMA), re-initialise its kernel
// table for SkylakeX (or Haswell) once, before the library's first GEMM. TAPEGRAD_KEEP_BLAS_CORE=1 disables this.
#include <cstdlib>
#include <cstring>

extern "C" {
char* openblas_get_corename(void);
void gotoblas_dynamic_init(void);
void gotoblas_dynamic_quit(void);
void openblas_set_num_threads(int);
}

namespace tg::detail {
namespace {

const char* better_core() {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("TAPEGRAD_KEEP_BLAS_CORE")) return nullptr;
  const char* name = openblas_get_corename();
  if (!name || std::strcmp(name, "Prescott") != 0) return nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

bool switch_core() {
  const char* core = better_core();
  if (!core) return false;
  setenv("OPENBLAS_CORETYPE", core, 0);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");  // leave the environment as we found it for child processes
  return true;
}

}  // namespace

// Called before the library's first GEMM (a thread-safe one-time check). Also makes OpenBLAS
// single-threaded: the library's pool owns the cores (see tg::set_num_threads).
void ensure_blas_core() {
  static const bool switched = [] {
    bool s = switch_core();
    openblas_set_num_threads(1);
    return s;
  }();
  (void)switched;
}

const char* blas_core_name() {
  ensure_blas_core();
  return openblas_get_corename();
}

}  // namespace tg::detail
