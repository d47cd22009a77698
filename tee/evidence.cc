#include "tee/evidence.h"

#include <cstdio>
#include <ctime>

namespace blindfold::tee {

std::string_view platform_name(Platform p) noexcept {
  switch (p) {
    case Platform::kSgx: return "Intel SGX";
    case Platform::kTdx: return "Intel TDX";
    case Platform::kSevSnp: return "AMD SEV-SNP";
    case Platform::kSimulated: return "simulated (no hardware)";
  }
  return "unknown";
}

std::string_view platform_vendor(Platform p) noexcept {
  switch (p) {
    case Platform::kSgx:
    case Platform::kTdx: return "Intel";
    case Platform::kSevSnp: return "AMD";
    case Platform::kSimulated: return "none (simulated)";
  }
  return "unknown";
}

namespace {
constexpr std::pair<TcbStatus, std::string_view> kStatusNames[] = {
    {TcbStatus::kUpToDate, "UpToDate"},
    {TcbStatus::kSWHardeningNeeded, "SWHardeningNeeded"},
    {TcbStatus::kConfigurationNeeded, "ConfigurationNeeded"},
    {TcbStatus::kConfigurationAndSWHardeningNeeded, "ConfigurationAndSWHardeningNeeded"},
    {TcbStatus::kOutOfDate, "OutOfDate"},
    {TcbStatus::kOutOfDateConfigurationNeeded, "OutOfDateConfigurationNeeded"},
    {TcbStatus::kRevoked, "Revoked"},
};
}  // namespace

std::string_view tcb_status_name(TcbStatus s) noexcept {
  for (const auto& [v, n] : kStatusNames)
    if (v == s) return n;
  return "unknown";
}

std::optional<TcbStatus> parse_tcb_status(std::string_view s) noexcept {
  for (const auto& [v, n] : kStatusNames)
    if (n == s) return v;
  return std::nullopt;
}

const Bytes* Claims::measurement(std::string_view name) const {
  for (const auto& [n, v] : measurements)
    if (n == name) return &v;
  return nullptr;
}

std::string to_hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(b.size() * 2, '0');
  for (std::size_t i = 0; i < b.size(); ++i) {
    s[2 * i] = kDigits[b[i] >> 4];
    s[2 * i + 1] = kDigits[b[i] & 15];
  }
  return s;
}

std::optional<Bytes> from_hex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out(s.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::optional<Time> parse_time(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff]Z
  if (s.size() < 20 || s.back() != 'Z') return std::nullopt;
  auto digits = [&](std::size_t pos, std::size_t n, int& out) {
    out = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!digits(0, 4, y) || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' || !digits(8, 2, d) ||
      (s[10] != 'T' && s[10] != 't') || !digits(11, 2, h) || s[13] != ':' || !digits(14, 2, mi) ||
      s[16] != ':' || !digits(17, 2, se))
    return std::nullopt;
  std::size_t rest = 19;
  if (s[rest] == '.') {
    ++rest;
    std::size_t start = rest;
    while (rest < s.size() && s[rest] >= '0' && s[rest] <= '9') ++rest;
    if (rest == start) return std::nullopt;
  }
  if (rest != s.size() - 1) return std::nullopt;
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 60) return std::nullopt;
  return Time{sys_days{ymd}.time_since_epoch() + hours{h} + minutes{mi} + seconds{se}};
}

std::string format_time(Time t) {
  using namespace std::chrono;
  auto days = floor<std::chrono::days>(t);
  year_month_day ymd{days};
  hh_mm_ss hms{t - days};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02lldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long>(hms.hours().count()), static_cast<long>(hms.minutes().count()),
                static_cast<long long>(hms.seconds().count()));
  return buf;
}

}  // namespace blindfold::tee
