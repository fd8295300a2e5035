#pragma once
/// Dtype, Shape and TensorOptions: the small value types every tensor carries.
#include <cstdint>
#include <string>
#include <vector>

namespace tg {

using Shape = std::vector<int64_t>;

enum class Dtype : uint8_t { Float32, Float64, Int64 };
constexpr Dtype kFloat32 = Dtype::Float32;
constexpr Dtype kFloat64 = Dtype::Float64;
constexpr Dtype kInt64 = Dtype::Int64;

/// Bytes per element of a dtype.
size_t element_size(Dtype d);
/// "float32", "float64", "int64".
const char* dtype_name(Dtype d);
inline bool is_floating(Dtype d) { return d != Dtype::Int64; }

/// Number of elements of a shape (1 for a 0-d shape).
int64_t shape_numel(const Shape& s);
/// "[2, 3]".
std::string shape_str(const Shape& s);

/// Options for factories: dtype and requires_grad, with fluent setters as in libtorch.
class TensorOptions {
 public:
  TensorOptions() = default;
  TensorOptions(Dtype d) : dtype_(d), has_dtype_(true) {}  // NOLINT: implicit like libtorch
  TensorOptions& dtype(Dtype d) { dtype_ = d; has_dtype_ = true; return *this; }
  TensorOptions& requires_grad(bool r = true) { requires_grad_ = r; return *this; }
  Dtype dtype() const { return dtype_; }  ///< float32 unless set
  /// Whether a dtype was set: the *_like factories keep their tensor's dtype otherwise.
  bool has_dtype() const { return has_dtype_; }
  bool requires_grad() const { return requires_grad_; }

 private:
  Dtype dtype_ = kFloat32;
  bool has_dtype_ = false;
  bool requires_grad_ = false;
};

}  // namespace tg
