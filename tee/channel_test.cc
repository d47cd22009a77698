#include "tee/channel.h"

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "net/memory.h"
#include "tee/crypto.h"
#include "tee/simulated.h"

namespace blindfold::tee {
namespace {

using namespace std::chrono_literals;

Time at(const char* s) {
  return *parse_time(s);
}
const Time kNow = at("2026-06-01T00:00:00Z");

Bytes bytes_of(std::string_view s) {
  return Bytes(s.begin(), s.end());
}
Bytes measure(std::string_view s) {
  return sha384(bytes_of(s));
}
bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

SimulatedPlatform new_platform() {
  return SimulatedPlatform::generate(at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
}

// The error an exception_ptr holds: its category and message.
struct Failure {
  bool thrown = false;
  ErrorCategory category = ErrorCategory::kInternal;
  std::string what;
};
Failure failure_of(const std::exception_ptr& e) {
  Failure f;
  if (!e) return f;
  f.thrown = true;
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    f.category = err.category();
    f.what = err.what();
  } catch (const std::exception& err) {
    f.what = std::string("non-Error exception: ") + err.what();
  }
  return f;
}

// Runs the parties on their own threads; a party that throws closes its
// channels so the others fail fast instead of waiting for a timeout.
using Party = std::function<void()>;
std::vector<Failure> run_parties(
    const std::vector<std::pair<Party, std::vector<net::Channel*>>>& parties) {
  std::vector<std::exception_ptr> errs(parties.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < parties.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        parties[i].first();
      } catch (...) {
        errs[i] = std::current_exception();
        for (net::Channel* c : parties[i].second) c->close();
      }
    });
  for (auto& t : threads) t.join();
  std::vector<Failure> out;
  for (auto& e : errs) out.push_back(failure_of(e));
  return out;
}

// A simulated enclave deployment and a client that trusts it.
struct Deployment {
  SimulatedPlatform platform = new_platform();
  Bytes code = measure("enclave binary"), model = measure("model file");
  Policy policy;
  std::unique_ptr<net::Channel> client_ch, enclave_ch;
  std::mutex mu;
  std::vector<std::string> enclave_received;  // tags, in order

  Deployment() {
    policy.trust_simulated_platform = true;
    policy.measurements["CODE"] = {code};
    policy.measurements["MODEL"] = {model};
    auto [a, b] = net::memory_pair();
    client_ch = std::move(a);
    enclave_ch = std::move(b);
    client_ch->set_timeout(10s);
    enclave_ch->set_timeout(10s);
    enclave_ch->set_receive_observer([this](std::string_view tag, std::span<const std::uint8_t>) {
      std::lock_guard<std::mutex> lock(mu);
      enclave_received.emplace_back(tag);
    });
  }
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> lock(mu);
    return enclave_received;
  }
  EvidenceVerifier verifier() {
    return [this](std::span<const std::uint8_t> ev) {
      return verify_simulated_evidence(ev, platform.certificate(), kNow);
    };
  }
  EvidenceProducer producer() {
    return [this](const std::array<std::uint8_t, 64>& rd) {
      return platform.make_evidence(code, model, rd, false);
    };
  }
  // Client attests then optionally runs `then`; the enclave answers and
  // serves `serve`. Returns {client failure, enclave failure}.
  std::pair<Failure, Failure> run(const EvidenceVerifier& verify, const EvidenceProducer& produce,
                                  const std::function<void(AttestedSession&)>& then = {},
                                  const std::function<void(SealedChannel&)>& serve = {}) {
    auto f = run_parties({{[&] {
                             AttestedSession s = attest_client(*client_ch, verify, policy);
                             if (then) then(s);
                           },
                           {client_ch.get()}},
                          {[&] {
                             auto sc = attest_enclave(*enclave_ch, produce);
                             if (serve) serve(*sc);
                           },
                           {enclave_ch.get()}}});
    return {f[0], f[1]};
  }
};

