// `blindfold attest verify EVIDENCE [--collateral FILE]... [--now TIME]
// [--policy FILE] [--report-data HEX] [--json]`: verifies attestation
// evidence by hand (an Intel DCAP quote or an AMD SEV-SNP report; the kinds of
// the evidence and of each collateral file are detected by content,
// tee/verify.h), appraises the claims against a policy (tee/policy.h; default
// Policy{}: UpToDate only, no debug, no migration agent), and prints the
// verdict, platform, TCB status and advisories, every measurement and the
// report_data in hex, debug, migration agent, the verifier's details and the
// policy's failures and warnings.
//
// Exit status: 0 only when the evidence verifies AND the policy accepts it;
// kPolicyRejectedExit (10) when it verifies but the policy rejects it; the
// error category's code of core/error.h otherwise (4 "bad message" for
// evidence or collateral that fails a check, 3 "bad input" for a bad flag,
// policy file or unfit collateral, 8 "i/o error" for a file that cannot be
// read), with one line on stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

namespace blindfold::app {

/// The exit status of `attest verify` when the evidence verifies but the
/// policy rejects it (distinct from every error category's code, 2..9).
inline constexpr int kPolicyRejectedExit = 10;

struct AttestVerifyOptions {
  std::string evidence;                 // path
  std::vector<std::string> collateral;  // paths
  std::string now;                      // RFC 3339 UTC; empty: the current time
  std::string policy;                   // path; empty: Policy{}
  std::string report_data;              // 128 hex digits; empty: not checked
  bool json = false;
  /// Accept the SIMULATED platform's evidence (tee/simulated.h): no hardware
  /// protects what it attests. Sets Policy::trust_simulated_platform.
  bool trust_simulated_platform = false;
};

/// Runs `attest verify`; returns the exit status (0, or kPolicyRejectedExit).
/// @throws Error when the evidence does not verify or an input is bad (after
/// printing the REJECTED verdict for evidence that fails verification).
int run_attest_verify(const AttestVerifyOptions& options);

class AttestCommands {
 public:
  virtual ~AttestCommands() = default;
  virtual bool selected() const = 0;
  /// @throws Error (converted to an exit code by the caller).
  virtual int run() = 0;
};

/// Adds `attest verify` to `app`.
std::unique_ptr<AttestCommands> add_attest_commands(CLI::App& app);

}  // namespace blindfold::app
