#include "tee/policy.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tee/crypto.h"

namespace blindfold::tee {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw_error(ErrorCategory::kBadInput, "policy: \"" + key + "\": " + why);
}

const json& array_of_strings(const json& v, const std::string& key) {
  if (!v.is_array()) bad(key, "must be an array of strings");
  for (const auto& e : v)
    if (!e.is_string()) bad(key, "must be an array of strings");
  return v;
}

bool boolean(const json& v, const std::string& key) {
  if (!v.is_boolean()) bad(key, "must be true or false");
  return v.get<bool>();
}

std::optional<Platform> platform_from_name(std::string_view s) {
  for (Platform p : {Platform::kSgx, Platform::kTdx, Platform::kSevSnp, Platform::kSimulated})
    if (platform_name(p) == s) return p;
  return std::nullopt;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

}  // namespace

Policy Policy::from_json(std::string_view text) {
  json doc;
  // A key given twice would silently take its last value: refuse it.
  std::vector<std::set<std::string>> keys;
  auto no_duplicates = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty() &&
        !keys.back().insert(parsed.get<std::string>()).second)
      bad(parsed.get<std::string>(), "given twice");
    return true;
  };
  try {
    doc = json::parse(text.begin(), text.end(), no_duplicates);
  } catch (const json::exception& e) {
    throw_error(ErrorCategory::kBadInput, std::string("policy: not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) throw_error(ErrorCategory::kBadInput, "policy: must be a JSON object");
  Policy p;
  for (const auto& [key, v] : doc.items()) {
    if (key == "platforms") {
      for (const auto& e : array_of_strings(v, key)) {
        auto pl = platform_from_name(e.get<std::string>());
        if (!pl)
          bad(key, "unknown platform \"" + e.get<std::string>() +
                       "\" (known: \"Intel SGX\", \"Intel TDX\", \"AMD SEV-SNP\", \"" +
                       std::string(platform_name(Platform::kSimulated)) + "\")");
        p.platforms.insert(*pl);
      }
    } else if (key == "allowed_tcb_statuses") {
      p.allowed_tcb_statuses.clear();
      for (const auto& e : array_of_strings(v, key)) {
        auto s = parse_tcb_status(e.get<std::string>());
        if (!s) bad(key, "unknown TCB status \"" + e.get<std::string>() + "\"");
        p.allowed_tcb_statuses.insert(*s);
      }
    } else if (key == "allowed_advisories") {
      std::set<std::string> ids;
      for (const auto& e : array_of_strings(v, key)) ids.insert(e.get<std::string>());
      p.allowed_advisories = std::move(ids);
    } else if (key == "measurements") {
      if (!v.is_object()) bad(key, "must be an object {\"NAME\": [\"<hex>\", ...]}");
      for (const auto& [name, values] : v.items()) {
        const std::string sub = key + "." + name;
        if (name.empty()) bad(key, "a measurement name is empty");
        if (!values.is_array() || values.empty())
          bad(sub, "must be a non-empty array of hex strings");
        std::vector<Bytes>& accepted = p.measurements[name];
        for (const auto& e : values) {
          if (!e.is_string()) bad(sub, "must be a non-empty array of hex strings");
          auto b = from_hex(e.get<std::string>());
          if (!b || b->empty()) bad(sub, "\"" + e.get<std::string>() + "\" is not hex");
          accepted.push_back(std::move(*b));
        }
      }
    } else if (key == "allow_debug") {
      p.allow_debug = boolean(v, key);
    } else if (key == "allow_migration_agent") {
      p.allow_migration_agent = boolean(v, key);
    } else if (key == "trust_simulated_platform") {
      p.trust_simulated_platform = boolean(v, key);
    } else {
      bad(key,
          "unknown key (known: platforms, allowed_tcb_statuses, allowed_advisories, "
          "measurements, allow_debug, allow_migration_agent, trust_simulated_platform)");
    }
  }
  return p;
}

Appraisal appraise(const Policy& policy, const Claims& claims,
                   const std::optional<std::array<std::uint8_t, 64>>& expected_report_data) {
  Appraisal a;
  const std::string platform(platform_name(claims.platform));
  if (claims.platform == Platform::kSimulated) {
    if (!policy.trust_simulated_platform)
      a.failures.push_back("platform " + platform +
                           ": no hardware protects it (trust_simulated_platform is not set)");
    else if (!policy.platforms.empty() && policy.platforms.count(claims.platform) == 0)
      a.failures.push_back("platform " + platform + " is not in the policy's platforms");
    else
      a.warnings.push_back("simulated platform trusted: no hardware protects this enclave");
  } else if (!policy.platforms.empty() && policy.platforms.count(claims.platform) == 0) {
    a.failures.push_back("platform " + platform + " is not in the policy's platforms");
  }

  if (policy.allowed_tcb_statuses.count(claims.tcb_status) == 0) {
    std::vector<std::string> allowed;
    for (TcbStatus s : policy.allowed_tcb_statuses) allowed.emplace_back(tcb_status_name(s));
    a.failures.push_back("TCB status " + std::string(tcb_status_name(claims.tcb_status)) +
                         " is not allowed (allowed: " + (allowed.empty() ? "none" : join(allowed)) +
                         ")");
  } else if (claims.tcb_status != TcbStatus::kUpToDate) {
    a.warnings.push_back("TCB status " + std::string(tcb_status_name(claims.tcb_status)) +
                         " accepted by an explicit exception");
  }
  if (policy.allowed_advisories) {
    for (const auto& id : claims.advisory_ids)
      if (policy.allowed_advisories->count(id) == 0)
        a.failures.push_back("advisory " + id + " is not in the policy's allowed_advisories");
  }

  for (const auto& [name, accepted] : policy.measurements) {
    const Bytes* m = claims.measurement(name);
    if (m == nullptr) {
      a.failures.push_back("measurement " + name + " is required by the policy but the " +
                           platform + " evidence has none");
    } else if (std::find(accepted.begin(), accepted.end(), *m) == accepted.end()) {
      a.failures.push_back("measurement " + name + " " + to_hex(*m) +
                           " is not one of the policy's " + std::to_string(accepted.size()) +
                           " expected value(s)");
    }
  }
  if (policy.measurements.empty())
    a.warnings.push_back("no expected measurement: any code is accepted");

  if (claims.debug && !policy.allow_debug)
    a.failures.push_back(
        "debug enclave (its memory can be read by the host; allow_debug is not "
        "set)");
  else if (claims.debug)
    a.warnings.push_back("debug enclave accepted (allow_debug): the host can read its memory");
  if (claims.migration_agent && !policy.allow_migration_agent)
    a.failures.push_back(
        "SEV-SNP migration agent allowed by the guest policy "
        "(allow_migration_agent is not set)");

  if (expected_report_data && *expected_report_data != claims.report_data)
    a.failures.push_back("report_data " + to_hex(claims.report_data) + " is not the expected " +
                         to_hex(*expected_report_data));
  return a;
}

std::array<std::uint8_t, 64> binding_report_data(std::span<const std::uint8_t> channel_public_key,
                                                 std::span<const std::uint8_t> client_nonce) {
  Bytes msg(channel_public_key.begin(), channel_public_key.end());
  msg.insert(msg.end(), client_nonce.begin(), client_nonce.end());
  const Bytes h = sha256(msg);
  std::array<std::uint8_t, 64> out{};
  std::copy(h.begin(), h.end(), out.begin());
  return out;
}

}  // namespace blindfold::tee
