// Immediate I/O: a plain non-blocking system call on a TCP stream's socket, before (or instead
// of) an Asio operation. Asio posts the completion of an operation that finished at once
// (Asio's rule: never complete inline from the initiating call), which costs an event-loop
// turn, and its scheduler then polls epoll once more (epoll_wait with timeout 0); a response
// that the socket takes whole, or a request read right after a readiness wait, costs one
// system call here and nothing else. Other streams (TLS, in-memory) answer would_block, so
// the caller's operation does the work, as before.
// Thread safety: as the stream's (one coroutine on one event loop).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "runtime/stream.hpp"

namespace ferry::runtime {

// Writes what the socket takes now: the bytes written, with ec = would_block when some are
// left (the socket is full, or the stream writes only through operations), or another error.
// The caller writes the rest (Skip) with asio::async_write.
std::size_t WriteNow(Stream& stream, std::span<const asio::const_buffer> buffers, error_code& ec);
// Reads what has arrived: the bytes read, with ec = eof at the end, would_block when nothing is
// there (or the stream reads only through operations). For a read right after a readiness
// wait, where bytes are known to be there: elsewhere the operation's own first try is as good.
std::size_t ReadNow(Stream& stream, asio::mutable_buffer buffer, error_code& ec);
// The part of `buffers` after their first `skip` bytes (what WriteNow left to write).
std::vector<asio::const_buffer> Skip(std::span<const asio::const_buffer> buffers, std::size_t skip);

}  // namespace ferry::runtime
