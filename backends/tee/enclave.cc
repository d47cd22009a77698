#include "backends/tee/enclave.h"

#include <openssl/crypto.h>

#include <chrono>
#include <new>

#include "backends/tee/wire.h"
#include "core/error.h"

namespace blindfold::backends {

namespace {

// The client's tensors and the outputs are its secrets: wiped once the answer
// is on its way, and on every way out of the session.
void wipe(teewire::Bytes& b) {
  if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
}
void wipe(std::vector<Tensor>& ts) {
  for (Tensor& t : ts) {
    if (t.empty()) continue;
    if (t.dtype() == DType::kFloat32) {
      OPENSSL_cleanse(t.f32().data(), t.f32().size_bytes());
    } else {
      OPENSSL_cleanse(t.i64().data(), t.i64().size_bytes());
    }
  }
}

// The session's secret buffers, reused from request to request.
struct SessionBuffers {
  teewire::Bytes request;      // the opened request
  std::vector<Tensor> inputs;  // decoded from it
  teewire::Bytes reply;        // the response before sealing
  void wipe_all() {
    wipe(request);
    wipe(inputs);
    wipe(reply);
  }
  ~SessionBuffers() { wipe_all(); }
};

}  // namespace

EnclaveSessionStats serve_enclave_session(net::Channel& ch, const tee::EvidenceProducer& produce,
                                          model::Executor& executor,
                                          const std::function<void(const std::string&)>& log) {
  const std::unique_ptr<tee::SealedChannel> sealed = tee::attest_enclave(ch, produce);
  // Requests are opened (and responses sealed) on the engine's threads: it
  // halves the time before the inference can start on two cores, and wakes
  // the engine's workers while the main thread still decrypts.
  sealed->set_pool(&executor.pool());
  EnclaveSessionStats stats;
  SessionBuffers buf;
  for (;;) {
    try {
      sealed->recv_into(teewire::kRequestTag, buf.request);
    } catch (const Error& e) {
      // The client closed the connection: the session is over.
      if (e.category() == ErrorCategory::kPeerFailure) return stats;
      throw;
    }
    try {
      teewire::decode_request_into(buf.request, buf.inputs);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<Tensor> outputs = executor.run(buf.inputs);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      buf.reply = teewire::encode_ok(outputs, ms);
      wipe(outputs);
      ++stats.requests;
    } catch (const Error& e) {
      buf.reply = teewire::encode_error(e.category(), e.what());
      ++stats.refused;
      log(std::string("refused a request: ") + e.what());
    } catch (const std::bad_alloc&) {
      buf.reply = teewire::encode_error(ErrorCategory::kBadInput, "out of memory for this request");
      ++stats.refused;
      log("refused a request: out of memory");
    }
    sealed->send(teewire::kResponseTag, buf.reply);
    buf.wipe_all();
  }
}

}  // namespace blindfold::backends
