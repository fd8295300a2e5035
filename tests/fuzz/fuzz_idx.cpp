// libFuzzer harness of the IDX reader (tg::data::detail::read_idx, plain and gzipped), as
// MNIST reads its image (3 dims) and label (1 dim) files. Any exception but tg::Error, any
// sanitizer report, or data that disagrees with the dims it was read with is a finding.
#include <tapegrad.hpp>

#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file;
  const std::string& path = file.write(data, size);
  for (int dims : {3, 1}) {
    std::vector<int64_t> shape;
    try {
      const std::vector<uint8_t> bytes = tg::data::detail::read_idx(path, dims, &shape);
      fuzz::check(shape.size() == size_t(dims), "read_idx returned another number of dims");
      uint64_t total = 1;
      for (int64_t d : shape) {
        fuzz::check(d >= 0, "read_idx returned a negative dim");
        total *= uint64_t(d);
      }
      fuzz::check(bytes.size() == total, "read_idx returned other than prod(dims) bytes");
      fuzz::outcome("read_idx");
    } catch (const tg::Error& e) {
      fuzz::outcome("read_idx", e.what());
    }
  }
  return 0;
}
