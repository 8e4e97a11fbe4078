// libFuzzer target: arbitrary bytes as the payloads the bus decodes from its logs on start —
// a stored message, a state record, a subscription's options, and a run of state records
// through the checkpoint assembler. A CRC protects them on disk, but a damaged disk, a bug in
// an older version or a hand-edited file must still give a clean error, never a crash. Checks
// more than "no crash": whatever decodes re-encodes to something that decodes to the same
// encoding (nothing is lost or invented in a round trip), and a completed checkpoint, encoded
// again and fed back, completes again with the same encoding.
//
// The first byte picks the decoder; the rest is its input. For the checkpoint run, the input
// is a sequence of records, each prefixed with its length (2 bytes, little-endian).
// Seed corpus: tests/fuzz/corpus/bus_record/ (written by StateCheckpointTest.
// WritesRecordSeedCorpusWhenAsked).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bus/engine/message_codec.hpp"
#include "bus/engine/state_checkpoint.hpp"
#include "bus/engine/state_record.hpp"

namespace {

using namespace ferry::bus;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void FuzzMessage(std::string_view bytes) {
  auto message = DecodeMessage(bytes);
  if (!message) return;
  const std::string once = EncodeMessage(*message);
  auto again = DecodeMessage(once);
  Check(again.has_value());
  Check(EncodeMessage(*again) == once);
}

void FuzzStateRecord(std::string_view bytes) {
  auto record = DecodeStateRecord(bytes);
  if (!record) return;
  const std::string once = EncodeStateRecord(*record);
  auto again = DecodeStateRecord(once);
  Check(again.has_value());
  Check(EncodeStateRecord(*again) == once);
}

void FuzzOptions(std::string_view bytes) {
  auto options = DecodeSubscriptionOptions(bytes);
  if (!options) return;
  const std::string once = EncodeSubscriptionOptions(*options);
  auto again = DecodeSubscriptionOptions(once);
  Check(again.has_value());
  Check(EncodeSubscriptionOptions(*again) == once);
}

std::vector<std::string> Encoded(const std::vector<StateRecord>& records) {
  std::vector<std::string> out;
  for (const StateRecord& r : records) out.push_back(EncodeStateRecord(r));
  return out;
}

void FuzzCheckpointRun(std::string_view bytes) {
  CheckpointAssembler assembler;
  while (bytes.size() >= 2) {
    const std::size_t length =
        static_cast<std::uint8_t>(bytes[0]) | (static_cast<std::size_t>(bytes[1]) & 0xff) << 8;
    bytes.remove_prefix(2);
    const std::string_view payload = bytes.substr(0, length);
    bytes.remove_prefix(payload.size());
    auto record = DecodeStateRecord(payload);
    if (!record) continue;
    if (assembler.Feed(*record) != CheckpointAssembler::Fed::kComplete) continue;
    const StateCheckpoint checkpoint = assembler.Take();
    const std::vector<std::string> once = Encoded(EncodeCheckpoint(checkpoint, 256));
    // Fed back (as recovery would read it from the log), it completes to the same checkpoint.
    CheckpointAssembler replay;
    bool complete = false;
    StateCheckpoint replayed;
    for (const std::string& encoded : once) {
      auto decoded = DecodeStateRecord(encoded);
      Check(decoded.has_value());
      Check(!complete);  // nothing after the last part
      if (replay.Feed(*decoded) == CheckpointAssembler::Fed::kComplete) {
        complete = true;
        replayed = replay.Take();
      }
    }
    Check(complete);
    Check(Encoded(EncodeCheckpoint(replayed, 256)) == once);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      FuzzMessage(bytes);
      break;
    case 1:
      FuzzStateRecord(bytes);
      break;
    case 2:
      FuzzOptions(bytes);
      break;
    case 3:
      FuzzCheckpointRun(bytes);
      break;
  }
  return 0;
}
