// `blindfold netproxy` (the test bed's latency emulator) and `blindfold
// netprobe` (RTT and throughput over a path), as CLI11 subcommands; the work
// is done by net/proxy.h. scripts/netbed runs both inside network namespaces.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace blindfold::app {

/// The options of the network subcommands, filled in by CLI11.
class NetCommands {
 public:
  virtual ~NetCommands() = default;
  /// Whether the parsed command line selected one of these subcommands.
  virtual bool selected() const = 0;
  /// Runs the selected subcommand; returns the exit code.
  /// @throws Error (converted to an exit code by the caller).
  virtual int run() = 0;
};

/// Adds `netproxy` and `netprobe serve|measure` to `app`.
std::unique_ptr<NetCommands> add_net_commands(CLI::App& app);

}  // namespace blindfold::app
