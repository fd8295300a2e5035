// safetensors reading and writing. The layout is the reference implementation's (huggingface
// safetensors): u64 little-endian header length N, N bytes of compact JSON padded with spaces
// to a multiple of 8, then the tensors back to back. Everything read from a file is validated
// before a byte of tensor data is touched, because a weights file is user input.
#include "serialize.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace tg {
namespace {

// The reference implementation's limit: a larger header is a corrupt length field, not a model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Tensor bytes go to and from the file as they are in memory.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; add byte swapping");

std::string errno_str(int err) { return std::generic_category().message(err); }

// ---- dtypes ----

const char* code_of(Dtype d) {
  switch (d) {
    case Dtype::Float32: return "F32";
    case Dtype::Float64: return "F64";
    default: return "I64";
  }
}

bool dtype_of(const std::string& code, Dtype* d) {
  if (code == "F32") *d = kFloat32;
  else if (code == "F64") *d = kFloat64;
  else if (code == "I64") *d = kInt64;
  else return false;
  return true;
}

// Dtypes the format defines but tapegrad has no tensor type for: named in the error, so the
// fix (cast before exporting) is obvious.
bool is_known_unsupported(const std::string& code) {
  static const char* const kCodes[] = {"BOOL", "U8",   "I8",      "I16",     "U16",     "F16",
                                       "BF16", "I32",  "U32",     "U64",     "C64",     "F8_E5M2",
                                       "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"};
  for (const char* c : kCodes)
    if (code == c) return true;
  return false;
}

// The reference writer orders tensors by descending alignment, then by name, so that every
// tensor starts aligned to its element size: I64, then F64, then F32.
int write_rank(Dtype d) { return d == kInt64 ? 0 : d == kFloat64 ? 1 : 2; }

// ---- UTF-8 and JSON text ----

// Index of the first byte that is not part of a well-formed UTF-8 sequence, or n.
size_t utf8_invalid_at(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const unsigned c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return i;
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return n;
}

bool is_utf8(const std::string& s) {
  return utf8_invalid_at(reinterpret_cast<const unsigned char*>(s.data()), s.size()) == s.size();
}

// serde_json's escaping, so headers match the reference byte for byte.
void append_json_string(std::string& out, const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string offsets_str(uint64_t b, uint64_t e) { return fmt::format("[{}, {}]", b, e); }

// ---- the header parser ----

struct Entry {
  std::string name;
  std::string dtype_code;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
};

// A recursive-descent parser for exactly the safetensors schema: a top-level object whose
// values are tensor entries {dtype, shape, data_offsets} or the "__metadata__" object of
// strings. Following the schema (rather than building a generic JSON tree) bounds both the
// nesting depth and the memory a hostile header can demand. Every failure names the byte.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, std::string prefix) : s_(text), prefix_(std::move(prefix)) {}

  Header parse() {
    Header h;
    std::set<std::string> seen;
    skip_ws();
    parse_object("the header to be a JSON object", "a tensor name", [&](std::string key, size_t key_pos) {
      if (!seen.insert(key).second) fail_at(key_pos, fmt::format("duplicate key \"{}\"", key));
      if (key == "__metadata__") h.metadata = parse_metadata();
      else h.entries.push_back(parse_entry(std::move(key)));
    });
    skip_ws();
    if (pos_ != s_.size())
      fail(fmt::format("unexpected '{}' after the JSON object (only space padding may follow)", shown(peek())));
    return h;
  }

 private:
  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    throw Error(fmt::format("{}malformed header at byte {} of the header: {}", prefix_, at, what));
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

  int peek() const { return pos_ < s_.size() ? static_cast<unsigned char>(s_[pos_]) : -1; }
  static std::string shown(int c) {
    if (c < 0) return "end of header";
    if (c < 0x20 || c >= 0x7F) return fmt::format("\\x{:02x}", c);
    return std::string(1, char(c));
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c, const char* what) {
    if (peek() != static_cast<unsigned char>(c))
      fail(fmt::format("expected {}, found {}", what, peek() < 0 ? "the end of the header" : "'" + shown(peek()) + "'"));
    ++pos_;
  }
  // '{' ["key": value {, "key": value}] '}', calling member(key, key_pos) to parse each value.
  template <typename F>
  void parse_object(const std::string& what, const char* key_what, F&& member) {
    expect('{', what.c_str());
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      const size_t key_pos = pos_;
      std::string key = parse_string(key_what);
      skip_ws();
      expect(':', "':' after a key");
      skip_ws();
      member(std::move(key), key_pos);
      skip_ws();
      if (peek() != ',') break;
      ++pos_;
      skip_ws();
    }
    expect('}', "',' or '}'");
  }

