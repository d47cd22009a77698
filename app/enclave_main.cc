// blindfold-enclave: the enclave process of the tee backend (backends/tee).
// It loads the model with the plaintext engine, measures its own binary
// (/proc/self/exe) and the model file (SHA-384), loads the SIMULATED platform
// key, and serves one attested session on the connected stream socket it
// inherits (--fd; the host passes one end of a socket pair): the handshake
// (tee/channel.h), then sealed requests -> inference -> sealed responses
// until the client closes. No hardware protects this process: the platform
// is simulated (tee/simulated.h), and whoever controls this machine can read
// its memory and forge its evidence.
//
// It links only what it needs: core, net, tee, model and backends/tee's
// enclave loop and wire format (CMakeLists.txt).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <new>
#include <string>

#include "backends/tee/enclave.h"
#include "backends/tee/local_channel.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/npy.h"
#include "core/thread_pool.h"
#include "model/executor.h"
#include "model/onnx_import.h"
#include "tee/crypto.h"
#include "tee/simulated.h"

namespace {

using namespace blindfold;

// Largest model file the enclave loads (the importer has its own limits).
constexpr std::int64_t kMaxModelBytes = std::int64_t{2} << 30;

int serve(int fd, const std::string& model_path, const std::string& platform_dir,
          unsigned threads) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::fcntl(fd, F_GETFD) < 0 || ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_STREAM) {
    throw_error(ErrorCategory::kBadInput,
                "--fd " + std::to_string(fd) + " is not a connected stream socket");
  }
  net::Socket sock(fd);
  // Die with the host: a host that vanishes must not leave enclaves behind.
  (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);

  const tee::Bytes code = tee::measure_file("/proc/self/exe");
  // The model is read once, and the bytes measured are the bytes loaded.
  const std::string model_bytes = read_file_bytes(model_path, kMaxModelBytes);
  const tee::Bytes model_measure = tee::sha384(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(model_bytes.data()), model_bytes.size()));
  const model::Graph graph = model::import_onnx(model_bytes);
  const tee::SimulatedPlatform platform = tee::SimulatedPlatform::load_or_create(platform_dir);

  // The engine's workers poll for work for up to kEnclaveSpin before they
  // sleep: long enough to stay awake from one request of a busy session to
  // the next (the gap is the client's sealing and the transport, ~0.1-0.2
  // ms for a batch of 64 images), since waking a sleeping worker costs
  // 70-100 us on this project's VMs -- an in-process engine called back to
  // back never pays it. The price is that much CPU after a session's last
  // request.
  constexpr std::chrono::microseconds kEnclaveSpin{2000};
  ThreadPool pool(threads, kEnclaveSpin);
  model::Executor executor(graph, pool);

  backends::SyncLocalChannel ch(std::move(sock));
  ch.set_peer_name("the tee client");
  // Waits for the next request as long as the client keeps the session open.
  ch.set_timeout(std::chrono::hours(24));
  const tee::EvidenceProducer produce = [&](const std::array<std::uint8_t, 64>& report_data) {
    return platform.make_evidence(code, model_measure, report_data, /*debug=*/false);
  };
  const backends::EnclaveSessionStats st =
      backends::serve_enclave_session(ch, produce, executor, [](const std::string& line) {
        std::fprintf(stderr, "blindfold-enclave: %s\n", line.c_str());
        std::fflush(stderr);
      });
  (void)st;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  blindfold::tune_allocator();
  CLI::App app{"blindfold-enclave: the tee backend's enclave process (SIMULATED platform)"};
  int fd = -1;
  std::string model_path, platform_dir;
  unsigned threads = 0;
  app.add_option("--fd", fd, "the connected stream socket to serve (inherited)")->required();
  app.add_option("--model", model_path, "the ONNX model to load and measure")->required();
  app.add_option("--platform-dir", platform_dir,
                 "the simulated platform's key and certificate (created when missing)")
      ->required();
  app.add_option("--threads", threads, "inference threads (0: all cores)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return serve(fd, model_path, platform_dir, threads);
  } catch (const blindfold::Error& e) {
    std::fprintf(stderr, "blindfold-enclave: %s: %s\n",
                 std::string(blindfold::category_name(e.category())).c_str(), e.what());
    return blindfold::exit_code(e.category());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "blindfold-enclave: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "blindfold-enclave: unexpected error: %s\n", e.what());
    return 1;
  }
}
