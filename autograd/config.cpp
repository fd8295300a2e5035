// tg::config_string: what the library runs on, for logs and benchmark reports.
#include <fmt/format.h>

#include <string>

#include "kernels/isa.hpp"
#include "parallel.hpp"
#include "tensor.hpp"
#include "tensor_impl.hpp"

extern "C" char* openblas_get_config(void);

namespace tg {

std::string config_string() {
  // openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"; keep
  // the name and version.
  std::string blas = openblas_get_config();
  size_t cut = blas.find(' ');
  if (cut != std::string::npos) cut = blas.find(' ', cut + 1);
  if (cut != std::string::npos) blas.resize(cut);
  return fmt::format("kernels {} (processor: {}), BLAS {} core {}, {} threads", kernels::isa_name(kernels::active_isa()),
                     kernels::isa_name(kernels::best_isa()), blas, detail::blas_core_name(), get_num_threads());
}

}  // namespace tg
