#include "runtime/worker.hpp"

#include <pthread.h>

#include <string>

namespace ferry::runtime {

// Concurrency hint 1: the loop is only ever run by its own thread, so Asio skips its locks.
Worker::Worker(int id) : id_(id), io_(1) { work_.emplace(io_.get_executor()); }

Worker::~Worker() {
  Stop();
  Join();
}

void Worker::Start() {
  thread_ = std::thread([this] {
    const std::string name = "ferry-w" + std::to_string(id_);
    pthread_setname_np(pthread_self(), name.c_str());
    io_.run();
  });
}

void Worker::ReleaseWork() { work_.reset(); }

void Worker::Stop() {
  work_.reset();
  io_.stop();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace ferry::runtime