  uint32_t hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail_at(pos_ - 1, "invalid hex digit in \\u escape");
    }
    return v;
  }

  std::string parse_string(const char* what) {
    if (peek() != '"') fail(fmt::format("expected {} (a string), found {}", what, shown(peek())));
    const size_t start = pos_++;
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail_at(start, "unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail(fmt::format("control character \\x{:02x} inside a string", c));
      if (c != '\\') {
        out += char(c);
        ++pos_;
        continue;
      }
      if (++pos_ >= s_.size()) fail_at(start, "unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.compare(pos_, 2, "\\u") != 0) fail("high surrogate not followed by a low surrogate");
            pos_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail_at(pos_ - 1, fmt::format("invalid escape '\\{}'", shown(static_cast<unsigned char>(e))));
      }
    }
  }

  // A JSON number that must be a non-negative integer: element i of the array `what`.
  uint64_t parse_uint(const std::string& what, size_t i) {
    const size_t start = pos_;
    const auto name = [&] { return fmt::format("{}[{}]", what, i); };  // formatted only on failure
    if (peek() == '-') fail(fmt::format("{} is negative", name()));
    if (peek() < '0' || peek() > '9') fail(fmt::format("expected {} (an integer), found {}", name(), shown(peek())));
    if (peek() == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9')
      fail(fmt::format("{} has a leading zero", name()));
    uint64_t v = 0;
    bool overflow = false;
    while (peek() >= '0' && peek() <= '9') {
      const uint64_t digit = uint64_t(s_[pos_++] - '0');
      if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) overflow = true;
      else v = v * 10 + digit;
    }
    if (peek() == '.' || peek() == 'e' || peek() == 'E') fail(fmt::format("{} is not an integer", name()));
    if (overflow)
      fail_at(start, fmt::format("{} {:.30} does not fit in 64 bits", name(), s_.substr(start, pos_ - start)));
    return v;
  }

  std::vector<uint64_t> parse_uint_array(const std::string& what) {
    expect('[', fmt::format("'[' to start {}", what).c_str());
    std::vector<uint64_t> out;
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return out;
    }
    for (;;) {
      skip_ws();
      out.push_back(parse_uint(what, out.size()));
      skip_ws();
      if (peek() != ',') break;
      ++pos_;
    }
    expect(']', "',' or ']'");
    return out;
  }

  Entry parse_entry(std::string name) {
    Entry e;
    e.name = std::move(name);
    const std::string who = fmt::format("tensor \"{}\"", e.name);
    bool has_dtype = false, has_shape = false, has_offsets = false;
    parse_object(fmt::format("an object {{dtype, shape, data_offsets}} for {}", who), "a field name",
                 [&](const std::string& key, size_t key_pos) {
                   bool* has = key == "dtype" ? &has_dtype : key == "shape" ? &has_shape
                             : key == "data_offsets" ? &has_offsets : nullptr;
                   if (!has)
                     fail_at(key_pos, fmt::format("unknown field \"{}\" in {} (expected dtype, shape, data_offsets)",
                                                  key, who));
                   if (*has) fail_at(key_pos, fmt::format("duplicate field \"{}\" in {}", key, who));
                   *has = true;
                   if (has == &has_dtype) {
                     e.dtype_code = parse_string("the dtype");
                   } else if (has == &has_shape) {
                     e.shape = parse_uint_array(fmt::format("the shape of {}", who));
                   } else {
                     const size_t at = pos_;
                     const auto offs = parse_uint_array(fmt::format("data_offsets of {}", who));
                     if (offs.size() != 2)
                       fail_at(at, fmt::format("data_offsets of {} must be [begin, end], got {} numbers", who,
                                               offs.size()));
                     e.begin = offs[0];
                     e.end = offs[1];
                   }
                 });
    const char* missing = !has_dtype ? "dtype" : !has_shape ? "shape" : !has_offsets ? "data_offsets" : nullptr;
    if (missing) fail(fmt::format("{} has no {}", who, missing));
    return e;
  }

  std::map<std::string, std::string> parse_metadata() {
    std::map<std::string, std::string> m;
    parse_object("an object of strings for __metadata__", "a metadata key", [&](std::string key, size_t key_pos) {
      if (peek() != '"') fail(fmt::format("__metadata__ value of \"{}\" must be a string", key));
      std::string value = parse_string("a metadata value");
      if (!m.emplace(std::move(key), std::move(value)).second) fail_at(key_pos, "duplicate key in __metadata__");
    });
    return m;
  }

  const std::string& s_;
  std::string prefix_;
  size_t pos_ = 0;
};

