// Asio's separately compiled implementation: the only translation unit that builds it.
#include <boost/asio/impl/src.hpp>
