#include "net/channel.h"

#include <cstring>

#include "core/error.h"

namespace blindfold::net {

void Channel::fail(int category, const std::string& msg) {
  broken_ = true;
  throw Error(static_cast<ErrorCategory>(category), "channel to " + peer_ + ": " + msg);
}

void Channel::check_usable() const {
  if (broken_) {
    throw Error(ErrorCategory::kPeerFailure,
                "channel to " + peer_ + " is unusable after an earlier error");
  }
}

void Channel::send(std::string_view tag, std::string_view payload) {
  send(tag, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(payload.data()),
                                          payload.size()));
}

void Channel::send(std::string_view tag, std::span<const std::uint8_t> payload) {
  check_usable();
  if (tag.empty() || tag.size() > kMaxTagBytes) {
    throw Error(ErrorCategory::kBadInput,
                "message tag must be 1 to 32 bytes, got '" + std::string(tag.substr(0, 40)) + "'");
  }
  if (payload.size() > max_message_) {
    throw Error(ErrorCategory::kBadInput,
                "message '" + std::string(tag) + "' of " + std::to_string(payload.size()) +
                    " bytes exceeds the limit of " + std::to_string(max_message_));
  }
  std::uint8_t header[1 + kMaxTagBytes + 8];
  header[0] = static_cast<std::uint8_t>(tag.size());
  std::memcpy(header + 1, tag.data(), tag.size());
  std::uint64_t len = payload.size();
  for (int i = 0; i < 8; ++i)
    header[1 + tag.size() + i] = static_cast<std::uint8_t>(len >> (8 * i));
  const std::size_t hlen = 1 + tag.size() + 8;
  try {
    write_frame({header, hlen}, payload);
  } catch (const Error& e) {
    fail(static_cast<int>(e.category()),
         std::string("sending '") + std::string(tag) + "': " + e.what());
  }
  if (!last_was_send_.exchange(true)) ++stats_.rounds;
  if (party_rounds_ && !party_rounds_->last_was_send.exchange(true)) ++party_rounds_->rounds;
  const auto n = static_cast<std::int64_t>(hlen + payload.size());
  stats_.sent.bytes += n;
  stats_.sent.messages += 1;
  Traffic& t = stats_.sent_by_tag[std::string(tag)];
  t.bytes += n;
  t.messages += 1;
}

Bytes Channel::recv(std::string_view tag) {
  Bytes payload;
  recv_into(tag, payload);
  return payload;
}

void Channel::recv_into(std::string_view tag, Bytes& payload) {
  check_usable();
  // Anything buffered must reach the peer before we wait for its answer.
  flush();
  const Clock::time_point deadline = Clock::now() + timeout_;
  const std::string want(tag);
  try {
    std::uint8_t tag_len = 0;
    read_bytes({&tag_len, 1}, deadline);
    if (tag_len == 0 || tag_len > kMaxTagBytes) {
      fail(static_cast<int>(ErrorCategory::kBadMessage),
           "expected message '" + want + "', got a frame with an invalid tag length " +
               std::to_string(tag_len));
    }
    std::string got(tag_len, '\0');
    read_bytes({reinterpret_cast<std::uint8_t*>(got.data()), got.size()}, deadline);
    if (got != want) {
      fail(static_cast<int>(ErrorCategory::kBadMessage),
           "expected message '" + want + "', got '" + got + "' (protocol out of step)");
    }
    std::uint8_t lenb[8];
    read_bytes({lenb, 8}, deadline);
    std::uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len |= static_cast<std::uint64_t>(lenb[i]) << (8 * i);
    if (len > max_message_) {
      fail(static_cast<int>(ErrorCategory::kBadMessage),
           "message '" + want + "' announces " + std::to_string(len) +
               " bytes, more than the limit of " + std::to_string(max_message_));
    }
    payload.resize(static_cast<std::size_t>(len));
    if (len) read_bytes(payload, deadline);
    last_was_send_ = false;
    if (party_rounds_) party_rounds_->last_was_send = false;
    const auto n = static_cast<std::int64_t>(1 + tag_len + 8 + len);
    stats_.received.bytes += n;
    stats_.received.messages += 1;
    Traffic& t = stats_.received_by_tag[want];
    t.bytes += n;
    t.messages += 1;
    if (on_receive_) on_receive_(want, payload);
  } catch (const Error& e) {
    if (broken_) throw;
    fail(static_cast<int>(e.category()), "receiving '" + want + "': " + e.what());
  }
}

void Channel::flush() {
  check_usable();
  try {
    flush_bytes();
  } catch (const Error& e) {
    fail(static_cast<int>(e.category()), std::string("flushing: ") + e.what());
  }
}

}  // namespace blindfold::net
