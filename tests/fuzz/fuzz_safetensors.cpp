// libFuzzer harness of the safetensors reader: tg::load_tensors (tensors and metadata), then
// tg::load into a small module, strict and not. Any exception but tg::Error, any sanitizer
// report, or a failed load that changed the module is a finding.
#include <tapegrad.hpp>

#include "fuzz_input.hpp"
#include "tiny_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile file;
  static const auto model = fuzz::tiny_model();
  static const auto pristine = fuzz::snapshot(*model);
  const std::string& path = file.write(data, size);
  try {
    std::map<std::string, std::string> meta;
    const auto tensors = tg::load_tensors(path, &meta);
    for (const auto& kv : tensors) {
      fuzz::check(kv.second.defined(), "load_tensors returned an undefined tensor");
      (void)kv.second.to_vector<double>();  // every element readable (ASan checks the bounds)
    }
    fuzz::outcome("load_tensors");
  } catch (const tg::Error& e) {
    fuzz::outcome("load_tensors", e.what());
  }
  for (bool strict : {true, false}) {
    try {
      tg::load(*model, path, strict);
      fuzz::outcome(strict ? "load (strict)" : "load (not strict)");
    } catch (const tg::Error& e) {
      fuzz::outcome(strict ? "load (strict)" : "load (not strict)", e.what());
      fuzz::check(fuzz::same_bits(fuzz::snapshot(*model), pristine), "a failed tg::load changed the module");
    }
    // Back to the initial weights for the next input (a successful load may change them).
    tg::NoGradGuard no_grad;
    tg::nn::StateDict sd = model->state_dict();
    for (auto& kv : sd) {
      const auto& v = pristine.at(kv.first);
      kv.second.copy_(tg::tensor(v, kv.second.shape(), tg::kFloat64));
    }
  }
  return 0;
}
