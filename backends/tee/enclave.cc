#include "backends/tee/enclave.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <new>
#include <span>

#include "backends/tee/wire.h"
#include "core/error.h"

namespace blindfold::backends {

namespace {

// The client's tensors and the outputs are its secrets: wiped once the answer
// is on its way, and on every way out of the session.
using ByteSpan = std::span<std::uint8_t>;

// Wipes the concatenation of `parts`, cut into equal byte ranges across the
// pool's threads (a batch's request is hundreds of kilobytes).
void wipe(std::span<const ByteSpan> parts, ThreadPool& pool) {
  std::size_t total = 0;
  for (const ByteSpan& p : parts) total += p.size();
  if (total == 0) return;
  const auto n = static_cast<std::int64_t>(pool.size());
  pool.parallel_for(n, [&](std::int64_t c0, std::int64_t c1) {
    const std::size_t from = total * static_cast<std::size_t>(c0) / static_cast<std::size_t>(n);
    const std::size_t to = total * static_cast<std::size_t>(c1) / static_cast<std::size_t>(n);
    std::size_t at = 0;  // where the current part starts in the concatenation
    for (const ByteSpan& p : parts) {
      const std::size_t a = std::max(from, at), b = std::min(to, at + p.size());
      if (a < b) OPENSSL_cleanse(p.data() + (a - at), b - a);
      at += p.size();
    }
  });
}

// The session's secret buffers, reused from request to request.
struct SessionBuffers {
  explicit SessionBuffers(ThreadPool& p) : pool(p) {}
  ThreadPool& pool;
  teewire::Bytes request;       // the opened request
  std::vector<Tensor> inputs;   // decoded from it
  std::vector<Tensor> outputs;  // the engine's answer
  teewire::Bytes reply;         // the response before sealing
  void wipe_all() {
    std::vector<ByteSpan> parts{request, reply};
    for (Tensor& t : inputs) parts.push_back(t.bytes());
    for (Tensor& t : outputs) parts.push_back(t.bytes());
    wipe(parts, pool);
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
  SessionBuffers buf(executor.pool());
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
      buf.outputs = executor.run(buf.inputs);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      buf.reply = teewire::encode_ok(buf.outputs, ms);
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