// ---- file I/O with every result checked ----

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // close(2) can report a failed write-back (NFS, quota): a save must see it.
  int close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd);
  }

 private:
  int fd_;
};

// Reads exactly n bytes at offset; false with errno set on error, errno 0 on a short file.
bool pread_all(int fd, void* buf, size_t n, uint64_t offset) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, std::min<size_t>(n, size_t(1) << 30), off_t(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = 0;
      return false;
    }
    p += r;
    n -= size_t(r);
    offset += uint64_t(r);
  }
  return true;
}

bool write_all(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t r = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EIO;
      return false;
    }
    p += r;
    n -= size_t(r);
  }
  return true;
}

const void* raw_data(const Tensor& t) {
  return dispatch(t.dtype(), [&](auto z) -> const void* { return t.data_ptr<decltype(z)>(); });
}
void* raw_data(Tensor& t) {
  return dispatch(t.dtype(), [&](auto z) -> void* { return t.data_ptr<decltype(z)>(); });
}

// ---- validation of the parsed header against the data section ----

struct Planned {
  const Entry* entry;
  Dtype dtype;
  Shape shape;
};

std::vector<Planned> plan(const Header& h, uint64_t data_bytes, const std::string& prefix) {
  std::vector<Planned> out;
  out.reserve(h.entries.size());
  for (const Entry& e : h.entries) {
    Planned p{&e, kFloat32, {}};
    if (!dtype_of(e.dtype_code, &p.dtype)) {
      if (is_known_unsupported(e.dtype_code))
        throw Error(fmt::format("{}tensor \"{}\" has dtype {}, which tapegrad cannot hold (it reads F32, F64 and "
                                "I64); convert it to float32/float64/int64 before exporting",
                                prefix, e.name, e.dtype_code));
      throw Error(fmt::format("{}tensor \"{}\" has unknown dtype \"{}\" (expected F32, F64 or I64)", prefix, e.name,
                              e.dtype_code));
    }
    // Every partial product of the dims, in any order, must fit int64: that holds exactly
    // when the product of the non-zero dims does.
    uint64_t nonzero = 1;
    bool empty = false;
    for (uint64_t d : e.shape) {
      const auto big = [&] {
        return Error(fmt::format("{}tensor \"{}\" has an absurd shape [{}]: more elements than fit in int64", prefix,
                                 e.name, fmt::join(e.shape, ", ")));
      };
      if (d > uint64_t(std::numeric_limits<int64_t>::max())) throw big();
      p.shape.push_back(int64_t(d));
      if (d == 0) {
        empty = true;
      } else if (__builtin_mul_overflow(nonzero, d, &nonzero) || nonzero > uint64_t(std::numeric_limits<int64_t>::max())) {
        throw big();
      }
    }
    uint64_t nbytes = 0;
    if (!empty && __builtin_mul_overflow(nonzero, uint64_t(element_size(p.dtype)), &nbytes))
      throw Error(fmt::format("{}tensor \"{}\" of shape {} is larger than any file", prefix, e.name,
                              shape_str(p.shape)));
    if (e.begin > e.end)
      throw Error(fmt::format("{}tensor \"{}\" has data_offsets {} with begin after end", prefix, e.name,
                              offsets_str(e.begin, e.end)));
    if (e.end > data_bytes)
      throw Error(fmt::format("{}tensor \"{}\" has data_offsets {} past the end of the {}-byte data section "
                              "(truncated file?)",
                              prefix, e.name, offsets_str(e.begin, e.end), data_bytes));
    if (e.end - e.begin != nbytes)
      throw Error(fmt::format("{}tensor \"{}\" ({} {}) needs {} bytes, but its data_offsets {} span {}", prefix,
                              e.name, e.dtype_code, shape_str(p.shape), nbytes, offsets_str(e.begin, e.end),
                              e.end - e.begin));
    out.push_back(std::move(p));
  }
  // The tensors must tile the data section exactly: no overlap, no gap, nothing after.
  std::vector<const Planned*> by_offset;
  for (const Planned& p : out) by_offset.push_back(&p);
  std::sort(by_offset.begin(), by_offset.end(), [](const Planned* a, const Planned* b) {
    return std::make_pair(a->entry->begin, a->entry->end) < std::make_pair(b->entry->begin, b->entry->end);
  });
  uint64_t expected = 0;
  const Entry* prev = nullptr;
  for (const Planned* p : by_offset) {
    const Entry& e = *p->entry;
    if (e.begin < expected)
      throw Error(fmt::format("{}tensor \"{}\" (data_offsets {}) overlaps tensor \"{}\" (data_offsets {})", prefix,
                              e.name, offsets_str(e.begin, e.end), prev->name, offsets_str(prev->begin, prev->end)));
    if (e.begin > expected)
      throw Error(fmt::format("{}{} unused bytes before tensor \"{}\" (data_offsets {}): the offsets leave a gap",
                              prefix, e.begin - expected, e.name, offsets_str(e.begin, e.end)));
    expected = e.end;
    prev = &e;
  }
  if (expected != data_bytes)
    throw Error(fmt::format("{}{} bytes of trailing data after the last tensor (the data section is {} bytes, the "
                            "tensors cover {})",
                            prefix, data_bytes - expected, data_bytes, expected));
  return out;
}