TEST(TeeChannel, GoodHandshakeAndSealedRoundTrips) {
  Deployment s;
  AttestedSession got;
  std::vector<Bytes> wire;  // application records as the enclave's transport saw them
  s.enclave_ch->set_receive_observer([&](std::string_view tag, std::span<const std::uint8_t> p) {
    if (tag == "req") wire.emplace_back(p.begin(), p.end());
  });
  auto [c, e] = s.run(
      s.verifier(), s.producer(),
      [&](AttestedSession& sess) {
        for (int i = 0; i < 3; ++i) {
          const std::string msg = "secret prompt number " + std::to_string(i);
          sess.channel->send("req", bytes_of(msg));
          Bytes r = sess.channel->recv("resp");
          EXPECT_EQ(std::string(r.begin(), r.end()), "answer to " + msg);
        }
        sess.channel->send("req", Bytes{});  // an empty record works too
        EXPECT_TRUE(sess.channel->recv("resp").empty());
        got = std::move(sess);
      },
      [&](SealedChannel& sc) {
        for (int i = 0; i < 3; ++i) {
          Bytes q = sc.recv("req");
          sc.send("resp", bytes_of("answer to " + std::string(q.begin(), q.end())));
        }
        EXPECT_TRUE(sc.recv("req").empty());
        sc.send("resp", Bytes{});
      });
  ASSERT_FALSE(c.thrown) << c.what << " / enclave: " << e.what;
  ASSERT_FALSE(e.thrown) << e.what;
  EXPECT_TRUE(got.appraisal.accepted());
  EXPECT_EQ(got.claims.platform, Platform::kSimulated);
  EXPECT_EQ(*got.claims.measurement("CODE"), s.code);
  bool warned = false;
  for (const auto& w : got.appraisal.warnings) warned |= contains(w, "no hardware");
  EXPECT_TRUE(warned);
  EXPECT_GT(got.handshake_bytes, 0);
  EXPECT_GE(got.handshake_ms, 0.0);
  EXPECT_EQ(got.channel->records_sent(), 5u);  // Finished + 4 requests
  EXPECT_EQ(got.channel->records_received(), 5u);
  // The prompts never travel in the clear.
  ASSERT_EQ(wire.size(), 4u);
  for (const Bytes& rec : wire) {
    const std::string text(rec.begin(), rec.end());
    EXPECT_FALSE(contains(text, "secret prompt"));
  }
}

TEST(TeeChannel, ClientSendsNothingButTheHelloBeforeAcceptance) {
  Deployment s;
  std::vector<std::string> seen_at_verification;
  EvidenceVerifier spy = [&](std::span<const std::uint8_t> ev) {
    seen_at_verification = s.received();
    return s.verifier()(ev);
  };
  std::vector<std::string> seen_before_finished;
  auto [c, e] = s.run(spy, [&](const std::array<std::uint8_t, 64>& rd) {
    seen_before_finished = s.received();
    return s.producer()(rd);
  });
  ASSERT_FALSE(c.thrown) << c.what << " / enclave: " << e.what;
  ASSERT_FALSE(e.thrown) << e.what;
  EXPECT_EQ(seen_before_finished, std::vector<std::string>{"tee-hello"});
  EXPECT_EQ(seen_at_verification, std::vector<std::string>{"tee-hello"});
  EXPECT_EQ(s.received(), (std::vector<std::string>{"tee-hello", "tee-finished"}));

  // And when the policy rejects, the enclave never receives anything more.
  Deployment r;
  r.policy.measurements["CODE"] = {measure("other code")};
  auto [c2, e2] =
      r.run(r.verifier(), r.producer(), [](AttestedSession&) { ADD_FAILURE() << "accepted"; });
  EXPECT_TRUE(c2.thrown);
  EXPECT_EQ(r.received(), std::vector<std::string>{"tee-hello"});
  EXPECT_EQ(e2.category, ErrorCategory::kPeerFailure) << e2.what;
}

TEST(TeeChannel, WrongMeasurementIsRejectedByAPolicyNamingCodeOrModel) {
  for (const char* name : {"CODE", "MODEL"}) {
    Deployment s;
    s.policy.measurements[name] = {measure("something else")};
    auto [c, e] = s.run(s.verifier(), s.producer());
    ASSERT_TRUE(c.thrown) << name;
    EXPECT_EQ(c.category, ErrorCategory::kBadMessage);
    EXPECT_TRUE(contains(c.what, "attestation: ")) << c.what;
    EXPECT_TRUE(contains(c.what, name)) << c.what;
    EXPECT_TRUE(e.thrown);
  }
}

