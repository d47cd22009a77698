#include "backends/tee/wire.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <string_view>

namespace blindfold::backends::teewire {

static_assert(std::endian::native == std::endian::little,
              "the wire format copies float32/int64 elements as they lie in memory");

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw_error(ErrorCategory::kBadMessage, "tee message: " + what);
}

void put_u32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(Bytes& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::size_t tensor_bytes(const Tensor& t) {
  return 2 + 8 * t.rank() +
         static_cast<std::size_t>(t.numel()) * (t.dtype() == DType::kFloat32 ? 4 : 8);
}

// A tensor's framing: dtype, rank, dimensions.
void put_tensor_head(Bytes& b, const Tensor& t) {
  b.push_back(t.dtype() == DType::kFloat32 ? 0 : 1);
  b.push_back(static_cast<std::uint8_t>(t.rank()));
  for (std::int64_t d : t.shape()) put_u64(b, static_cast<std::uint64_t>(d));
}

void put_tensor(Bytes& b, const Tensor& t) {
  put_tensor_head(b, t);
  const auto data = t.bytes();
  b.insert(b.end(), data.begin(), data.end());
}

// A bounds-checked reader: every take() checks the bytes remaining first.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}
  std::size_t left() const { return b_.size() - pos_; }
  std::span<const std::uint8_t> take(std::size_t n, const char* what) {
    if (n > left()) {
      bad(std::string("truncated ") + what + " (needs " + std::to_string(n) + " bytes, " +
          std::to_string(left()) + " left)");
    }
    const auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint8_t u8(const char* what) { return take(1, what)[0]; }
  std::uint32_t u32(const char* what) {
    const auto s = take(4, what);
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | s[static_cast<std::size_t>(i)];
    return v;
  }
  std::uint64_t u64(const char* what) {
    const auto s = take(8, what);
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | s[static_cast<std::size_t>(i)];
    return v;
  }
  void expect_end() const {
    if (left() != 0) bad(std::to_string(left()) + " trailing bytes");
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

void check_header(Reader& r, std::string_view magic, const char* kind) {
  const auto m = r.take(4, kind);
  if (std::memcmp(m.data(), magic.data(), 4) != 0) bad(std::string("not a ") + kind);
  const std::uint8_t v = r.u8("version");
  if (v != kWireVersion) {
    bad(std::string(kind) + " version " + std::to_string(v) + " (this build speaks " +
        std::to_string(kWireVersion) + ")");
  }
}

void get_tensor_into(Reader& r, std::uint32_t index, Tensor& t) {
  const std::string name = "tensor " + std::to_string(index);
  const std::uint8_t dt = r.u8("dtype");
  if (dt > 1) bad(name + ": unknown dtype " + std::to_string(dt));
  const std::uint8_t rank = r.u8("rank");
  if (rank > kMaxRank)
    bad(name + ": rank " + std::to_string(rank) + " above " + std::to_string(kMaxRank));
  const std::size_t elem = dt == 0 ? 4 : 8;
  Shape shape(rank);
  std::uint64_t numel = 1;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::uint64_t d = r.u64("dimension");
    if (d > static_cast<std::uint64_t>(kMaxTensorElements)) {
      bad(name + ": dimension " + std::to_string(d) + " too large");
    }
    shape[i] = static_cast<std::int64_t>(d);
    numel *= d;  // both <= 2^31 and the product checked each step: no overflow
    if (numel > static_cast<std::uint64_t>(kMaxTensorElements)) bad(name + ": too many elements");
  }
  // numel <= 2^31 and elem <= 8: the product fits.
  const auto data = r.take(static_cast<std::size_t>(numel) * elem, "tensor data");
  t.reset(dt == 0 ? DType::kFloat32 : DType::kInt64, shape);
  if (numel != 0) std::memcpy(t.bytes().data(), data.data(), data.size());
}

void get_tensors_into(Reader& r, std::vector<Tensor>& out) {
  const std::uint32_t n = r.u32("tensor count");
  if (n > kMaxWireTensors) {
    bad(std::to_string(n) + " tensors (at most " + std::to_string(kMaxWireTensors) + ")");
  }
  out.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) get_tensor_into(r, i, out[i]);
}

std::vector<Tensor> get_tensors(Reader& r) {
  std::vector<Tensor> out;
  get_tensors_into(r, out);
  return out;
}

Bytes with_tensors(std::string_view head, const std::vector<Tensor>& ts, std::size_t extra) {
  if (ts.size() > kMaxWireTensors) {
    throw_error(ErrorCategory::kBadInput,
                "tee: at most " + std::to_string(kMaxWireTensors) + " tensors per message");
  }
  std::size_t total = head.size() + extra + 4;
  for (const auto& t : ts) total += tensor_bytes(t);
  Bytes b;
  b.reserve(total);
  b.resize(head.size());
  std::memcpy(b.data(), head.data(), head.size());
  return b;
}

}  // namespace