std::map<std::string, Tensor> load_impl(const char* op, const std::string& path,
                                        std::map<std::string, std::string>* metadata) {
  const std::string prefix = fmt::format("{}: '{}': ", op, path);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error(fmt::format("{}cannot open: {}", prefix, errno_str(errno)));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(fmt::format("{}cannot stat: {}", prefix, errno_str(errno)));
  if (!S_ISREG(st.st_mode)) throw Error(fmt::format("{}not a regular file", prefix));
  const auto file_bytes = uint64_t(st.st_size);
  const auto read_error = [&](const char* what) {
    const int err = errno;
    return Error(fmt::format("{}reading {} failed: {}", prefix, what,
                             err == 0 ? std::string("unexpected end of file") : errno_str(err)));
  };

  if (file_bytes < 8)
    throw Error(fmt::format("{}file is {} bytes, too short for the 8-byte header length (not a safetensors file?)",
                            prefix, file_bytes));
  unsigned char len_bytes[8];
  if (!pread_all(fd.get(), len_bytes, 8, 0)) throw read_error("the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeaderBytes)
    throw Error(fmt::format("{}header length {} exceeds the {}-byte limit (corrupt or not a safetensors file)", prefix,
                            n, kMaxHeaderBytes));
  if (n > file_bytes - 8)
    throw Error(fmt::format("{}header length {} runs past the end of the {}-byte file (truncated file?)", prefix, n,
                            file_bytes));

  std::string text(size_t(n), '\0');
  if (n > 0 && !pread_all(fd.get(), text.data(), size_t(n), 8)) throw read_error("the header");
  const size_t bad = utf8_invalid_at(reinterpret_cast<const unsigned char*>(text.data()), text.size());
  if (bad != text.size())
    throw Error(fmt::format("{}header is not valid UTF-8 (byte {} of the header)", prefix, bad));
  const Header header = HeaderParser(text, prefix).parse();
  const uint64_t data_start = 8 + n;
  const std::vector<Planned> planned = plan(header, file_bytes - data_start, prefix);

  std::map<std::string, Tensor> out;
  for (const Planned& p : planned) {
    Tensor t = empty(p.shape, p.dtype);
    const uint64_t bytes = p.entry->end - p.entry->begin;
    if (bytes > 0) {
      char* dst = static_cast<char*>(raw_data(t));
      if (!pread_all(fd.get(), dst, size_t(bytes), data_start + p.entry->begin))
        throw read_error(fmt::format("tensor \"{}\"", p.entry->name).c_str());
    }
    out.emplace(p.entry->name, std::move(t));
  }
  if (metadata) *metadata = header.metadata;
  return out;
}

// ---- writing ----

// The temporary files of save_impl are "<name>.tmp-<pid>-<n>" beside the target.
std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}
std::string base_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The pid of a temporary file name of `base`, or 0 if `name` is not one.
pid_t temp_owner(const std::string& name, const std::string& base) {
  const std::string stem = base + ".tmp-";
  if (name.size() <= stem.size() || name.compare(0, stem.size(), stem) != 0) return 0;
  const std::string rest = name.substr(stem.size());
  const size_t dash = rest.find('-');
  if (dash == 0 || dash == std::string::npos || dash + 1 == rest.size() || dash > 9) return 0;
  for (size_t i = 0; i < rest.size(); ++i)
    if (i != dash && (rest[i] < '0' || rest[i] > '9')) return 0;
  return pid_t(std::stol(rest.substr(0, dash)));
}

