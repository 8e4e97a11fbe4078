// libFuzzer target: arbitrary bytes as an idempotency record, as the store reads it back from
// LMDB or Redis (src/idempotency/record.hpp). A damaged file, another program writing to the
// same Redis keys or an older version's bytes must give "not a record", never a crash. Checks
// more than "no crash": what decodes re-encodes to bytes that decode to the same record, and
// the repeat rule (Decide) gives an answer for it at any time.
// Seed corpus: tests/fuzz/corpus/idempotency_record/ (written by RecordTest.
// WritesSeedCorpusWhenAsked).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "idempotency/record.hpp"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::optional<ferry::idempotency::Record> record = ferry::idempotency::Decode(bytes);
  if (!record) return 0;
  const std::string again = ferry::idempotency::Encode(*record);
  const std::optional<ferry::idempotency::Record> round = ferry::idempotency::Decode(again);
  Check(round.has_value() && *round == *record);
  for (const std::int64_t now : {std::int64_t{0}, record->lease_until_ms, record->expires_at_ms}) {
    (void)ferry::idempotency::Decide(record, record->fingerprint, now);
    (void)ferry::idempotency::Decide(record, "another", now);
  }
  return 0;
}
