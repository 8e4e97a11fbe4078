// bus_load: a small load tool for the message-bus benchmark (bench/bus/run.sh). One client per
// broker, POSIX sockets and threads only, 127.0.0.1 only:
//
//   ferry  HTTP/1.1 keep-alive: POST /v1/queues/{q}/messages (201 = acknowledged); consumer
//          GET /v1/queues/{q}/messages?max=N&wait=1s (long-poll) and POST /v1/queues/{q}/ack
//   nats   NATS text protocol + JetStream: PUB <subject> <inbox> and wait for the ack on the
//          publisher's own inbox; consumer: an ephemeral push consumer with explicit acks
//   redis  RESP: XADD <stream> * f <payload> and wait for the id; consumer: XREAD BLOCK
//
// Modes:
//   pub    --publishers N sync publishers (each waits for its ack before the next send) for
//          --duration seconds after --warmup seconds; prints acknowledged messages per second
//          and the publish (ack) latency.
//   lat    --rate R messages per second in total from --publishers N paced sync publishers and
//          one consumer; every payload starts with the publisher's send time (steady clock, ns;
//          publisher and consumer are threads of this process, so one clock); prints the
//          publish-to-delivery latency p50/p99 of messages sent after the warmup.
//   setup  nats only: creates the streams named by --stream/--subject (file storage).
//
// Output: one line "result key=value ..." on stdout (run.sh parses it); diagnostics on stderr.
// Build: g++ -std=c++20 -O2 -pthread bus_load.cpp -lfmt -o bus_load
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string system;  // ferry | nats | redis
  std::string mode;    // pub | lat | setup
  int port = 0;
  std::string name = "bench";  // ferry queue, redis stream key, nats stream
  std::string subject;         // nats: the subject published to (default: name)
  int publishers = 1;
  double duration = 10;
  double warmup = 1;
  double rate = 1000;
  int size = 1024;
  int max_batch = 100;  // consumer: messages per pull / XREAD COUNT / max_ack_pending hint
  double drain = 3;     // lat: how long the consumer waits for stragglers after the last send
};

[[noreturn]] void Die(const std::string& message) {
  fmt::print(stderr, "bus_load: {}\n", message);
  std::exit(2);
}

