// The endpoints of the example service, served on one connection until it closes.
// ServeConnection blocks and owns `fd`; call it on a thread of its own. Thread-safe: connections
// share nothing but the immutable instance name.
#pragma once

#include <memory>
#include <string>

namespace ferry::examples {

void ServeConnection(int fd, std::shared_ptr<const std::string> instance);

}  // namespace ferry::examples
