#include "http/trailers.hpp"

#include <gtest/gtest.h>

namespace ferry::http {
namespace {

TEST(Trailers, ForbiddenFieldsAreNotTrailers) {
  for (const char* name :
       {":status", "Content-Length", "transfer-encoding", "Host", "connection", "te", "trailer",
        "upgrade", "keep-alive", "authorization", "content-type"}) {
    EXPECT_FALSE(AllowedInTrailer(name)) << name;
  }
  for (const char* name : {"grpc-status", "grpc-message", "x-checksum", "server-timing"}) {
    EXPECT_TRUE(AllowedInTrailer(name)) << name;
  }
}

TEST(Trailers, LastChunkCarriesTheAllowedOnes) {
  std::string out;
  AppendLastChunk(out, nullptr);
  EXPECT_EQ(out, "0\r\n\r\n");
  Headers t;
  t.Add("grpc-status", "0");
  t.Add("content-length", "5");
  t.Add("grpc-message", "ok");
  out.clear();
  AppendLastChunk(out, &t);
  EXPECT_EQ(out, "0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n");
}

}  // namespace
}  // namespace ferry::http