// ---------------------------------------------------------------------------------------------
// A blocking TCP connection to 127.0.0.1 with a read buffer.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) Die(fmt::format("socket: {}", std::strerror(errno)));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Die(fmt::format("connect 127.0.0.1:{}: {}", port, std::strerror(errno)));
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { ::close(fd_); }

  void Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(fmt::format("send: {}", std::strerror(errno)));
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Reads more bytes into the buffer; false on timeout (timeout_ms >= 0), throws on EOF/error.
  bool Fill(int timeout_ms = -1) {
    if (timeout_ms >= 0) {
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, timeout_ms);
      if (r == 0) return false;
      if (r < 0 && errno != EINTR) throw std::runtime_error("poll failed");
      if (r < 0) return false;
    }
    Compact();
    if (buf_.size() - end_ < 65536) buf_.resize(end_ + 65536);
    for (;;) {
      const ssize_t n = ::recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
      if (n > 0) {
        end_ += static_cast<std::size_t>(n);
        return true;
      }
      if (n == 0) throw std::runtime_error("connection closed by the server");
      if (errno != EINTR) throw std::runtime_error(fmt::format("recv: {}", std::strerror(errno)));
    }
  }

  std::string_view Data() const { return {buf_.data() + begin_, end_ - begin_}; }
  void Consume(std::size_t n) { begin_ += n; }

  // A line ending in \r\n (without it); reads as needed.
  std::string ReadLine() {
    for (;;) {
      const std::string_view d = Data();
      const std::size_t pos = d.find("\r\n");
      if (pos != std::string_view::npos) {
        std::string line(d.substr(0, pos));
        Consume(pos + 2);
        return line;
      }
      Fill();
    }
  }
  // Exactly n bytes.
  std::string ReadExact(std::size_t n) {
    while (Data().size() < n) Fill();
    std::string out(Data().substr(0, n));
    Consume(n);
    return out;
  }
  // Waits until a line is complete or timeout; returns false on timeout.
  bool HasLine(int timeout_ms) {
    while (Data().find("\r\n") == std::string_view::npos) {
      if (!Fill(timeout_ms)) return false;
    }
    return true;
  }

 private:
  void Compact() {
    if (begin_ == 0) return;
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  int fd_ = -1;
  std::vector<char> buf_ = std::vector<char>(65536);
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// The payload: "ts=<ns>;" then 'x' up to size bytes (printable, so every broker keeps it as text).
std::string Payload(int size, std::int64_t ts) {
  std::string p = fmt::format("ts={};", ts);
  if (static_cast<int>(p.size()) < size) p.append(static_cast<std::size_t>(size) - p.size(), 'x');
  return p;
}

std::optional<std::int64_t> ParseTs(std::string_view s) {
  const std::size_t at = s.find("ts=");
  if (at == std::string_view::npos) return std::nullopt;
  std::int64_t v = 0;
  std::size_t i = at + 3;
  if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

// ---------------------------------------------------------------------------------------------
// One publisher connection: Publish() sends one message and returns once it is acknowledged
// (true) or refused (false).
class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual bool Publish(const std::string& payload) = 0;
};

// A consumer: Poll() waits up to ~1 s for messages, reports each payload's send time and its
// receive time to `seen`, and acknowledges them.
class Consumer {
 public:
  virtual ~Consumer() = default;
  virtual void Poll(
      const std::function<void(std::int64_t sent_ns, std::int64_t received_ns)>& seen) = 0;
};

// ---- Ferry: HTTP/1.1 -------------------------------------------------------------------------
struct HttpResponse {
  int status = 0;
  std::string body;
};

HttpResponse HttpExchange(Conn& c, const std::string& request) {
  c.Send(request);
  HttpResponse r;
  const std::string status_line = c.ReadLine();
  // HTTP/1.1 201 Created
  if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) {
    throw std::runtime_error("bad status line: " + status_line);
  }
  r.status = std::atoi(status_line.c_str() + 9);
  std::size_t length = 0;
  for (;;) {
    std::string line = c.ReadLine();
    if (line.empty()) break;
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (lower.rfind("content-length:", 0) == 0) {
      length = std::strtoul(line.c_str() + 15, nullptr, 10);
    } else if (lower.rfind("transfer-encoding:", 0) == 0 &&
               lower.find("chunked") != std::string::npos) {
      throw std::runtime_error("chunked responses are not supported by bus_load");
    }
  }
  if (length > 0) r.body = c.ReadExact(length);
  return r;
}

class FerryPublisher : public Publisher {
 public:
  FerryPublisher(const Options& o) : conn_(o.port) {
    head_ = fmt::format(
        "POST /v1/queues/{}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        "Content-Length: ",
        o.name);
  }
  bool Publish(const std::string& payload) override {
    request_.clear();
    request_.append(head_).append(std::to_string(payload.size())).append("\r\n\r\n");
    request_.append(payload);
    const HttpResponse r = HttpExchange(conn_, request_);
    if (r.status != 201 && ++reported_ <= 3) {
      fmt::print(stderr, "bus_load: ferry publish answered {}: {}\n", r.status, r.body);
    }
    return r.status == 201;
  }

 private:
  Conn conn_;
  std::string head_;
  std::string request_;
  int reported_ = 0;
};