// A writer killed mid-save (SIGKILL, power loss) leaves its temporary file: the next save to the
// same path, as it starts, removes those of processes that no longer exist. A live process's,
// this one's included (another thread may be saving), are left alone, and so is anything not
// named exactly as save_impl names its temporaries. Best effort: a failure here fails no save.
void remove_stale_temporaries(const std::string& path) {
  const std::string dir = dir_of(path), base = base_of(path);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    const pid_t owner = temp_owner(e->d_name, base);
    if (owner <= 0 || owner == ::getpid()) continue;
    if (::kill(owner, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge (EPERM)
    (void)::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

// After the rename, the directory entry itself must reach the disk for the new file to
// survive a power cut (ext4 and XFS order it only on request). Best effort: on file systems
// that cannot sync a directory the rename has still happened atomically.
void sync_directory(const std::string& path) {
  const int fd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

std::string make_header(const std::vector<std::pair<const std::string*, const Tensor*>>& order,
                        const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) h += ',';
      first = false;
      append_json_string(h, k);
      h += ':';
      append_json_string(h, v);
    }
    h += '}';
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    if (h.size() > 1) h += ',';
    append_json_string(h, *name);
    const uint64_t bytes = uint64_t(t->numel()) * element_size(t->dtype());
    h += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", code_of(t->dtype()),
                     fmt::join(t->shape(), ","), offset, offset + bytes);
    offset += bytes;
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

void save_impl(const char* op, const std::map<std::string, Tensor>& tensors, const std::string& path,
               const std::map<std::string, std::string>& metadata) {
  const std::string prefix = fmt::format("{}: '{}': ", op, path);
  // Validate everything before touching the file system.
  std::vector<std::pair<const std::string*, const Tensor*>> order;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) throw Error(fmt::format("{}tensor \"{}\" is undefined", prefix, name));
    if (name == "__metadata__") throw Error(fmt::format("{}\"__metadata__\" is reserved, not a tensor name", prefix));
    if (!is_utf8(name)) throw Error(fmt::format("{}tensor name \"{}\" is not valid UTF-8", prefix, name));
    order.emplace_back(&name, &t);
  }
  for (const auto& [k, v] : metadata)
    if (!is_utf8(k) || !is_utf8(v))
      throw Error(fmt::format("{}metadata entry \"{}\" is not valid UTF-8", prefix, k));
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return write_rank(a.second->dtype()) < write_rank(b.second->dtype());
  });  // stable: names stay sorted within a dtype
  const std::string header = make_header(order, metadata);
  if (header.size() > kMaxHeaderBytes)
    throw Error(fmt::format("{}the header would be {} bytes, past the format's {}-byte limit", prefix, header.size(),
                            kMaxHeaderBytes));
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(uint64_t(header.size()) >> (8 * i));

  // A temporary beside the target, synced, then renamed over it: a crash at any moment, a
  // SIGKILL or a full disk leaves the old file as it was, or the new one complete.
  remove_stale_temporaries(path);  // before writing: a writer killed on its first save leaves one at most
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int raw_fd = -1;
  for (int attempt = 0; raw_fd < 0; ++attempt) {
    tmp = fmt::format("{}.tmp-{}-{}", path, ::getpid(), counter++);
    raw_fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (raw_fd < 0 && (errno != EEXIST || attempt >= 100))
      throw Error(fmt::format("{}cannot create the temporary file '{}': {}", prefix, tmp, errno_str(errno)));
  }
  Fd fd(raw_fd);
  struct Cleanup {
    const std::string& file;
    bool armed = true;
    ~Cleanup() {
      if (armed) ::unlink(file.c_str());
    }
  } cleanup{tmp};
  const auto write_error = [&](int err) {
    return Error(fmt::format("{}writing '{}' failed: {} (the existing file, if any, is unchanged)", prefix, tmp,
                             errno_str(err)));
  };

  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) (void)::fchmod(fd.get(), st.st_mode & 07777);  // keep its mode
  if (!write_all(fd.get(), len_bytes, 8) || !write_all(fd.get(), header.data(), header.size()))
    throw write_error(errno);
  for (const auto& [name, t] : order) {
    const size_t bytes = size_t(t->numel()) * element_size(t->dtype());
    if (bytes > 0 && !write_all(fd.get(), raw_data(*t), bytes)) throw write_error(errno);
  }
  if (::fsync(fd.get()) != 0 && errno != EINVAL && errno != EROFS) throw write_error(errno);
  if (fd.close() != 0) throw write_error(errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(fmt::format("{}cannot replace the file: {} (the existing file, if any, is unchanged)", prefix,
                            errno_str(errno)));
  cleanup.armed = false;
  sync_directory(path);
}

}  // namespace

