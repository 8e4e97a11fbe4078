// How Ferry names its JetStream objects: streams, subjects and consumers of each queue, topic and
// subscription, and the dead-letter stream. Bus names allow '.' and '_'; NATS stream and
// consumer names allow neither '.' nor wildcards, and a '.' in a subject splits a token, so
// every bus name is written escaped (EscapeName: one-to-one, so it reads back with UnescapeName).
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::bus::nats {

// Letters, digits and '-' as they are; any other byte as '_' and two upper-case hex digits.
std::string EscapeName(std::string_view name);
// The inverse; nullopt for text EscapeName cannot have written.
std::optional<std::string> UnescapeName(std::string_view escaped);

std::string QueueStream(std::string_view queue);             // FERRY_Q_<escaped>
std::string QueueSubject(std::string_view queue);            // ferry.q.<escaped>
inline constexpr std::string_view kQueueConsumer = "ferry";  // a queue's one durable consumer

std::string TopicStream(std::string_view topic);        // FERRY_T_<escaped>
std::string TopicSubjects(std::string_view topic);      // ferry.t.<escaped>.> (the stream's)
std::string TopicEventSubject(std::string_view topic);  // ferry.t.<escaped>.e: every publish
// Where a subscription's replayed dead letters go: in the topic's stream, seen by that
// subscription only (the others skip them).
std::string TopicReplaySubject(std::string_view topic, std::string_view subscription);
std::string SubscriptionConsumer(std::string_view subscription);  // the escaped name

inline constexpr std::string_view kDeadLetterStream = "FERRY_DLQ";
inline constexpr std::string_view kDeadLetterSubjects = "ferry.dlq.>";
// ferry.dlq.q.<queue> or ferry.dlq.s.<topic>.<subscription>, all escaped.
std::string DeadLetterSubject(std::string_view topic, std::string_view name);
// The Nats-Msg-Id of a dead letter's copy: the same for every copy of one stored message, so a
// copy repeated after a crash between the copy and the Term is not stored twice.
std::string DeadLetterMsgId(std::string_view stream, std::uint64_t sequence);

}  // namespace ferry::bus::nats
