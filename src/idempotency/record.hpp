// What the idempotency store keeps per key: an in-flight marker (the first request is running)
// or a finished record (its response, replayed to repeats), and the rule that decides what a
// repeat gets. Values only; the stores (store.hpp) keep them as Encode's bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::idempotency {

// The response a repeat gets: the first one's status, headers (no framing fields) and body.
struct StoredResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool operator==(const StoredResponse&) const = default;
};

struct Record {
  enum class State : std::uint8_t {
    kInFlight = 1,  // the first request is running (or was, when its node died)
    kDone = 2,      // its response is stored
  };
  State state = State::kInFlight;
  std::string fingerprint;          // of method, target and body (Fingerprint)
  std::uint64_t token = 0;          // which exchange wrote the marker: only it completes it
  std::int64_t lease_until_ms = 0;  // in flight: after this (Unix ms) its outcome is unknown
  std::int64_t expires_at_ms = 0;   // the record is gone after this (Unix ms)
  StoredResponse response;          // kDone only
  bool operator==(const Record&) const = default;
};

// What a request carrying a key gets from the store.
enum class Outcome {
  kStarted,         // no record: the marker was written (durably); forward the request
  kReplay,          // the first request's response is stored: replay it
  kInFlight,        // the first request is still running: 409, try again later
  kMismatch,        // the key was used with another request: 422
  kOutcomeUnknown,  // the first request's lease ran out without a response (its node died
                    // mid-request): 409 until the record expires, never run again
};

struct BeginResult {
  Outcome outcome = Outcome::kStarted;
  std::int64_t lease_until_ms = 0;  // kInFlight: when the first request's lease ends
  StoredResponse response;          // kReplay
};

// What a request with `fingerprint` gets at `now_ms` when the key holds `existing` (nullopt:
// nothing, or an expired record): kStarted means the caller writes its marker.
BeginResult Decide(const std::optional<Record>& existing, std::string_view fingerprint,
                   std::int64_t now_ms);

// A stable binary form (versioned); Decode returns nullopt for bytes that are not one.
std::string Encode(const Record& record);
std::optional<Record> Decode(std::string_view bytes);

// SHA-256 of the method, target and body, in hex: what tells a repeat from another request.
std::string Fingerprint(std::string_view method, std::string_view target, std::string_view body);

}  // namespace ferry::idempotency