void save_tensors(const std::map<std::string, Tensor>& tensors, const std::string& path,
                  const std::map<std::string, std::string>& metadata) {
  save_impl("save_tensors", tensors, path, metadata);
}

std::map<std::string, Tensor> load_tensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  return load_impl("load_tensors", path, metadata);
}

void save(const nn::Module& m, const std::string& path) { save_impl("save", m.state_dict(), path, {}); }

void load(nn::Module& m, const std::string& path, bool strict) {
  // The whole file is read and validated before the module is touched; load_state_dict then
  // checks every key before copying any (a mismatch changes nothing).
  const std::map<std::string, Tensor> sd = load_impl("load", path, nullptr);
  // A dtype mismatch converts in load_state_dict's copy_, as PyTorch's does (F64 weights into a
  // float32 model). Into an integer buffer only integral values convert: a cast of NaN or 1e300
  // to int64 is undefined behaviour.
  const nn::StateDict current = m.state_dict();
  for (const auto& [name, t] : sd) {
    const auto it = current.find(name);
    if (it == current.end() || !it->second.defined() || it->second.dtype() != kInt64 || t.dtype() == kInt64) continue;
    for (double v : t.to_vector<double>())
      if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || std::trunc(v) != v)
        throw Error(fmt::format("load: '{}': tensor \"{}\" is {} with value {}, which does not convert to the "
                                "module's int64",
                                path, name, code_of(t.dtype()), v));
  }
  try {
    m.load_state_dict(sd, strict);
  } catch (const Error& e) {
    throw Error(fmt::format("load: '{}': {}", path, e.what()));
  }
}

}  // namespace tg