class FerryConsumer : public Consumer {
 public:
  FerryConsumer(const Options& o) : conn_(o.port), queue_(o.name), max_(o.max_batch) {}
  void Poll(const std::function<void(std::int64_t, std::int64_t)>& seen) override {
    const HttpResponse r =
        HttpExchange(conn_, fmt::format("GET /v1/queues/{}/messages?max={}&wait=1s HTTP/1.1\r\n"
                                        "Host: 127.0.0.1\r\n\r\n",
                                        queue_, max_));
    const std::int64_t now = NowNs();
    if (r.status == 204) return;
    if (r.status != 200)
      throw std::runtime_error(fmt::format("ferry receive {}: {}", r.status, r.body));
    // {"messages":[{"id":..,"receipt":"..",...,"data":"ts=..;xxx"}, ...]}: scan rather than
    // parse; receipts and data are plain ASCII here.
    std::string receipts;
    std::string_view b = r.body;
    std::size_t pos = 0;
    for (;;) {
      const std::size_t rp = b.find("\"receipt\":\"", pos);
      if (rp == std::string_view::npos) break;
      const std::size_t start = rp + 11;
      const std::size_t end = b.find('"', start);
      if (!receipts.empty()) receipts += ',';
      receipts.append("\"").append(b.substr(start, end - start)).append("\"");
      const std::size_t dp = b.find("\"data\":\"", end);
      if (dp == std::string_view::npos) break;
      if (auto ts = ParseTs(b.substr(dp + 8, 40))) seen(*ts, now);
      pos = dp + 8;
    }
    if (receipts.empty()) return;
    const std::string body = "{\"receipts\":[" + receipts + "]}";
    const HttpResponse a = HttpExchange(
        conn_, fmt::format("POST /v1/queues/{}/ack HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                           queue_, body.size(), body));
    if (a.status != 200)
      throw std::runtime_error(fmt::format("ferry ack {}: {}", a.status, a.body));
  }

 private:
  Conn conn_;
  std::string queue_;
  int max_;
};

// ---- NATS ------------------------------------------------------------------------------------
std::atomic<int> g_inbox_counter{0};

class NatsConn {
 public:
  explicit NatsConn(int port) : conn_(port) {
    const std::string info = conn_.ReadLine();
    if (info.rfind("INFO ", 0) != 0) throw std::runtime_error("nats: expected INFO, got " + info);
    conn_.Send("CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"bus_load\"}\r\nPING\r\n");
    for (;;) {
      const std::string line = conn_.ReadLine();
      if (line == "PONG") break;
      if (line.rfind("-ERR", 0) == 0) throw std::runtime_error("nats: " + line);
    }
  }
  void Send(std::string_view data) { conn_.Send(data); }

  struct Msg {
    std::string subject;
    std::string reply;
    std::string payload;
  };
  // The next MSG (answers PING on the way); nullopt on timeout (timeout_ms >= 0).
  std::optional<Msg> Next(int timeout_ms = -1) {
    for (;;) {
      if (timeout_ms >= 0 && !conn_.HasLine(timeout_ms)) return std::nullopt;
      const std::string line = conn_.ReadLine();
      if (line.rfind("MSG ", 0) == 0) {
        // MSG <subject> <sid> [reply-to] <#bytes>
        std::vector<std::string> f;
        std::size_t p = 4;
        while (p < line.size()) {
          const std::size_t sp = line.find(' ', p);
          f.emplace_back(line.substr(p, sp == std::string::npos ? std::string::npos : sp - p));
          if (sp == std::string::npos) break;
          p = sp + 1;
        }
        if (f.size() < 3) throw std::runtime_error("nats: bad MSG line " + line);
        Msg m;
        m.subject = f[0];
        if (f.size() == 4) m.reply = f[2];
        const std::size_t n = std::strtoul(f.back().c_str(), nullptr, 10);
        m.payload = conn_.ReadExact(n + 2);
        m.payload.resize(n);
        return m;
      }
      if (line == "PING") {
        conn_.Send("PONG\r\n");
      } else if (line.rfind("-ERR", 0) == 0) {
        throw std::runtime_error("nats: " + line);
      }
      // +OK, PONG, INFO: ignore.
    }
  }
  // A request: publishes to subject with a reply inbox and returns the answer.
  std::string Request(const std::string& subject, const std::string& body) {
    const std::string inbox = fmt::format("_INBOX.busload.req{}", g_inbox_counter++);
    Send(fmt::format("SUB {} 99\r\nPUB {} {} {}\r\n{}\r\n", inbox, subject, inbox, body.size(),
                     body));
    auto m = Next(5000);
    if (!m) throw std::runtime_error("nats: no answer to " + subject);
    Send("UNSUB 99\r\n");
    return m->payload;
  }

 private:
  Conn conn_;
};

class NatsPublisher : public Publisher {
 public:
  NatsPublisher(const Options& o) : nats_(o.port) {
    const std::string inbox = fmt::format("_INBOX.busload.pub{}", g_inbox_counter++);
    nats_.Send(fmt::format("SUB {}.* 1\r\n", inbox));
    head_ = fmt::format("PUB {} {}.", o.subject, inbox);
  }
  bool Publish(const std::string& payload) override {
    ++n_;
    request_.clear();
    request_.append(head_).append(std::to_string(n_)).append(" ");
    request_.append(std::to_string(payload.size())).append("\r\n").append(payload).append("\r\n");
    nats_.Send(request_);
    auto m = nats_.Next();
    // {"stream":"BENCH","seq":12} or {"error":{...}}
    const bool ok = m->payload.find("\"seq\"") != std::string::npos &&
                    m->payload.find("\"error\"") == std::string::npos;
    if (!ok && ++reported_ <= 3) fmt::print(stderr, "bus_load: nats publish: {}\n", m->payload);
    return ok;
  }

 private:
  NatsConn nats_;
  std::string head_;
  std::string request_;
  std::uint64_t n_ = 0;
  int reported_ = 0;
};

class NatsConsumer : public Consumer {
 public:
  NatsConsumer(const Options& o) : nats_(o.port) {
    const std::string deliver = fmt::format("_INBOX.busload.deliver{}", g_inbox_counter++);
    nats_.Send(fmt::format("SUB {} 2\r\n", deliver));
    const std::string config = fmt::format(
        "{{\"stream_name\":\"{}\",\"config\":{{\"deliver_subject\":\"{}\",\"ack_policy\":"
        "\"explicit\",\"deliver_policy\":\"new\",\"max_ack_pending\":{}}}}}",
        o.name, deliver, 20000);
    const std::string answer = nats_.Request("$JS.API.CONSUMER.CREATE." + o.name, config);
    if (answer.find("\"error\"") != std::string::npos) {
      throw std::runtime_error("nats consumer create: " + answer);
    }
  }
  void Poll(const std::function<void(std::int64_t, std::int64_t)>& seen) override {
    auto m = nats_.Next(1000);
    if (!m) return;
    const std::int64_t now = NowNs();
    if (auto ts = ParseTs(std::string_view(m->payload).substr(0, 40))) seen(*ts, now);
    if (!m->reply.empty()) nats_.Send(fmt::format("PUB {} 0\r\n\r\n", m->reply));
  }

 private:
  NatsConn nats_;
};

void NatsSetup(const Options& o) {
  NatsConn nats(o.port);
  const std::string config = fmt::format(
      "{{\"name\":\"{}\",\"subjects\":[\"{}\"],\"storage\":\"file\",\"num_replicas\":1}}", o.name,
      o.subject);
  const std::string answer = nats.Request("$JS.API.STREAM.CREATE." + o.name, config);
  if (answer.find("\"error\"") != std::string::npos) Die("nats stream create: " + answer);
  fmt::print("result system=nats mode=setup stream={} subject={}\n", o.name, o.subject);
}

// ---- Redis -----------------------------------------------------------------------------------
struct Resp {
  char type = 0;  // + - : $ *
  std::string str;
  long long num = 0;
  bool nil = false;
  std::vector<Resp> items;
};

Resp ReadResp(Conn& c) {
  const std::string line = c.ReadLine();
  if (line.empty()) throw std::runtime_error("redis: empty reply line");
  Resp r;
  r.type = line[0];
  switch (r.type) {
    case '+':
    case '-':
      r.str = line.substr(1);
      break;
    case ':':
      r.num = std::atoll(line.c_str() + 1);
      break;
    case '$': {
      const long long n = std::atoll(line.c_str() + 1);
      if (n < 0) {
        r.nil = true;
      } else {
        r.str = c.ReadExact(static_cast<std::size_t>(n) + 2);
        r.str.resize(static_cast<std::size_t>(n));
      }
      break;
    }
    case '*': {
      const long long n = std::atoll(line.c_str() + 1);
      if (n < 0) {
        r.nil = true;
      } else {
        r.items.reserve(static_cast<std::size_t>(n));
        for (long long i = 0; i < n; ++i) r.items.push_back(ReadResp(c));
      }
      break;
    }
    default:
      throw std::runtime_error("redis: unexpected reply " + line);
  }
  return r;
}

std::string RespCommand(const std::vector<std::string_view>& args) {
  std::string out = fmt::format("*{}\r\n", args.size());
  for (auto a : args) out.append(fmt::format("${}\r\n", a.size())).append(a).append("\r\n");
  return out;
}

class RedisPublisher : public Publisher {
 public:
  RedisPublisher(const Options& o) : conn_(o.port), key_(o.name) {}
  bool Publish(const std::string& payload) override {
    conn_.Send(RespCommand({"XADD", key_, "*", "f", payload}));
    const Resp r = ReadResp(conn_);
    const bool ok = r.type == '$' && !r.nil;
    if (!ok && ++reported_ <= 3) fmt::print(stderr, "bus_load: redis XADD: {}{}\n", r.type, r.str);
    return ok;
  }

 private:
  Conn conn_;
  std::string key_;
  int reported_ = 0;
};

class RedisConsumer : public Consumer {
 public:
  RedisConsumer(const Options& o)
      : conn_(o.port), key_(o.name), count_(std::to_string(o.max_batch)) {}
  void Poll(const std::function<void(std::int64_t, std::int64_t)>& seen) override {
    conn_.Send(RespCommand({"XREAD", "COUNT", count_, "BLOCK", "1000", "STREAMS", key_, last_}));
    const Resp r = ReadResp(conn_);
    const std::int64_t now = NowNs();
    if (r.type == '-') throw std::runtime_error("redis XREAD: " + r.str);
    if (r.nil) return;
    // [[key, [[id, [field, value]], ...]]]
    for (const Resp& stream : r.items) {
      if (stream.items.size() < 2) continue;
      for (const Resp& entry : stream.items[1].items) {
        if (entry.items.size() < 2) continue;
        last_ = entry.items[0].str;
        const auto& fields = entry.items[1].items;
        if (fields.size() >= 2) {
          if (auto ts = ParseTs(std::string_view(fields[1].str).substr(0, 40))) seen(*ts, now);
        }
      }
    }
  }

 private:
  Conn conn_;
  std::string key_;
  std::string count_;
  std::string last_ = "$";
};

// ---------------------------------------------------------------------------------------------
std::unique_ptr<Publisher> MakePublisher(const Options& o) {
  if (o.system == "ferry") return std::make_unique<FerryPublisher>(o);
  if (o.system == "nats") return std::make_unique<NatsPublisher>(o);
  return std::make_unique<RedisPublisher>(o);
}
std::unique_ptr<Consumer> MakeConsumer(const Options& o) {
  if (o.system == "ferry") return std::make_unique<FerryConsumer>(o);
  if (o.system == "nats") return std::make_unique<NatsConsumer>(o);
  return std::make_unique<RedisConsumer>(o);
}

double Percentile(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size()));
  if (i >= v.size()) i = v.size() - 1;
  return static_cast<double>(v[i]) / 1e6;  // ms
}

