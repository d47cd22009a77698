#include "net/mesh.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "net/certs.h"
#include "net/tls.h"

namespace blindfold::net {

namespace {

using nlohmann::json;

constexpr int kMaxParties = 64;
constexpr std::uintmax_t kMaxConfigBytes = 1 << 20;
// Longest a connected but silent or slow newcomer may hold up the acceptor.
constexpr auto kHandshakeLimit = std::chrono::seconds(10);

// ---- configuration -----------------------------------------------------------

[[noreturn]] void bad(const std::string& source, const std::string& msg) {
  throw Error(ErrorCategory::kBadInput, source + ": " + msg);
}

std::string resolve_path(const std::filesystem::path& base, const std::string& p) {
  const std::filesystem::path path(p);
  return (path.is_absolute() ? path : base / path).lexically_normal().string();
}

void check_keys(const json& obj, const std::set<std::string>& allowed, const std::string& where,
                const std::string& source) {
  for (const auto& [key, _] : obj.items()) {
    if (!allowed.count(key)) bad(source, where + ": unknown key '" + key.substr(0, 40) + "'");
  }
}

std::string get_string(const json& obj, const char* key, const std::string& where,
                       const std::string& source, bool required) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) bad(source, where + ": missing \"" + key + "\"");
    return "";
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    bad(source, where + ": \"" + key + "\" must be a non-empty string");
  }
  return it->get<std::string>();
}

std::int64_t get_int(const json& obj, const char* key, const std::string& where,
                     const std::string& source) {
  const auto it = obj.find(key);
  if (it == obj.end()) bad(source, where + ": missing \"" + key + "\"");
  if (!it->is_number_integer()) bad(source, where + ": \"" + key + "\" must be an integer");
  return it->get<std::int64_t>();
}

// ---- hello -------------------------------------------------------------------
// Connector -> acceptor: magic (8) | u32 id | u32 n. Acceptor -> connector:
// magic | u32 id | u32 n | u8 status (0: accepted) | reason text.

constexpr std::uint8_t kMagic[8] = {'b', 'f', 'm', 'e', 's', 'h', 0, 1};  // version 1
constexpr std::size_t kHelloBytes = 16;
constexpr std::size_t kMaxReplyBytes = kHelloBytes + 1 + 200;
constexpr std::uint64_t kHelloLimit = 256;  // frame cap while the peer is unauthenticated

Bytes encode_hello(int id, int n) {
  Bytes b(kMagic, kMagic + 8);
  for (std::uint32_t v : {static_cast<std::uint32_t>(id), static_cast<std::uint32_t>(n)}) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  return b;
}

struct Hello {
  std::uint32_t id = 0, n = 0;
};

std::optional<Hello> decode_hello(const Bytes& b) {
  if (b.size() < kHelloBytes || !std::equal(kMagic, kMagic + 8, b.begin())) return std::nullopt;
  Hello h;
  for (int i = 0; i < 4; ++i) {
    h.id |= static_cast<std::uint32_t>(b[8 + i]) << (8 * i);
    h.n |= static_cast<std::uint32_t>(b[12 + i]) << (8 * i);
  }
  return h;
}

std::string printable(const std::uint8_t* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += (p[i] >= 0x20 && p[i] < 0x7f) ? char(p[i]) : '?';
  return out;
}

std::string label(const MeshConfig& c, int id) {
  return "party " + std::to_string(id) + " (" + c.parties[static_cast<std::size_t>(id)].name + ")";
}

std::chrono::milliseconds until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

// Prefixes an error's message with what we were doing, keeping its category.
[[noreturn]] void rethrow_with(const Error& e, const std::string& context) {
  throw Error(e.category(), context + ": " + e.what());
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return false;
  bool all = true;
  for (const addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      all = all && (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    } else if (ai->ai_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      const bool mapped_loopback =
          IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
      all = all && (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) || mapped_loopback);
    } else {
      all = false;
    }
  }
  freeaddrinfo(res);
  return all;
}

