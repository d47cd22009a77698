#include "backends/tee/enclave.h"

#include <openssl/crypto.h>

#include <chrono>
#include <new>

#include "backends/tee/wire.h"
#include "core/error.h"

namespace blindfold::backends {

namespace {

// The client's tensors and the outputs are its secrets: wiped once sent.
void wipe(teewire::Bytes& b) {
  if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
}

}  // namespace

EnclaveSessionStats serve_enclave_session(net::Channel& ch, const tee::EvidenceProducer& produce,
                                          model::Executor& executor,
                                          const std::function<void(const std::string&)>& log) {
  const std::unique_ptr<tee::SealedChannel> sealed = tee::attest_enclave(ch, produce);
  EnclaveSessionStats stats;
  for (;;) {
    teewire::Bytes request;
    try {
      request = sealed->recv(teewire::kRequestTag);
    } catch (const Error& e) {
      // The client closed the connection: the session is over.
      if (e.category() == ErrorCategory::kPeerFailure) return stats;
      throw;
    }
    teewire::Bytes reply;
    try {
      const std::vector<Tensor> inputs = teewire::decode_request(request);
      wipe(request);
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<Tensor> outputs = executor.run(inputs);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      reply = teewire::encode_ok(outputs, ms);
      ++stats.requests;
    } catch (const Error& e) {
      wipe(request);
      reply = teewire::encode_error(e.category(), e.what());
      ++stats.refused;
      log(std::string("refused a request: ") + e.what());
    } catch (const std::bad_alloc&) {
      wipe(request);
      reply = teewire::encode_error(ErrorCategory::kBadInput, "out of memory for this request");
      ++stats.refused;
      log("refused a request: out of memory");
    }
    sealed->send(teewire::kResponseTag, reply);
    wipe(reply);
  }
}

}  // namespace blindfold::backends
