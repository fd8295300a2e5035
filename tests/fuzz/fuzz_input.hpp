#pragma once
// The readers under test take a path: each input is written to one anonymous in-memory file
// (memfd) and read back through /proc/self/fd, so a run touches no disk and leaves nothing
// behind.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

class InputFile {
 public:
  InputFile() : fd_(::memfd_create("tapegrad-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  /// Replaces the file's contents with data[0, n); returns its path.
  const std::string& write(const uint8_t* data, size_t n) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pwrite(fd_, data + done, n - done, off_t(done));
      if (r <= 0) std::abort();
      done += size_t(r);
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

/// An input the reader refused (with FUZZ_VERBOSE=1 in the environment, its message is printed:
/// `FUZZ_VERBOSE=1 fuzz_x file` shows why each given file was refused or that it was accepted).
inline void outcome(const char* reader, const char* error = nullptr) {
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "%s: %s\n", reader, error ? error : "accepted");
}

/// The harnesses' invariants: a broken one is a finding, reported as a crash.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace fuzz