MeshConfig parse_mesh_config(std::string_view text, const std::filesystem::path& base_dir,
                             const std::string& source) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    bad(source, std::string("invalid JSON: ") + e.what());
  }
  if (!doc.is_object()) bad(source, "the top level must be a JSON object");
  check_keys(doc, {"ca", "transport", "parties"}, "top level", source);

  MeshConfig c;
  c.source = source;
  const std::string transport =
      doc.contains("transport") ? get_string(doc, "transport", "top level", source, true) : "tls";
  if (transport == "tls") {
    c.transport = Transport::kTls;
  } else if (transport == "tcp") {
    c.transport = Transport::kTcp;
  } else {
    bad(source,
        "\"transport\" must be \"tls\" or \"tcp\", not \"" + transport.substr(0, 40) + "\"");
  }
  const bool tls = c.transport == Transport::kTls;
  const std::string ca = get_string(doc, "ca", "top level", source, tls);
  if (!ca.empty()) c.ca = resolve_path(base_dir, ca);
  if (tls) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(c.ca, ec)) {
      bad(source, "CA certificate '" + c.ca + "' does not exist");
    }
  }

  const auto parties = doc.find("parties");
  if (parties == doc.end() || !parties->is_array()) bad(source, "\"parties\" must be an array");
  const auto n = static_cast<int>(parties->size());
  if (n < 2 || n > kMaxParties) {
    bad(source,
        "a mesh needs 2 to " + std::to_string(kMaxParties) + " parties, got " + std::to_string(n));
  }
  c.parties.resize(static_cast<std::size_t>(n));
  std::vector<bool> have(static_cast<std::size_t>(n), false);
  std::set<std::string> names, endpoints;
  for (int k = 0; k < n; ++k) {
    const json& p = (*parties)[static_cast<std::size_t>(k)];
    std::string where = "parties[" + std::to_string(k) + "]";
    if (!p.is_object()) bad(source, where + " must be an object");
    check_keys(p, {"id", "name", "host", "port", "bind", "bind_port", "cert", "key"}, where,
               source);
    const std::int64_t id = get_int(p, "id", where, source);
    if (id < 0 || id >= n) {
      bad(source,
          where + ": \"id\" must be 0 to " + std::to_string(n - 1) + ", got " + std::to_string(id));
    }
    if (have[static_cast<std::size_t>(id)]) {
      bad(source, where + ": id " + std::to_string(id) + " appears twice");
    }
    have[static_cast<std::size_t>(id)] = true;
    PartyConfig& pc = c.parties[static_cast<std::size_t>(id)];
    pc.id = static_cast<int>(id);
    pc.name = get_string(p, "name", where, source, true);
    if (!is_valid_party_name(pc.name)) {
      bad(source, where + ": name '" + pc.name.substr(0, 80) +
                      "' must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending "
                      "with '-'");
    }
    if (!names.insert(pc.name).second)
      bad(source, where + ": name '" + pc.name + "' appears twice");
    where += " (" + pc.name + ")";
    pc.host = get_string(p, "host", where, source, true);
    pc.bind = get_string(p, "bind", where, source, false);
    for (const std::string* h : {&pc.host, &pc.bind}) {
      if (h->size() > 253 || std::any_of(h->begin(), h->end(), [](char ch) {
            return ch <= ' ' || ch >= 0x7f || ch == '/';
          })) {
        bad(source, where + ": '" + h->substr(0, 80) + "' is not a host name or address");
      }
    }
    const std::int64_t port = get_int(p, "port", where, source);
    if (port < 1 || port > 65535) {
      bad(source, where + ": \"port\" must be 1 to 65535, got " + std::to_string(port));
    }
    pc.port = static_cast<std::uint16_t>(port);
    if (p.contains("bind_port")) {
      const std::int64_t bp = get_int(p, "bind_port", where, source);
      if (bp < 1 || bp > 65535) {
        bad(source, where + ": \"bind_port\" must be 1 to 65535, got " + std::to_string(bp));
      }
      pc.bind_port = static_cast<std::uint16_t>(bp);
    }
    if (!endpoints.insert(host_port(pc.host, pc.port)).second) {
      bad(source, where + ": " + host_port(pc.host, pc.port) + " is used by another party");
    }
    const std::string cert = get_string(p, "cert", where, source, tls);
    const std::string key = get_string(p, "key", where, source, tls);
    if (!cert.empty()) pc.cert = resolve_path(base_dir, cert);
    if (!key.empty()) pc.key = resolve_path(base_dir, key);
  }
  return c;
}

MeshConfig load_mesh_config(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw Error(ErrorCategory::kBadInput, "mesh config '" + file.string() + "' does not exist");
  }
  const auto size = std::filesystem::file_size(file, ec);
  if (ec || size > kMaxConfigBytes) {
    throw Error(ErrorCategory::kBadInput,
                "mesh config '" + file.string() + "' is unreadable or larger than 1 MiB");
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) throw Error(ErrorCategory::kBadInput, "cannot read mesh config '" + file.string() + "'");
  const std::filesystem::path base = std::filesystem::absolute(file, ec).parent_path();
  return parse_mesh_config(ss.str(), ec ? file.parent_path() : base, file.string());
}