struct PubStats {
  std::uint64_t ok = 0;
  std::uint64_t errors = 0;
  std::vector<std::int64_t> ack_ns;  // measured window only
};

// Sync publishers: each sends, waits for the ack, sends the next. With rate > 0 each is paced to
// rate/publishers per second (if it falls behind it sends at once, and the achieved rate shows it).
void RunPublishers(const Options& o, double rate, std::int64_t measure_from, std::int64_t stop_at,
                   std::vector<PubStats>& stats) {
  std::vector<std::thread> threads;
  std::atomic<bool> failed{false};
  stats.assign(static_cast<std::size_t>(o.publishers), PubStats{});
  for (int i = 0; i < o.publishers; ++i) {
    threads.emplace_back([&, i] {
      PubStats& s = stats[static_cast<std::size_t>(i)];
      try {
        auto pub = MakePublisher(o);
        const double interval_ns = rate > 0 ? 1e9 * o.publishers / rate : 0;
        // Stagger paced publishers across one interval.
        std::int64_t next = NowNs() + static_cast<std::int64_t>(interval_ns * i / o.publishers);
        for (;;) {
          if (rate > 0) {
            const std::int64_t now = NowNs();
            if (next > now) std::this_thread::sleep_for(std::chrono::nanoseconds(next - now));
            next += static_cast<std::int64_t>(interval_ns);
          }
          const std::int64_t t0 = NowNs();
          if (t0 >= stop_at) break;
          const bool ok = pub->Publish(Payload(o.size, t0));
          const std::int64_t t1 = NowNs();
          if (t0 >= measure_from && t1 <= stop_at) {
            if (ok) {
              ++s.ok;
              s.ack_ns.push_back(t1 - t0);
            } else {
              ++s.errors;
            }
          }
        }
      } catch (const std::exception& e) {
        fmt::print(stderr, "bus_load: publisher {}: {}\n", i, e.what());
        failed = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) Die("a publisher failed");
}

void Merge(const std::vector<PubStats>& stats, PubStats& all) {
  for (const auto& s : stats) {
    all.ok += s.ok;
    all.errors += s.errors;
    all.ack_ns.insert(all.ack_ns.end(), s.ack_ns.begin(), s.ack_ns.end());
  }
}

void RunPub(const Options& o) {
  const std::int64_t start = NowNs();
  const std::int64_t measure_from = start + static_cast<std::int64_t>(o.warmup * 1e9);
  const std::int64_t stop_at = measure_from + static_cast<std::int64_t>(o.duration * 1e9);
  std::vector<PubStats> stats;
  RunPublishers(o, 0, measure_from, stop_at, stats);
  PubStats all;
  Merge(stats, all);
  fmt::print(
      "result system={} mode=pub publishers={} size={} duration_s={} acked={} errors={} "
      "msgs_per_s={:.1f} ack_p50_ms={:.3f} ack_p99_ms={:.3f}\n",
      o.system, o.publishers, o.size, o.duration, all.ok, all.errors,
      static_cast<double>(all.ok) / o.duration, Percentile(all.ack_ns, 50),
      Percentile(all.ack_ns, 99));
}

void RunLat(const Options& o) {
  auto consumer = MakeConsumer(o);  // subscribed before the first publish
  std::mutex mu;
  std::vector<std::int64_t> latencies;
  std::uint64_t received = 0;
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  const std::int64_t start = NowNs();
  const std::int64_t measure_from = start + static_cast<std::int64_t>(o.warmup * 1e9);
  const std::int64_t stop_at = measure_from + static_cast<std::int64_t>(o.duration * 1e9);
  std::thread consumer_thread([&] {
    try {
      while (!stop) {
        consumer->Poll([&](std::int64_t sent, std::int64_t received_at) {
          std::lock_guard lock(mu);
          ++received;
          // Only messages sent in the measured window count.
          if (sent >= measure_from && sent < stop_at) latencies.push_back(received_at - sent);
        });
      }
    } catch (const std::exception& e) {
      fmt::print(stderr, "bus_load: consumer: {}\n", e.what());
      failed = true;
    }
  });
  std::vector<PubStats> stats;
  RunPublishers(o, o.rate, measure_from, stop_at, stats);
  PubStats all;
  Merge(stats, all);
  // Wait for the consumer to catch up (bounded).
  const std::int64_t drain_until = NowNs() + static_cast<std::int64_t>(o.drain * 1e9);
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (latencies.size() >= all.ok) break;
    }
    if (NowNs() >= drain_until || failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  consumer_thread.join();  // the consumer's poll returns within ~1 s
  if (failed) Die("the consumer failed");
  std::lock_guard lock(mu);
  const std::size_t measured = latencies.size();
  fmt::print(
      "result system={} mode=lat publishers={} size={} duration_s={} target_rate={} "
      "sent={} errors={} sent_per_s={:.1f} delivered={} missing={} p50_ms={:.3f} p99_ms={:.3f} "
      "max_ms={:.3f} ack_p50_ms={:.3f} ack_p99_ms={:.3f}\n",
      o.system, o.publishers, o.size, o.duration, o.rate, all.ok, all.errors,
      static_cast<double>(all.ok) / o.duration, measured, all.ok > measured ? all.ok - measured : 0,
      Percentile(latencies, 50), Percentile(latencies, 99), Percentile(latencies, 100),
      Percentile(all.ack_ns, 50), Percentile(all.ack_ns, 99));
}

void Usage() {
  fmt::print(stderr,
             "usage: bus_load ferry|nats|redis pub|lat|setup --port N [--name Q] [--subject S]\n"
             "       [--publishers N] [--duration S] [--warmup S] [--rate R] [--size B]\n"
             "       [--max-batch N] [--drain S]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) Usage();
  Options o;
  o.system = argv[1];
  o.mode = argv[2];
  if (o.system != "ferry" && o.system != "nats" && o.system != "redis") Usage();
  if (o.mode != "pub" && o.mode != "lat" && o.mode != "setup") Usage();
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) Usage();
    const std::string v = argv[++i];
    if (a == "--port")
      o.port = std::atoi(v.c_str());
    else if (a == "--name")
      o.name = v;
    else if (a == "--subject")
      o.subject = v;
    else if (a == "--publishers")
      o.publishers = std::atoi(v.c_str());
    else if (a == "--duration")
      o.duration = std::atof(v.c_str());
    else if (a == "--warmup")
      o.warmup = std::atof(v.c_str());
    else if (a == "--rate")
      o.rate = std::atof(v.c_str());
    else if (a == "--size")
      o.size = std::atoi(v.c_str());
    else if (a == "--max-batch")
      o.max_batch = std::atoi(v.c_str());
    else if (a == "--drain")
      o.drain = std::atof(v.c_str());
    else
      Usage();
  }
  if (o.port <= 0 || o.port > 65535) Die("--port is required");
  if (o.publishers < 1 || o.publishers > 1024) Die("--publishers must be 1..1024");
  if (o.duration <= 0 || o.duration > 3600) Die("--duration must be in (0, 3600] seconds");
  if (o.warmup < 0 || o.warmup > 600) Die("--warmup must be in [0, 600] seconds");
  if (o.size < 32) Die("--size must be at least 32 bytes (the timestamp)");
  if (o.mode == "lat" && (o.rate <= 0 || o.rate > 1e6)) Die("--rate must be in (0, 1e6]");
  if (o.subject.empty()) o.subject = o.name;
  try {
    if (o.mode == "setup") {
      if (o.system != "nats") Die("setup is for nats only");
      NatsSetup(o);
    } else if (o.mode == "pub") {
      RunPub(o);
    } else {
      RunLat(o);
    }
  } catch (const std::exception& e) {
    Die(e.what());
  }
  return 0;
}
