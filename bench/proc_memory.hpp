#pragma once
// Reading a benchmark process's own memory from /proc (Linux), for peak_memory and
// checkpoint_memory.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace bench {

constexpr double kMiB = 1024.0 * 1024.0;

/// A field of /proc/self/status in bytes ("VmRSS", "VmHWM"); -1 if absent.
inline double status_bytes(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
      return std::strtod(line.c_str() + n + 1, nullptr) * 1024.0;  // the kernel reports kB
  return -1;
}

/// Resets VmHWM to the current VmRSS (Linux >= 4.0); false when not permitted.
inline bool reset_hwm() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return bool(f);
}

}  // namespace bench