RequestParts request_parts(const std::vector<Tensor>& inputs) {
  if (inputs.size() > kMaxWireTensors) {
    throw_error(ErrorCategory::kBadInput,
                "tee: at most " + std::to_string(kMaxWireTensors) + " tensors per message");
  }
  // The framing first (so that it no longer moves), remembering where each
  // tensor's framing ends; then the parts alternate framing and data.
  RequestParts out;
  Bytes& f = out.framing;
  f = {'B', 'F', 'T', 'Q', kWireVersion};
  put_u32(f, static_cast<std::uint32_t>(inputs.size()));
  std::vector<std::size_t> ends;
  for (const auto& t : inputs) {
    put_tensor_head(f, t);
    ends.push_back(f.size());
  }
  std::size_t at = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    out.parts.emplace_back(f.data() + at, ends[i] - at);
    at = ends[i];
    out.parts.push_back(inputs[i].bytes());
  }
  if (inputs.empty()) out.parts.emplace_back(f.data(), f.size());
  return out;
}

Bytes encode_request(const std::vector<Tensor>& inputs) {
  const RequestParts p = request_parts(inputs);
  std::size_t total = 0;
  for (const auto& s : p.parts) total += s.size();
  Bytes b;
  b.reserve(total);
  for (const auto& s : p.parts) b.insert(b.end(), s.begin(), s.end());
  return b;
}

void decode_request_into(std::span<const std::uint8_t> msg, std::vector<Tensor>& inputs) {
  Reader r(msg);
  check_header(r, "BFTQ", "request");
  get_tensors_into(r, inputs);
  r.expect_end();
}

std::vector<Tensor> decode_request(std::span<const std::uint8_t> msg) {
  std::vector<Tensor> ts;
  decode_request_into(msg, ts);
  return ts;
}

Bytes encode_ok(const std::vector<Tensor>& outputs, double enclave_compute_ms) {
  Bytes b = with_tensors("BFTR", outputs, 2 + 8);
  b.push_back(kWireVersion);
  b.push_back(0);
  put_u64(b, std::bit_cast<std::uint64_t>(enclave_compute_ms));
  put_u32(b, static_cast<std::uint32_t>(outputs.size()));
  for (const auto& t : outputs) put_tensor(b, t);
  return b;
}

Bytes encode_error(ErrorCategory category, std::string_view text) {
  if (text.size() > kMaxWireErrorBytes) text = text.substr(0, kMaxWireErrorBytes);
  Bytes b{'B', 'F', 'T', 'R', kWireVersion, 1, static_cast<std::uint8_t>(category)};
  put_u32(b, static_cast<std::uint32_t>(text.size()));
  b.insert(b.end(), text.begin(), text.end());
  return b;
}

Response decode_response(std::span<const std::uint8_t> msg) {
  Reader r(msg);
  check_header(r, "BFTR", "response");
  Response out;
  const std::uint8_t status = r.u8("status");
  if (status == 0) {
    out.ok = true;
    out.enclave_compute_ms = std::bit_cast<double>(r.u64("compute time"));
    if (!std::isfinite(out.enclave_compute_ms) || out.enclave_compute_ms < 0) {
      bad("compute time is not a finite non-negative number");
    }
    out.outputs = get_tensors(r);
  } else if (status == 1) {
    const std::uint8_t c = r.u8("error category");
    if (c > static_cast<std::uint8_t>(ErrorCategory::kInternal)) {
      bad("unknown error category " + std::to_string(c));
    }
    out.category = static_cast<ErrorCategory>(c);
    const std::uint32_t n = r.u32("error length");
    if (n > kMaxWireErrorBytes) bad("error text of " + std::to_string(n) + " bytes");
    const auto t = r.take(n, "error text");
    out.error.assign(t.begin(), t.end());
  } else {
    bad("unknown status " + std::to_string(status));
  }
  r.expect_end();
  return out;
}

}  // namespace blindfold::backends::teewire
