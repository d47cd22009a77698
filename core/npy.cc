#include "core/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace blindfold {

namespace {

[[noreturn]] void bad(const std::string& msg) {
  throw_error(ErrorCategory::kBadInput, "invalid .npy data: " + msg);
}

// Value of `key` in the header dict, as raw text up to the next top-level
// comma or closing brace.
std::string header_field(const std::string& h, const std::string& key) {
  const std::string k1 = "'" + key + "'";
  std::size_t p = h.find(k1);
  if (p == std::string::npos) bad("header has no '" + key + "' field");
  p = h.find(':', p + k1.size());
  if (p == std::string::npos) bad("header field '" + key + "' has no value");
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  if (p < h.size() && h[p] == '(') {
    const std::size_t e = h.find(')', p);
    if (e == std::string::npos) bad("unterminated shape tuple");
    return h.substr(p, e - p + 1);
  }
  std::size_t e = p;
  while (e < h.size() && h[e] != ',' && h[e] != '}') ++e;
  std::string v = h.substr(p, e - p);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

}  // namespace

Tensor parse_npy(std::string_view b) {
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) bad("missing magic string");
  const int major = static_cast<unsigned char>(b[6]);
  std::size_t header_len;
  std::size_t offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(b[8]) |
                 (static_cast<std::size_t>(static_cast<unsigned char>(b[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) bad("truncated header");
    header_len = 0;
    for (int i = 0; i < 4; ++i)
      header_len |= static_cast<std::size_t>(static_cast<unsigned char>(b[8 + i])) << (8 * i);
    offset = 12;
  } else {
    bad("unsupported format version " + std::to_string(major));
  }
  if (header_len > 65536 || header_len > b.size() - offset) bad("header length exceeds the file");
  const std::string h(b.substr(offset, header_len));
  offset += header_len;

  const std::string descr = header_field(h, "descr");
  const std::string fortran = header_field(h, "fortran_order");
  if (fortran != "False") bad("Fortran-order arrays are not supported");
  std::size_t elem;
  int kind;  // 0 f4, 1 f8, 2 i8
  if (descr == "'<f4'") {
    elem = 4;
    kind = 0;
  } else if (descr == "'<f8'") {
    elem = 8;
    kind = 1;
  } else if (descr == "'<i8'") {
    elem = 8;
    kind = 2;
  } else {
    bad("dtype " + descr + " is not supported (use little-endian float32, float64 or int64)");
  }
  const std::string tuple = header_field(h, "shape");
  if (tuple.size() < 2 || tuple.front() != '(' || tuple.back() != ')') {
    bad("shape is not a tuple: " + tuple.substr(0, 40));
  }
  Shape shape;
  {
    std::size_t p = 1;
    while (p < tuple.size()) {
      while (p < tuple.size() && (tuple[p] == ' ' || tuple[p] == ',')) ++p;
      if (p >= tuple.size() || tuple[p] == ')') break;
      std::int64_t v = 0;
      bool any = false;
      while (p < tuple.size() && tuple[p] >= '0' && tuple[p] <= '9') {
        if (v > (std::int64_t{1} << 40)) bad("dimension too large in shape " + tuple);
        v = v * 10 + (tuple[p] - '0');
        ++p;
        any = true;
      }
      if (!any) bad("malformed shape " + tuple);
      if (shape.size() >= kMaxRank) bad("rank above 8 in shape " + tuple);
      shape.push_back(v);
    }
  }
  const std::int64_t n = checked_numel(shape);
  const std::size_t need = static_cast<std::size_t>(n) * elem;
  if (b.size() - offset != need) {
    bad("payload has " + std::to_string(b.size() - offset) + " bytes, shape " +
        shape_to_string(shape) + " needs " + std::to_string(need));
  }
  const char* p = b.data() + offset;
  if (kind == 2) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(n));
    if (need) std::memcpy(v.data(), p, need);
    return Tensor::from_ints(shape, std::move(v));
  }
  std::vector<float> v(static_cast<std::size_t>(n));
  if (kind == 0) {
    if (need) std::memcpy(v.data(), p, need);
  } else {
    for (std::int64_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, p + i * 8, 8);
      v[static_cast<std::size_t>(i)] = static_cast<float>(d);
    }
  }
  return Tensor::from_floats(shape, std::move(v));
}

std::string to_npy(const Tensor& t) {
  std::string shape = "(";
  for (std::size_t i = 0; i < t.shape().size(); ++i) {
    shape += std::to_string(t.shape()[i]);
    shape += (t.shape().size() == 1 || i + 1 < t.shape().size()) ? "," : "";
    if (i + 1 < t.shape().size()) shape += " ";
  }
  shape += ")";
  std::string h = std::string("{'descr': '") + (t.dtype() == DType::kFloat32 ? "<f4" : "<i8") +
                  "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the payload starts on a 64-byte boundary, ending in '\n'.
  const std::size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(h.size() & 0xff));
  out.push_back(static_cast<char>((h.size() >> 8) & 0xff));
  out += h;
  if (t.dtype() == DType::kFloat32) {
    const auto d = t.f32();
    out.append(reinterpret_cast<const char*>(d.data()), d.size() * 4);
  } else {
    const auto d = t.i64();
    out.append(reinterpret_cast<const char*>(d.data()), d.size() * 8);
  }
  return out;
}

std::string read_file_bytes(const std::string& path, std::int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw_error(ErrorCategory::kIo, "cannot open '" + path + "'");
  const std::streamoff size = in.tellg();
  if (size < 0) throw_error(ErrorCategory::kIo, "cannot read '" + path + "'");
  if (size > max_bytes) {
    throw_error(ErrorCategory::kBadInput,
                "'" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
  }
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) throw_error(ErrorCategory::kIo, "cannot read '" + path + "'");
  return bytes;
}

void write_file_bytes(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw_error(ErrorCategory::kIo, "cannot write '" + path + "'");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw_error(ErrorCategory::kIo, "cannot write '" + path + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw_error(ErrorCategory::kIo, "cannot write '" + path + "'");
  }
}

Tensor read_npy(const std::string& path) {
  const std::string bytes = read_file_bytes(path, std::int64_t{8} << 30);
  try {
    return parse_npy(bytes);
  } catch (const Error& e) {
    throw Error(e.category(), path + ": " + e.what());
  }
}

void write_npy(const std::string& path, const Tensor& t) {
  write_file_bytes(path, to_npy(t));
}

}  // namespace blindfold