TEST(TeeChannel, PolicyWithoutTrustSimulatedPlatformRefusesSimulatedEvidence) {
  Deployment s;
  s.policy.trust_simulated_platform = false;
  auto [c, e] = s.run(s.verifier(), s.producer());
  ASSERT_TRUE(c.thrown);
  EXPECT_EQ(c.category, ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(c.what, "no hardware protects it")) << c.what;
}

TEST(TeeChannel, EvidenceFromAnotherPlatformKeyIsRejected) {
  Deployment s;
  SimulatedPlatform rogue = new_platform();
  auto [c, e] = s.run(s.verifier(), [&](const std::array<std::uint8_t, 64>& rd) {
    return rogue.make_evidence(s.code, s.model, rd, false);
  });
  ASSERT_TRUE(c.thrown);
  EXPECT_EQ(c.category, ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(c.what, "another platform key")) << c.what;
  EXPECT_EQ(s.received(), std::vector<std::string>{"tee-hello"});
}

TEST(TeeChannel, ReplayedEvidenceForAnotherNonceIsRejected) {
  // A host records the evidence of one session and replays it in the next.
  Bytes recorded;
  {
    Deployment first;
    auto [c, e] = first.run(first.verifier(), [&](const std::array<std::uint8_t, 64>& rd) {
      recorded = first.producer()(rd);
      return recorded;
    });
    ASSERT_FALSE(c.thrown) << c.what;
    Deployment second;
    second.platform = std::move(first.platform);
    auto [c2, e2] = second.run(second.verifier(),
                               [&](const std::array<std::uint8_t, 64>&) { return recorded; });
    ASSERT_TRUE(c2.thrown);
    EXPECT_EQ(c2.category, ErrorCategory::kBadMessage);
    EXPECT_TRUE(contains(c2.what, "report_data")) << c2.what;
  }
}

// A man in the middle: client <-> host <-> enclave, the host relaying the
// scripted handshake and rewriting what `rewrite` changes.
struct Mitm {
  Deployment s;  // s.client_ch talks to host_c; s.enclave_ch is unused
  std::unique_ptr<net::Channel> host_c, host_e, enclave;

  Mitm() {
    auto [a, b] = net::memory_pair();
    // Re-wire: the client's peer is the host.
    s.client_ch = std::move(a);
    host_c = std::move(b);
    auto [x, y] = net::memory_pair();
    host_e = std::move(x);
    enclave = std::move(y);
    for (auto* ch : {s.client_ch.get(), host_c.get(), host_e.get(), enclave.get()})
      ch->set_timeout(10s);
  }
  // rewrite(tag, bytes) for each relayed handshake message.
  std::vector<Failure> run(const std::function<Bytes(std::string_view, Bytes)>& rewrite) {
    return run_parties(
        {{[&] { attest_client(*s.client_ch, s.verifier(), s.policy); }, {s.client_ch.get()}},
         {[&] {
            host_e->send("tee-hello", rewrite("tee-hello", host_c->recv("tee-hello")));
            host_c->send("tee-evidence", rewrite("tee-evidence", host_e->recv("tee-evidence")));
            host_e->send("tee-finished", rewrite("tee-finished", host_c->recv("tee-finished")));
            host_c->send("tee-finished", rewrite("tee-finished", host_e->recv("tee-finished")));
          },
          {host_c.get(), host_e.get()}},
         {[&] { attest_enclave(*enclave, s.producer()); }, {enclave.get()}}});
  }
};

