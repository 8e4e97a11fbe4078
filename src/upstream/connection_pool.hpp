// ConnectionPool is gone: every upstream connection is a runtime::Stream in a StreamPool
// (stream_pool.hpp), leased by the one upstream client (cluster.hpp). This header is kept only
// because src/bus/api/bus_service_impl.hpp still includes it (for what it brought in: Asio's
// names and PoolSettings); delete it once that include goes.
#pragma once

#include "runtime/asio.hpp"
#include "upstream/pool_settings.hpp"
