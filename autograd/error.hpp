#pragma once
/// tg::Error: every user-facing failure (bad shapes, bad options, corrupt files) is thrown as
/// this type; the message names the op or module, what was expected and what was given.
#include <stdexcept>
#include <string>

namespace tg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace tg
