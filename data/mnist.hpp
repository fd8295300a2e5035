#pragma once
/// MNIST-format datasets (MNIST, Fashion-MNIST, KMNIST...) read from the four IDX files:
///   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
/// each plain or gzipped (`.gz`; `train-images.idx3-ubyte` spellings are found too).
///
///   tg::data::MNIST train;                                              // Fashion-MNIST, Debian's path
///   tg::data::MNIST test("/data/mnist", tg::data::Split::Test);
///   auto [image, label] = train.get(0);   // float32 [1, 28, 28] in [0, 1], int64 0-d
///
/// Pixels stay uint8 in memory (47 MB for 60,000 images); samples and batches are converted to
/// float32 on the fly. Copies of an MNIST share the pixels. A missing, truncated or malformed
/// file is a tg::Error naming the file and what is wrong.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace tg::data {

enum class Split { Train, Test };

/// Fashion-MNIST's ten class names, by label: "T-shirt/top", "Trouser", ..., "Ankle boot".
const std::vector<std::string>& fashion_mnist_classes();

class MNIST : public Dataset {
 public:
  /// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST.
  static constexpr const char* kDefaultRoot = "/usr/share/datasets/fashion-mnist";

  explicit MNIST(const std::string& root = kDefaultRoot, Split split = Split::Train);

  int64_t size() const override { return count_; }
  /// {image float32 [1, rows, cols] with pixel / 255, label int64 0-d}.
  Example get(int64_t index) const override;
  /// {images float32 [B, 1, rows, cols], labels int64 [B]}, converted straight from the bytes.
  Example get_batch(const std::vector<int64_t>& indices) const override;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  Split split() const { return split_; }
  /// The raw pixels, [size() * rows() * cols()] row-major, and labels, [size()].
  const std::vector<uint8_t>& pixels() const { return *pixels_; }
  const std::vector<uint8_t>& labels() const { return *labels_; }
  /// The paths the samples were read from.
  const std::string& images_path() const { return images_path_; }
  const std::string& labels_path() const { return labels_path_; }

 private:
  Split split_;
  int64_t count_ = 0, rows_ = 0, cols_ = 0;
  std::shared_ptr<const std::vector<uint8_t>> pixels_, labels_;
  std::string images_path_, labels_path_;
};

namespace detail {
/// The body of an IDX file: checks the magic (0x0000080N, unsigned bytes, N dims), reads the N
/// big-endian dimensions into `dims`, and checks that the data that follows has exactly
/// prod(dims) bytes. Plain or gzipped. Exposed for the tests.
std::vector<uint8_t> read_idx(const std::string& path, int expected_dims, std::vector<int64_t>* dims);
}  // namespace detail

}  // namespace tg::data