Mesh connect_mesh(const MeshConfig& config, int my_id, const MeshOptions& options) {
  const int n = static_cast<int>(config.parties.size());
  if (n < 2) throw Error(ErrorCategory::kBadInput, "a mesh needs at least 2 parties");
  for (int i = 0; i < n; ++i) {
    if (config.parties[static_cast<std::size_t>(i)].id != i) {
      throw Error(ErrorCategory::kBadInput, "mesh config parties must be sorted by id");
    }
  }
  if (my_id < 0 || my_id >= n) {
    throw Error(ErrorCategory::kBadInput, "party id " + std::to_string(my_id) +
                                              " is not in the mesh (ids 0 to " +
                                              std::to_string(n - 1) + ")");
  }
  if (options.timeout <= std::chrono::milliseconds::zero()) {
    throw Error(ErrorCategory::kBadInput, "the mesh timeout must be positive");
  }
  const PartyConfig& me = config.parties[static_cast<std::size_t>(my_id)];
  const bool tls = config.transport == Transport::kTls;
  const std::string self = "party " + std::to_string(my_id) + " (" + me.name + ")";

  std::optional<TlsContext> ctx;
  if (tls) {
    if (me.cert.empty() || me.key.empty()) {
      throw Error(ErrorCategory::kBadInput, self + " has no certificate or key configured");
    }
    ctx.emplace(TlsConfig{config.ca, me.cert, me.key, ""});
  } else {
    if (!options.insecure_transport) {
      throw Error(ErrorCategory::kInsecureParameters,
                  "plain TCP refused: pass --insecure-transport (loopback benchmarks only)");
    }
    for (const auto& p : config.parties) {
      if (!is_loopback_host(p.host)) {
        const std::string msg = "plain TCP to " + p.host + " (party " + std::to_string(p.id) +
                                "): traffic is neither encrypted nor authenticated";
        if (options.warn) {
          options.warn(msg);
        } else {
          std::fprintf(stderr, "blindfold: warning: %s\n", msg.c_str());
        }
      }
    }
  }

  const Clock::time_point deadline = Clock::now() + options.timeout;
  // Listen first, so that higher parties' connection attempts queue in the
  // kernel while we are connecting to the lower ones.
  std::optional<TcpListener> own_listener;
  TcpListener* listener = options.listener;
  if (my_id < n - 1 && !listener) {
    own_listener.emplace(me.bind.empty() ? me.host : me.bind,
                         me.bind_port != 0 ? me.bind_port : me.port);
    listener = &*own_listener;
  }

  Mesh mesh;
  mesh.self = my_id;
  mesh.peers.resize(static_cast<std::size_t>(n));

  // Lower ids: we connect, authenticate them by name, and say who we are.
  for (int i = 0; i < my_id; ++i) {
    const PartyConfig& peer = config.parties[static_cast<std::size_t>(i)];
    const std::string who = label(config, i);
    // A connection that is closed before the hello answer (a proxy whose
    // upstream is not listening yet, as in the test bed) is retried until
    // the deadline; refusals and certificate failures are not.
    for (;;) {
      try {
        Socket s = tcp_connect(peer.host, peer.port, deadline);
        std::unique_ptr<Channel> ch;
        if (tls) {
          ch = std::make_unique<TlsChannel>(*ctx, std::move(s), TlsRole::kClient, deadline, who,
                                            peer.name);
        } else {
          ch = std::make_unique<TcpChannel>(std::move(s));
        }
        ch->set_peer_name(who);
        ch->set_timeout(until(deadline));
        ch->set_max_message_bytes(kHelloLimit);
        ch->send("hello", encode_hello(my_id, n));
        const Bytes reply = ch->recv("hello");
        const auto h = decode_hello(reply);
        if (!h || reply.size() < kHelloBytes + 1 || reply.size() > kMaxReplyBytes) {
          throw Error(ErrorCategory::kBadMessage, "malformed hello reply");
        }
        if (reply[kHelloBytes] != 0) {
          throw Error(ErrorCategory::kPeerFailure,
                      "refused our connection: " + printable(reply.data() + kHelloBytes + 1,
                                                             reply.size() - kHelloBytes - 1));
        }
        if (h->id != static_cast<std::uint32_t>(i) || h->n != static_cast<std::uint32_t>(n)) {
          throw Error(ErrorCategory::kBadMessage, "answered as party " + std::to_string(h->id) +
                                                      " of " + std::to_string(h->n) +
                                                      " (configurations differ?)");
        }
        ch->set_max_message_bytes(kDefaultMaxMessageBytes);
        ch->set_timeout(options.timeout);
        mesh.peers[static_cast<std::size_t>(i)] = std::move(ch);
        break;
      } catch (const Error& e) {
        const std::string what = e.what();
        const bool transient = e.category() == ErrorCategory::kPeerFailure &&
                               what.find("refused our connection") == std::string::npos &&
                               what.find("certificate") == std::string::npos &&
                               what.find("verify") == std::string::npos &&
                               Clock::now() + std::chrono::milliseconds(50) < deadline;
        if (transient) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        rethrow_with(e, self + ": connecting to " + who + " at " + host_port(peer.host, peer.port));
      }
    }
  }

  // Higher ids: they connect to us; whoever fails authentication is dropped.
  int waiting = n - 1 - my_id;
  std::vector<std::string> rejected;
  int rejected_count = 0;
  while (waiting > 0) {
    std::string remote;
    Socket s;
    try {
      s = listener->accept(deadline, &remote);
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kPeerFailure) throw;
      std::string missing;
      for (int j = my_id + 1; j < n; ++j) {
        if (!mesh.peers[static_cast<std::size_t>(j)]) {
          missing += (missing.empty() ? "" : ", ") + label(config, j);
        }
      }
      std::string msg = self + ": timed out after " + std::to_string(options.timeout.count()) +
                        " ms waiting for " + missing + " to connect";
      if (rejected_count > 0) {
        msg += "; " + std::to_string(rejected_count) + " connection(s) rejected: ";
        for (std::size_t k = 0; k < rejected.size(); ++k) msg += (k ? " | " : "") + rejected[k];
      }
      throw Error(ErrorCategory::kPeerFailure, msg);
    }
    const std::string who = "incoming connection from " + remote;
    std::unique_ptr<Channel> ch;
    std::unique_ptr<Channel>* slot = nullptr;
    try {
      const Clock::time_point hs_deadline = std::min(deadline, Clock::now() + kHandshakeLimit);
      TlsChannel* tch = nullptr;
      if (tls) {
        auto t =
            std::make_unique<TlsChannel>(*ctx, std::move(s), TlsRole::kServer, hs_deadline, who);
        tch = t.get();
        ch = std::move(t);
      } else {
        ch = std::make_unique<TcpChannel>(std::move(s));
      }
      ch->set_peer_name(who);
      ch->set_timeout(until(hs_deadline));
      ch->set_max_message_bytes(kHelloLimit);
      const Bytes hello = ch->recv("hello");
      const auto h = decode_hello(hello);
      if (!h || hello.size() != kHelloBytes) {
        throw Error(ErrorCategory::kBadMessage, who + ": malformed hello");
      }
      auto refuse = [&](const std::string& why) {
        Bytes reply = encode_hello(my_id, n);
        reply.push_back(1);
        reply.insert(reply.end(), why.begin(),
                     why.begin() + std::min<std::size_t>(why.size(), 200));
        try {
          ch->send("hello", reply);
          ch->flush();
        } catch (const Error&) {
          // It is being dropped anyway.
        }
        throw Error(ErrorCategory::kPeerFailure, who + ": " + why);
      };
      if (h->n != static_cast<std::uint32_t>(n)) {
        refuse("it has a mesh of " + std::to_string(h->n) + " parties, we have " +
               std::to_string(n));
      }
      if (h->id <= static_cast<std::uint32_t>(my_id) || h->id >= static_cast<std::uint32_t>(n)) {
        refuse("it claims id " + std::to_string(h->id) + ", which does not connect to " + self);
      }
      const int id = static_cast<int>(h->id);
      if (tch) {
        const std::string& name = config.parties[static_cast<std::size_t>(id)].name;
        if (!tch->peer_has_name(name)) {
          const std::string names = tch->peer_names();
          refuse("it claims to be " + label(config, id) + " but its certificate is for '" +
                 (names.empty() ? std::string("no DNS name") : names) + "'");
        }
      }
      slot = &mesh.peers[static_cast<std::size_t>(id)];
      if (*slot) refuse(label(config, id) + " is already connected");
      Bytes reply = encode_hello(my_id, n);
      reply.push_back(0);
      ch->send("hello", reply);
      ch->flush();
      ch->set_peer_name(label(config, id));
      ch->set_max_message_bytes(kDefaultMaxMessageBytes);
      ch->set_timeout(options.timeout);
      *slot = std::move(ch);
      --waiting;
    } catch (const Error& e) {
      // Keep listening for the real party; remember why this one failed.
      ++rejected_count;
      if (rejected.size() < 3) rejected.push_back(e.what());
    }
  }
  return mesh;
}

}  // namespace blindfold::net