TEST(TeeChannel, HonestRelayWorksAndSwappedKeysAreRejected) {
  {
    Mitm m;
    auto f = m.run([](std::string_view, Bytes b) { return b; });
    EXPECT_FALSE(f[0].thrown) << f[0].what;
    EXPECT_FALSE(f[2].thrown) << f[2].what;
  }
  {
    // The host swaps the enclave's X25519 key for its own: the evidence binds
    // the enclave's key, so the client rejects before sending anything else.
    Mitm m;
    auto f = m.run([](std::string_view tag, Bytes b) {
      if (tag == "tee-evidence") {
        EnclaveEvidence ev = parse_enclave_evidence(b);
        Bytes host_key = measure("host key");
        std::copy_n(host_key.begin(), ev.key.size(), ev.key.begin());
        return serialize_enclave_evidence(ev);
      }
      return b;
    });
    ASSERT_TRUE(f[0].thrown);
    EXPECT_EQ(f[0].category, ErrorCategory::kBadMessage);
    EXPECT_TRUE(contains(f[0].what, "report_data")) << f[0].what;
    EXPECT_TRUE(f[2].thrown);  // the enclave never gets a Finished
  }
  {
    // The host swaps the client's key: the enclave's keys differ, so the
    // client's Finished fails to authenticate at the enclave.
    Mitm m;
    auto f = m.run([](std::string_view tag, Bytes b) {
      if (tag == "tee-hello") {
        ClientHello h = parse_client_hello(b);
        Bytes host_key = measure("host key");
        std::copy_n(host_key.begin(), h.key.size(), h.key.begin());
        return serialize_client_hello(h);
      }
      return b;
    });
    ASSERT_TRUE(f[2].thrown);
    EXPECT_EQ(f[2].category, ErrorCategory::kBadMessage);
    EXPECT_TRUE(contains(f[2].what, "does not authenticate")) << f[2].what;
    EXPECT_TRUE(f[0].thrown);
  }
  {
    // The host changes the nonce: the evidence binds the nonce the enclave saw.
    Mitm m;
    auto f = m.run([](std::string_view tag, Bytes b) {
      if (tag == "tee-hello") b[1] ^= 1;
      return b;
    });
    ASSERT_TRUE(f[0].thrown);
    EXPECT_TRUE(contains(f[0].what, "report_data")) << f[0].what;
  }
}

TEST(TeeChannel, SmallOrderEnclaveKeyIsRejected) {
  // A (malicious) enclave whose evidence binds an all-zero X25519 key.
  Deployment s;
  auto f = run_parties(
      {{[&] { attest_client(*s.client_ch, s.verifier(), s.policy); }, {s.client_ch.get()}},
       {[&] {
          ClientHello h = parse_client_hello(s.enclave_ch->recv("tee-hello"));
          EnclaveEvidence ev;  // key all zero
          ev.evidence = s.producer()(binding_report_data(ev.key, h.nonce));
          s.enclave_ch->send("tee-evidence", serialize_enclave_evidence(ev));
          s.enclave_ch->recv("tee-finished");
        },
        {s.enclave_ch.get()}}});
  ASSERT_TRUE(f[0].thrown);
  EXPECT_EQ(f[0].category, ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(f[0].what, "X25519")) << f[0].what;
}

TEST(TeeChannel, OversizeEvidenceMessageIsRefusedBeforeAllocation) {
  Deployment s;
  auto f = run_parties(
      {{[&] { attest_client(*s.client_ch, s.verifier(), s.policy); }, {s.client_ch.get()}},
       {[&] {
          s.enclave_ch->recv("tee-hello");
          s.enclave_ch->send("tee-evidence", Bytes(1 + 32 + 4 + kMaxEvidenceBytes + 1));
          s.enclave_ch->recv("tee-finished");
        },
        {s.enclave_ch.get()}}});
  ASSERT_TRUE(f[0].thrown);
  EXPECT_EQ(f[0].category, ErrorCategory::kBadMessage) << f[0].what;
  // The channel's own limit is restored afterwards.
  EXPECT_EQ(s.client_ch->max_message_bytes(), net::kDefaultMaxMessageBytes);
}

// Sealed records between two SealedChannels with a tampering host between
// them: sender -> (a, b) raw -> host -> (x, y) -> receiver.
struct RecordPath {
  std::unique_ptr<net::Channel> a, b, x, y;
  std::array<std::uint8_t, 32> k1{}, k2{};
  std::unique_ptr<SealedChannel> sender, receiver;
  RecordPath() {
    std::tie(a, b) = net::memory_pair();
    std::tie(x, y) = net::memory_pair();
    for (auto* ch : {a.get(), b.get(), x.get(), y.get()}) ch->set_timeout(2s);
    Bytes r1 = measure("k1"), r2 = measure("k2");
    std::copy_n(r1.begin(), 32, k1.begin());
    std::copy_n(r2.begin(), 32, k2.begin());
    sender = std::make_unique<SealedChannel>(*a, true, k1, k2);
    receiver = std::make_unique<SealedChannel>(*y, false, k2, k1);
  }
  Bytes capture(std::string_view text) {
    sender->send("req", bytes_of(text));
    return b->recv("req");
  }
  void deliver(const Bytes& rec, std::string_view tag = "req") { x->send(tag, rec); }
  ErrorCategory refused(std::string_view tag = "req") {
    try {
      receiver->recv(tag);
    } catch (const Error& e) {
      return e.category();
    }
    ADD_FAILURE() << "record accepted";
    return ErrorCategory::kInternal;
  }
};

