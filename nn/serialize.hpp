#pragma once
/// Weights on disk in the safetensors format (an 8-byte little-endian header length, a JSON
/// header {name: {dtype, shape, data_offsets}}, then the raw little-endian data), keyed by the
/// names of named_parameters() and named_buffers(), so weights exported from PyTorch by name
/// (tools/export_safetensors.py) load into the same architecture.
#include <map>
#include <string>

#include "module.hpp"

namespace tg {

/// Writes the module's state dict to `path` atomically: a temporary file beside it
/// ("<path>.tmp-<pid>-<n>"), fsync, rename over `path`, fsync of the directory. A writer killed at
/// any moment leaves the old file or the new one, whole; the temporaries of writers that died
/// are removed by the next save to the same path. save_tensors writes the same way.
void save(const nn::Module& m, const std::string& path);
/// Loads `path` into the module. A truncated, corrupt or mismatched file (missing, unexpected
/// or wrongly shaped keys when strict) is a tg::Error naming the file and the problem; the
/// module is left unchanged in that case.
void load(nn::Module& m, const std::string& path, bool strict = true);

/// The lower-level pair: any name -> tensor map.
void save_tensors(const std::map<std::string, Tensor>& tensors, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {});
std::map<std::string, Tensor> load_tensors(const std::string& path,
                                           std::map<std::string, std::string>* metadata = nullptr);

}  // namespace tg
