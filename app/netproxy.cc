#include "app/netproxy.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "net/proxy.h"

namespace blindfold::app {

namespace {

// The running proxy, for the signal handler (which may only call stop()).
std::atomic<net::Proxy*> g_proxy{nullptr};

extern "C" void on_stop_signal(int) {
  if (net::Proxy* p = g_proxy.load()) p->stop();
}

std::string fmt_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

class NetCommandsImpl final : public NetCommands {
 public:
  explicit NetCommandsImpl(CLI::App& app) {
    proxy_ = app.add_subcommand(
        "netproxy",
        "TCP proxy adding a one-way delay per direction (the test bed's latency emulator)");
    proxy_->add_option("--listen", listen_, "HOST:PORT to accept connections on")->required();
    proxy_->add_option("--connect", connect_, "HOST:PORT to forward each connection to")
        ->required();
    proxy_
        ->add_option("--delay", delay_ms_,
                     "one-way delay in ms added to each direction (RTT grows by 2x this)")
        ->required()
        ->check(CLI::Range(0.0, 60'000.0));
    proxy_->add_option("--rate", rate_mbit_, "pace each direction of a connection, Mbit/s (0: off)")
        ->check(CLI::Range(0.0, 1e6));
    proxy_->add_option("--max-connections", max_connections_, "connections served at once")
        ->capture_default_str()
        ->check(CLI::Range(1, 65536));
    proxy_
        ->add_option("--max-queue", max_queue_,
                     "bytes held per direction before reading stops (backpressure)")
        ->capture_default_str();
    proxy_->add_flag("--verbose,-v", verbose_, "one line per connection event on stderr");

    probe_ = app.add_subcommand("netprobe", "measure RTT and throughput of a TCP path");
    probe_->require_subcommand(1);
    serve_ = probe_->add_subcommand("serve", "answer one probe session, then exit");
    serve_->add_option("--listen", listen_, "HOST:PORT")->required();
    serve_->add_option("--max-seconds", max_seconds_, "give up after this long")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 3600.0));
    measure_ = probe_->add_subcommand("measure", "measure against a netprobe server; print JSON");
    measure_->add_option("--connect", connect_, "HOST:PORT of `netprobe serve`")->required();
    measure_->add_option("--pings", pings_, "8-byte ping-pongs for the RTT")
        ->capture_default_str()
        ->check(CLI::Range(1, net::kMaxProbePings));
    measure_->add_option("--bytes", bytes_, "bytes sent for the throughput (e.g. 64MiB)")
        ->capture_default_str();
    measure_->add_option("--max-seconds", max_seconds_, "give up after this long")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 3600.0));
  }

  bool selected() const override { return proxy_->parsed() || probe_->parsed(); }

  int run() override {
    if (proxy_->parsed()) return run_proxy();
    if (serve_->parsed()) return run_serve();
    return run_measure();
  }

 private:
  std::chrono::milliseconds max_time() const {
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(max_seconds_ * 1e3)));
  }

  int run_proxy() {
    net::ProxyOptions o;
    o.listen = net::parse_host_port(listen_);
    o.connect = net::parse_host_port(connect_);
    o.delay = std::chrono::microseconds(static_cast<std::int64_t>(std::llround(delay_ms_ * 1e3)));
    o.rate_mbit = rate_mbit_;
    o.max_connections = max_connections_;
    o.max_queue_bytes = static_cast<std::size_t>(net::parse_byte_count(max_queue_));
    o.verbose = verbose_;
    net::Proxy proxy(o);
    std::signal(SIGPIPE, SIG_IGN);
    g_proxy = &proxy;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::fprintf(stderr,
                 "netproxy: %s -> %s, one-way delay %.3f ms per direction (RTT +%.3f ms)%s\n",
                 net::HostPort{o.listen.host, proxy.port()}.str().c_str(), o.connect.str().c_str(),
                 delay_ms_, 2 * delay_ms_,
                 rate_mbit_ > 0 ? (", paced to " + fmt_g(rate_mbit_) + " Mbit/s").c_str() : "");
    std::fflush(stderr);
    proxy.run();
    g_proxy = nullptr;
    const net::ProxyStats s = proxy.stats();
    std::fprintf(stderr,
                 "netproxy: stopped; %lld connections (%lld failed, %lld refused), %lld bytes, "
                 "peak queue %lld bytes\n",
                 static_cast<long long>(s.accepted), static_cast<long long>(s.failed),
                 static_cast<long long>(s.refused), static_cast<long long>(s.bytes),
                 static_cast<long long>(s.peak_queued));
    return 0;
  }

  int run_serve() {
    net::ProbeServer server(net::parse_host_port(listen_));
    server.serve_one(max_time());
    return 0;
  }

  int run_measure() {
    const net::HostPort to = net::parse_host_port(connect_);
    net::ProbeOptions o;
    o.pings = pings_;
    o.bytes = net::parse_byte_count(bytes_);
    o.timeout = max_time();
    const net::ProbeResult r = net::probe_measure(to, o);
    std::printf("%s\n", r.to_json(to.str()).c_str());
    return 0;
  }

  CLI::App *proxy_ = nullptr, *probe_ = nullptr, *serve_ = nullptr, *measure_ = nullptr;
  std::string listen_, connect_, max_queue_ = "64MiB", bytes_ = "64MiB";
  double delay_ms_ = 0, rate_mbit_ = 0, max_seconds_ = 60;
  int max_connections_ = 1024, pings_ = 50;
  bool verbose_ = false;
};

}  // namespace

std::unique_ptr<NetCommands> add_net_commands(CLI::App& app) {
  return std::make_unique<NetCommandsImpl>(app);
}

}  // namespace blindfold::app