TEST(TeeChannel, FlippedReplayedReorderedTruncatedOrRetaggedRecordsAreRefused) {
  {
    RecordPath p;
    Bytes r0 = p.capture("zero"), r1 = p.capture("one");
    p.deliver(r0);
    Bytes got = p.receiver->recv("req");
    EXPECT_EQ(std::string(got.begin(), got.end()), "zero");
    p.deliver(r0);  // replay
    EXPECT_EQ(p.refused(), ErrorCategory::kBadMessage);
    p.deliver(r1);  // the genuine next record: the channel stays broken
    EXPECT_EQ(p.refused(), ErrorCategory::kBadMessage);
  }
  {
    RecordPath p;
    Bytes r0 = p.capture("zero");
    Bytes r1 = p.capture("one");
    p.deliver(r1);  // reordered
    EXPECT_EQ(p.refused(), ErrorCategory::kBadMessage);
  }
  {
    // Every single-bit flip position of one record (first bit of each byte).
    Bytes r0;
    std::size_t n = 0;
    {
      RecordPath p;
      r0 = p.capture("a record of some length");
      n = r0.size();
    }
    for (std::size_t i = 0; i < n; ++i) {
      RecordPath p;
      Bytes rec = p.capture("a record of some length");
      rec[i] ^= 0x01;
      p.deliver(rec);
      EXPECT_EQ(p.refused(), ErrorCategory::kBadMessage) << "byte " << i;
    }
  }
  {
    RecordPath p;
    Bytes r0 = p.capture("zero");
    r0.pop_back();  // truncated
    p.deliver(r0);
    EXPECT_EQ(p.refused(), ErrorCategory::kBadMessage);
  }
  {
    RecordPath p;
    p.deliver(Bytes(5));  // shorter than a GCM tag
    EXPECT_EQ(p.refused(), ErrorCategory::kBadMessage);
  }
  {
    RecordPath p;
    Bytes r0 = p.capture("zero");
    p.deliver(r0, "other");  // the tag is authenticated
    EXPECT_EQ(p.refused("other"), ErrorCategory::kBadMessage);
  }
  {
    // A record reflected back to a party with the same key in both
    // directions is refused (the direction byte is authenticated).
    auto [a, b] = net::memory_pair();
    std::array<std::uint8_t, 32> k{};
    k[0] = 7;
    SealedChannel one(*a, true, k, k), two(*b, true, k, k);
    one.send("req", bytes_of("hello"));
    EXPECT_THROW(two.recv("req"), Error);
  }
  {
    // After a refusal, send is refused too.
    RecordPath p;
    p.deliver(Bytes(40));
    EXPECT_EQ(p.refused(), ErrorCategory::kBadMessage);
    EXPECT_THROW(p.receiver->send("resp", bytes_of("x")), Error);
  }
}

// A plaintext of n bytes whose every segment differs.
Bytes pattern(std::size_t n) {
  Bytes p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 131 + (i >> 14));
  return p;
}

