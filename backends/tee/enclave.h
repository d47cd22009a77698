// The enclave side of a tee session (run by the blindfold-enclave process,
// app/enclave_main.cc): the attested handshake, then sealed requests ->
// plaintext inference -> sealed responses until the client closes. A request
// that does not parse or does not fit the model gets a sealed refusal naming
// what was wrong, and the enclave serves the next one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "model/executor.h"
#include "net/channel.h"
#include "tee/channel.h"

namespace blindfold::backends {

struct EnclaveSessionStats {
  std::int64_t requests = 0;  // answered with outputs
  std::int64_t refused = 0;   // answered with an error
};

/// Serves one attested session on `ch` with `executor`. Returns when the
/// client closes the connection. `log` gets one line per refused request
/// (never any tensor contents).
/// @throws Error when the handshake fails or the sealed channel breaks (an
/// altered, replayed or mis-tagged record): the session cannot continue.
EnclaveSessionStats serve_enclave_session(net::Channel& ch, const tee::EvidenceProducer& produce,
                                          model::Executor& executor,
                                          const std::function<void(const std::string&)>& log);

}  // namespace blindfold::backends
