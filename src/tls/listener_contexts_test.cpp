#include "tls/listener_contexts.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tls/test_pki.hpp"

namespace ferry::tls {
namespace {

using testing::Issue;
using testing::Issued;

struct Files {
  Files() {
    char dir[] = "/tmp/ferry_lc_XXXXXX";
    path = ::mkdtemp(dir);
  }
  ~Files() { std::filesystem::remove_all(path); }
  void Write(const Issued& issued) const {
    // Replaced by rename, as a deploy tool does: a new inode each time.
    std::ofstream(path + "/site.pem.tmp") << issued.CertPem();
    std::ofstream(path + "/site.key.tmp") << issued.KeyPem();
    ::chmod((path + "/site.key.tmp").c_str(), 0600);
    std::filesystem::rename(path + "/site.pem.tmp", path + "/site.pem");
    std::filesystem::rename(path + "/site.key.tmp", path + "/site.key");
  }
  config::Config Config() const {
    config::Config c;
    config::Listener l;
    l.name = "web";
    config::ListenerTls tls;
    tls.certificates = {{path + "/site.pem", path + "/site.key"}};
    l.tls = tls;
    c.listeners = {l, config::Listener{.name = "plain"}};
    return c;
  }
  std::string path;
};

TEST(ListenerContexts, KeepsTheContextUntilAFileChanges) {
  Files files;
  Issued ca = Issue("ca", "", nullptr);
  files.Write(Issue("a", "DNS:a.test", &ca));
  ListenerContexts contexts;
  auto first = contexts.Sync(files.Config());
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_TRUE(first->empty());
  ASSERT_EQ(contexts.contexts().size(), 1u);  // only the listener with tls
  const auto original = contexts.contexts().at("web");
  EXPECT_FALSE(contexts.FilesChanged());

  ASSERT_TRUE(contexts.Sync(files.Config()));
  EXPECT_EQ(contexts.contexts().at("web"), original);  // nothing changed: the same context

  files.Write(Issue("a", "DNS:a.test", &ca));
  EXPECT_TRUE(contexts.FilesChanged());
  ASSERT_TRUE(contexts.Sync(files.Config()));
  EXPECT_NE(contexts.contexts().at("web"), original);
  EXPECT_FALSE(contexts.FilesChanged());
}

TEST(ListenerContexts, ABrokenNewFileKeepsTheOldContext) {
  Files files;
  Issued ca = Issue("ca", "", nullptr);
  files.Write(Issue("a", "DNS:a.test", &ca));
  ListenerContexts contexts;
  ASSERT_TRUE(contexts.Sync(files.Config()));
  const auto original = contexts.contexts().at("web");
  std::ofstream(files.path + "/site.pem", std::ios::trunc) << "half a certificate\n";
  ASSERT_TRUE(contexts.FilesChanged());
  auto kept = contexts.Sync(files.Config());
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_NE((*kept)[0].find("listener web"), std::string::npos) << (*kept)[0];
  EXPECT_NE((*kept)[0].find("keeps its current certificate"), std::string::npos) << (*kept)[0];
  EXPECT_EQ(contexts.contexts().at("web"), original);
  EXPECT_FALSE(contexts.FilesChanged());  // reported once, not on every check
}

TEST(ListenerContexts, ABrokenFileWithoutAnOldContextFails) {
  Files files;
  std::ofstream(files.path + "/site.pem") << "nothing\n";
  std::ofstream(files.path + "/site.key") << "nothing\n";
  ::chmod((files.path + "/site.key").c_str(), 0600);
  ListenerContexts contexts;
  auto r = contexts.Sync(files.Config());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("listener web"), std::string::npos);
}

TEST(ListenerContexts, TheAdminAndBusListenersHaveContextsOfTheirOwn) {
  Files files;
  Issued ca = Issue("ca", "", nullptr);
  files.Write(Issue("a", "DNS:a.test", &ca));
  config::Config c = files.Config();
  c.admin.tls = c.listeners[0].tls;
  c.bus.emplace();
  c.bus->tls = c.listeners[0].tls;
  ListenerContexts contexts;
  ASSERT_TRUE(contexts.Sync(c));
  ASSERT_EQ(contexts.contexts().size(), 3u);
  const auto admin = contexts.Find(ListenerContexts::kAdminContext);
  const auto bus = contexts.Find(ListenerContexts::kBusContext);
  ASSERT_NE(admin, nullptr);
  ASSERT_NE(bus, nullptr);
  EXPECT_NE(admin, bus);
  EXPECT_EQ(contexts.Find("plain"), nullptr);

  // Their files are watched like a listener's; a broken one keeps the old context, named.
  files.Write(Issue("a", "DNS:a.test", &ca));
  EXPECT_TRUE(contexts.FilesChanged());
  ASSERT_TRUE(contexts.Sync(c));
  EXPECT_NE(contexts.Find(ListenerContexts::kAdminContext), admin);
  const auto renewed = contexts.Find(ListenerContexts::kAdminContext);
  std::ofstream(files.path + "/site.pem", std::ios::trunc) << "half a certificate\n";
  auto kept = contexts.Sync(c);
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->size(), 3u);
  EXPECT_EQ((*kept)[1].rfind("admin: ", 0), 0u) << (*kept)[1];
  EXPECT_EQ((*kept)[2].rfind("bus: ", 0), 0u) << (*kept)[2];
  EXPECT_EQ(contexts.Find(ListenerContexts::kAdminContext), renewed);

  // Without tls: none.
  c.admin.tls.reset();
  c.bus->tls.reset();
  files.Write(Issue("a", "DNS:a.test", &ca));
  ASSERT_TRUE(contexts.Sync(c));
  EXPECT_EQ(contexts.Find(ListenerContexts::kAdminContext), nullptr);
  EXPECT_EQ(contexts.Find(ListenerContexts::kBusContext), nullptr);
}

}  // namespace
}  // namespace ferry::tls