TEST(TeeChannel, SegmentedRecordsRoundTripOnOneThreadAndOnAPool) {
  ThreadPool pool(3);
  const std::size_t sizes[] = {
      0, 1, kSegmentBytes - 1, kSegmentBytes, kSegmentBytes + 1, 3 * kSegmentBytes, 200'783};
  for (const bool sender_pool : {false, true}) {
    for (const bool receiver_pool : {false, true}) {
      RecordPath p;
      if (sender_pool) p.sender->set_pool(&pool);
      if (receiver_pool) p.receiver->set_pool(&pool);
      Bytes into = pattern(7);  // recv_into reuses and resizes it
      for (const std::size_t n : sizes) {
        const Bytes plain = pattern(n);
        p.sender->send("req", plain);
        const Bytes wire = p.b->recv("req");
        EXPECT_EQ(wire.size(), sealed_record_bytes(n)) << n;
        p.deliver(wire);
        p.receiver->recv_into("req", into);
        EXPECT_EQ(into, plain) << n << " bytes, pools " << sender_pool << receiver_pool;
      }
    }
  }
}

TEST(TeeChannel, SendPartsSealsTheConcatenationExactlyAsSend) {
  ThreadPool pool(2);
  const Bytes plain = pattern(3 * kSegmentBytes + 100);
  // Cut points across and on segment boundaries, with empty parts.
  const std::vector<std::vector<std::size_t>> cuts = {
      {},
      {0},
      {5},
      {kSegmentBytes},
      {kSegmentBytes - 1, kSegmentBytes, kSegmentBytes + 7},
      {1, 2, 3, 40000, 40000, plain.size()}};
  RecordPath whole, parted;
  parted.sender->set_pool(&pool);
  for (const auto& c : cuts) {
    std::vector<std::span<const std::uint8_t>> parts;
    std::size_t at = 0;
    for (const std::size_t cut : c) {
      parts.emplace_back(plain.data() + at, cut - at);
      at = cut;
    }
    parts.emplace_back(plain.data() + at, plain.size() - at);
    whole.sender->send("req", plain);
    parted.sender->send_parts("req", parts);
    // Same keys, same counter: the same ciphertext, byte for byte.
    EXPECT_EQ(whole.b->recv("req"), parted.b->recv("req"));
  }
}

TEST(TeeChannel, SegmentsCannotBeReorderedDroppedAddedOrMoved) {
  constexpr std::size_t kSeg = kSegmentBytes + kSegmentTagBytes;
  const Bytes plain = pattern(2 * kSegmentBytes + 500);  // segments 16384, 16384, 500
  // Each tampering is tried against a receiver opening on one thread and on
  // a pool (segments then fail on either thread).
  ThreadPool pool(2);
  auto refused_with = [&](const std::function<Bytes(const Bytes&, const Bytes&)>& tamper) {
    std::string why;
    for (const bool on_pool : {false, true}) {
      RecordPath p;
      if (on_pool) p.receiver->set_pool(&pool);
      p.sender->send("req", plain);
      const Bytes r0 = p.b->recv("req");
      p.sender->send("req", plain);
      const Bytes r1 = p.b->recv("req");
      p.deliver(tamper(r0, r1));
      Bytes into = bytes_of("caller's old contents");
      try {
        p.receiver->recv_into("req", into);
        ADD_FAILURE() << "tampered record accepted, pool " << on_pool;
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kBadMessage);
        EXPECT_TRUE(into.empty());  // wiped and emptied on failure
        why = e.what();
      }
      // The channel is broken afterwards.
      EXPECT_THROW(p.receiver->recv_into("req", into), Error);
    }
    return why;
  };
  const auto seg = [&](const Bytes& r, std::size_t i) {
    const std::size_t end = std::min(r.size(), (i + 1) * kSeg);
    return Bytes(r.begin() + static_cast<std::ptrdiff_t>(i * kSeg),
                 r.begin() + static_cast<std::ptrdiff_t>(end));
  };
  const auto cat = [](std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& b : parts) out.insert(out.end(), b.begin(), b.end());
    return out;
  };
  // Swapped full segments: same length, wrong indices.
  refused_with([&](const Bytes& r0, const Bytes&) {
    return cat({seg(r0, 1), seg(r0, 0), seg(r0, 2)});
  });
  // The last segment dropped: a valid length for a shorter record.
  refused_with([&](const Bytes& r0, const Bytes&) { return cat({seg(r0, 0), seg(r0, 1)}); });
  // A middle segment dropped.
  refused_with([&](const Bytes& r0, const Bytes&) { return cat({seg(r0, 0), seg(r0, 2)}); });
  // A segment repeated.
  refused_with([&](const Bytes& r0, const Bytes&) {
    return cat({seg(r0, 0), seg(r0, 0), seg(r0, 1), seg(r0, 2)});
  });
  // Segment 1 of the next record (same index, another counter) in its place.
  refused_with([&](const Bytes& r0, const Bytes& r1) {
    return cat({seg(r0, 0), seg(r1, 1), seg(r0, 2)});
  });
  // A byte flipped in each segment in turn.
  for (std::size_t i = 0; i < 3; ++i) {
    refused_with([&](const Bytes& r0, const Bytes&) {
      Bytes r = r0;
      r[i * kSeg + 3] ^= 0x80;
      return r;
    });
  }
  // Lengths no record has: a full segment plus a part shorter than a tag.
  const std::string why = refused_with(
      [&](const Bytes& r0, const Bytes&) { return Bytes(r0.begin(), r0.begin() + kSeg + 9); });
  EXPECT_TRUE(contains(why, "no sequence of sealed segments")) << why;
}

