#pragma once
// The command line of the small example programs (tapegrad-gradcam, tapegrad-style), parsed by
// CLI11 the same way: numbers checked whole by one validator each, an unknown flag named with the
// nearest known one (tapegrad-train too), and every error printed as "program: message" with the usage text, exit 2.
// (tapegrad-train has its own, richer parser in trainer_args.cpp: --config, resume rules.)
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli_flags {

/// A bad value, thrown by the validators below and reported as "flag expects ..., got '...'".
struct BadValue : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An integer > 0, written whole ("3x", "1.5", "" are errors).
inline CLI::Validator positive_integer(const std::string& flag) {
  return CLI::Validator(
      [flag](std::string& v) -> std::string {
        try {
          size_t used = 0;
          const long long n = std::stoll(v, &used);
          if (used == v.size() && n > 0) {
            v = std::to_string(n);
            return "";
          }
        } catch (const std::exception&) {
        }
        throw BadValue(fmt::format("{} expects a positive integer, got '{}'", flag, v));
      },
      "N");
}

/// A finite number > 0, written whole.
inline CLI::Validator positive_number(const std::string& flag) {
  return CLI::Validator(
      [flag](std::string& v) -> std::string {
        try {
          size_t used = 0;
          const double d = std::stod(v, &used);
          if (used == v.size() && d > 0 && d <= 1e308) {
            v = fmt::format("{}", d);
            return "";
          }
        } catch (const std::exception&) {
        }
        throw BadValue(fmt::format("{} expects a positive number, got '{}'", flag, v));
      },
      "X");
}

inline size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// "unknown option '--epoch' (did you mean --epochs?)": the long flag of `app` within two edits
/// of `arg` (its part before '='), when there is one.
inline std::string unknown_option(const CLI::App& app, const std::string& arg) {
  const std::string name = arg.substr(0, arg.find('='));
  std::string best;
  size_t best_d = 3;
  for (const CLI::Option* o : app.get_options())
    for (const auto& n : o->get_lnames()) {
      const size_t d = edit_distance(name, "--" + n);
      if (d < best_d) best_d = d, best = "--" + n;
    }
  return best.empty() ? fmt::format("unknown option '{}'", arg)
                      : fmt::format("unknown option '{}' (did you mean {}?)", arg, best);
}

[[noreturn]] inline void usage_error(const char* program, const std::string& msg, const char* usage) {
  std::fprintf(stderr, "%s: %s\n%s", program, msg.c_str(), usage);
  std::exit(2);
}

/// Parses argv into the options of `app` (set up by the caller); --help or -h prints `usage`
/// and exits 0, a bad command line exits 2 with a message naming the flag.
inline void parse_or_exit(CLI::App& app, int argc, char** argv, const char* program, const char* usage) {
  app.allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(usage, stdout);
    std::exit(0);
  } catch (const BadValue& e) {
    usage_error(program, e.what(), usage);
  } catch (const CLI::ArgumentMismatch& e) {
    const std::string m = e.what();  // "--size: 1 required INT missing"
    usage_error(program, m.find(" required ") != std::string::npos ? m.substr(0, m.find(':')) + " expects a value" : m,
                usage);
  } catch (const CLI::Error& e) {
    usage_error(program, e.what(), usage);
  }
  if (!app.remaining().empty()) usage_error(program, unknown_option(app, app.remaining().front()), usage);
}

}  // namespace cli_flags
