#include "app/attest.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/npy.h"
#include "tee/policy.h"
#include "tee/verify.h"

namespace blindfold::app {

namespace {

using tee::Bytes;

// Evidence, collateral and policy files are small; refuse anything huge.
constexpr std::int64_t kMaxFileBytes = 16 << 20;

Bytes read_bytes(const std::string& path) {
  const std::string s = read_file_bytes(path, kMaxFileBytes);
  return Bytes(s.begin(), s.end());
}

std::string yes_no(bool b) {
  return b ? "true" : "false";
}

void print_text(const tee::Claims& c, const std::string& kind, const tee::Appraisal& a,
                tee::Time now) {
  if (a.accepted()) {
    std::printf("ACCEPTED\n");
  } else {
    std::string why;
    for (const auto& f : a.failures) why += (why.empty() ? "" : "; ") + f;
    std::printf("REJECTED by the policy: %s\n", why.c_str());
  }
  auto row = [](const std::string& k, const std::string& v) {
    std::printf("%-26s %s\n", k.c_str(), v.c_str());
  };
  row("platform", std::string(tee::platform_name(c.platform)) + " (" +
                      std::string(tee::platform_vendor(c.platform)) + ")");
  row("evidence", kind + ", version " + std::to_string(c.version));
  row("verified at", tee::format_time(now));
  row("tcb_status", std::string(tee::tcb_status_name(c.tcb_status)));
  std::string adv;
  for (const auto& id : c.advisory_ids) adv += (adv.empty() ? "" : ", ") + id;
  row("advisories", adv.empty() ? "none" : adv);
  for (const auto& [name, value] : c.measurements) row(name, tee::to_hex(value));
  row("report_data", tee::to_hex(c.report_data));
  row("debug", yes_no(c.debug));
  row("migration_agent", yes_no(c.migration_agent));
  for (const auto& [k, v] : c.details) row(k, v);
  for (const auto& f : a.failures) row("policy failure", f);
  for (const auto& w : a.warnings) row("policy warning", w);
}

void print_json(const tee::Claims& c, const std::string& kind, const tee::Appraisal& a,
                tee::Time now) {
  nlohmann::ordered_json j;
  j["verdict"] = a.accepted() ? "ACCEPTED" : "REJECTED";
  j["platform"] = tee::platform_name(c.platform);
  j["evidence"] = kind;
  j["version"] = c.version;
  j["verified_at"] = tee::format_time(now);
  j["tcb_status"] = tee::tcb_status_name(c.tcb_status);
  j["advisory_ids"] = c.advisory_ids;
  nlohmann::ordered_json m = nlohmann::ordered_json::object();
  for (const auto& [name, value] : c.measurements) m[name] = tee::to_hex(value);
  j["measurements"] = m;
  j["report_data"] = tee::to_hex(c.report_data);
  j["debug"] = c.debug;
  j["migration_agent"] = c.migration_agent;
  nlohmann::ordered_json d = nlohmann::ordered_json::object();
  for (const auto& [k, v] : c.details) d[k] = v;
  j["details"] = d;
  j["policy_failures"] = a.failures;
  j["policy_warnings"] = a.warnings;
  std::printf("%s\n", j.dump(2).c_str());
}

}  // namespace

int run_attest_verify(const AttestVerifyOptions& o) {
  tee::Time now;
  if (o.now.empty()) {
    // The one place the wall clock is read: verification takes it as an argument.
    now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  } else {
    auto t = tee::parse_time(o.now);
    if (!t)
      throw_error(ErrorCategory::kBadInput,
                  "--now: \"" + o.now + "\" is not an RFC 3339 UTC time (2025-06-20T00:00:00Z)");
    now = *t;
  }
  std::optional<std::array<std::uint8_t, 64>> expected;
  if (!o.report_data.empty()) {
    auto b = tee::from_hex(o.report_data);
    if (!b || b->size() != 64)
      throw_error(ErrorCategory::kBadInput, "--report-data: expected 128 hex digits (64 bytes)");
    expected.emplace();
    std::copy(b->begin(), b->end(), expected->begin());
  }
  tee::Policy policy;
  if (!o.policy.empty()) {
    const std::string text = read_file_bytes(o.policy, kMaxFileBytes);
    try {
      policy = tee::Policy::from_json(text);
    } catch (const Error& e) {
      throw Error(e.category(), o.policy + ": " + e.what());
    }
  }
  if (o.trust_simulated_platform) policy.trust_simulated_platform = true;
  tee::VerifyInput in;
  in.evidence = read_bytes(o.evidence);
  for (const auto& p : o.collateral) in.collateral.push_back(read_bytes(p));
  in.now = now;
  const std::string kind = tee::evidence_kind(in.evidence);

  tee::Claims claims;
  try {
    claims = tee::verify_evidence(in);
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kBadMessage) {
      if (o.json) {
        nlohmann::ordered_json j;
        j["verdict"] = "REJECTED";
        j["evidence"] = kind;
        j["verified_at"] = tee::format_time(now);
        j["error"] = e.what();
        std::printf("%s\n", j.dump(2).c_str());
      } else {
        std::printf("REJECTED: the %s does not verify: %s\n",
                    kind == "unknown" ? "evidence" : kind.c_str(), e.what());
      }
      std::fflush(stdout);
    }
    throw;
  }
  const tee::Appraisal a = tee::appraise(policy, claims, expected);
  if (o.json)
    print_json(claims, kind, a, now);
  else
    print_text(claims, kind, a, now);
  return a.accepted() ? 0 : kPolicyRejectedExit;
}

namespace {

class AttestCommandsImpl : public AttestCommands {
 public:
  explicit AttestCommandsImpl(CLI::App& app) {
    attest_ = app.add_subcommand("attest", "attestation evidence: verify it by hand");
    verify_ = attest_->add_subcommand(
        "verify",
        "verify an Intel DCAP quote or an AMD SEV-SNP report and appraise it against a policy "
        "(exit 0: accepted; 10: verified but rejected by the policy; 4: does not verify)");
    attest_->require_subcommand(1);
    verify_->add_option("evidence", opts_.evidence, "the quote or report (binary)")->required();
    verify_->add_option("--collateral,-c", opts_.collateral,
                        "collateral file, repeatable: dcap-qvl collateral JSON; PCS TCB Info / QE "
                        "Identity responses, CRLs and issuer chain; SEV-SNP VCEK (DER) and "
                        "ASK/ARK chain (PEM)");
    verify_->add_option("--now", opts_.now,
                        "verify as of this RFC 3339 UTC time (default: the current time)");
    verify_->add_option("--policy", opts_.policy,
                        "appraisal policy JSON (default: UpToDate only, no debug, no migration "
                        "agent; docs/TEE.md)");
    verify_->add_option("--report-data", opts_.report_data,
                        "the report_data the evidence must carry (128 hex digits)");
    verify_->add_flag("--json", opts_.json, "print one JSON object");
    verify_->add_flag("--trust-simulated-platform", opts_.trust_simulated_platform,
                      "accept evidence of the SIMULATED platform (its certificate as the "
                      "collateral): no hardware protects what it attests");
  }
  bool selected() const override { return verify_->parsed(); }
  int run() override { return run_attest_verify(opts_); }

 private:
  CLI::App* attest_ = nullptr;
  CLI::App* verify_ = nullptr;
  AttestVerifyOptions opts_;
};

}  // namespace

std::unique_ptr<AttestCommands> add_attest_commands(CLI::App& app) {
  return std::make_unique<AttestCommandsImpl>(app);
}

}  // namespace blindfold::app