TEST(TeeChannel, FlippedRecordInAnAttestedSessionIsRefused) {
  Mitm m;
  Failure served;
  auto f = run_parties(
      {{[&] {
          AttestedSession sess = attest_client(*m.s.client_ch, m.s.verifier(), m.s.policy);
          sess.channel->send("req", bytes_of("prompt"));
          sess.channel->recv("resp");
        },
        {m.s.client_ch.get()}},
       {[&] {
          for (const char* t : {"tee-hello", "tee-finished"}) {
            m.host_e->send(t, m.host_c->recv(t));
            m.host_c->send(
                t == std::string("tee-hello") ? "tee-evidence" : "tee-finished",
                m.host_e->recv(t == std::string("tee-hello") ? "tee-evidence" : "tee-finished"));
          }
          Bytes rec = m.host_c->recv("req");
          rec.back() ^= 0x80;
          m.host_e->send("req", rec);
          m.host_c->send("resp", m.host_e->recv("resp"));
        },
        {m.host_c.get(), m.host_e.get()}},
       {[&] {
          auto sc = attest_enclave(*m.enclave, m.s.producer());
          sc->recv("req");
          sc->send("resp", bytes_of("answer"));
        },
        {m.enclave.get()}}});
  ASSERT_TRUE(f[2].thrown);
  EXPECT_EQ(f[2].category, ErrorCategory::kBadMessage);
  EXPECT_TRUE(contains(f[2].what, "does not authenticate")) << f[2].what;
  EXPECT_TRUE(f[0].thrown);
}

TEST(TeeChannel, HandshakeMessageParsersCheckEveryLength) {
  ClientHello h;
  h.nonce[0] = 1;
  h.key[31] = 2;
  Bytes hb = serialize_client_hello(h);
  ASSERT_EQ(hb.size(), 65u);
  ClientHello h2 = parse_client_hello(hb);
  EXPECT_EQ(h2.nonce, h.nonce);
  EXPECT_EQ(h2.key, h.key);
  EXPECT_THROW(parse_client_hello(std::span(hb).first(64)), Error);
  hb.push_back(0);
  EXPECT_THROW(parse_client_hello(hb), Error);
  hb.pop_back();
  hb[0] = 1;  // the version before segmented records
  EXPECT_THROW(parse_client_hello(hb), Error);
  hb[0] = kChannelVersion + 1;
  EXPECT_THROW(parse_client_hello(hb), Error);

  EnclaveEvidence e;
  e.key[0] = 9;
  e.evidence = bytes_of("evidence");
  Bytes eb = serialize_enclave_evidence(e);
  EnclaveEvidence e2 = parse_enclave_evidence(eb);
  EXPECT_EQ(e2.key, e.key);
  EXPECT_EQ(e2.evidence, e.evidence);
  for (std::size_t n = 0; n < eb.size(); ++n)
    EXPECT_THROW(parse_enclave_evidence(std::span(eb).first(n)), Error);
  eb.push_back(0);
  EXPECT_THROW(parse_enclave_evidence(eb), Error);
  Bytes zero_len(37, 0);
  zero_len[0] = 1;
  EXPECT_THROW(parse_enclave_evidence(zero_len), Error);
  Bytes huge(37, 0);
  huge[0] = 1;
  huge[33] = huge[34] = huge[35] = huge[36] = 0xFF;  // 4 GiB announced, nothing allocated
  EXPECT_THROW(parse_enclave_evidence(huge), Error);
  e.evidence.clear();
  EXPECT_THROW(serialize_enclave_evidence(e), Error);
}

}  // namespace
}  // namespace blindfold::tee
