// The one header through which Ferry includes Boost.Asio, with the names it uses. Asio is
// compiled once (asio_impl.cpp, BOOST_ASIO_SEPARATE_COMPILATION); include this only in .cpp
// files and in headers of the areas that do I/O (runtime, upstream pools, proxy, admin) — never
// in core, config, http, routing or observability headers.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace ferry {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

template <typename T = void>
using Task = asio::awaitable<T>;

// Completion token for `co_await op(..., kNoThrow)`: returns std::tuple<error_code, ...> instead
// of throwing, so expected network failures stay on the error-value path.
inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

}  // namespace ferry
