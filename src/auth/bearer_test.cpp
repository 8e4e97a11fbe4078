#include "auth/bearer.hpp"

#include <gtest/gtest.h>

namespace ferry::auth {
namespace {

TEST(RequestTokenTest, ReadsTheBearerSchemeCaseInsensitively) {
  http::Headers headers;
  headers.Add("authorization", "  bEaReR \t abc.def.ghi  ");
  EXPECT_EQ(RequestToken(headers, {}), "abc.def.ghi");
}

TEST(RequestTokenTest, AnotherSchemeOrNoTokenIsEmpty) {
  http::Headers basic;
  basic.Add("authorization", "Basic dXNlcjpwYXNz");
  EXPECT_EQ(RequestToken(basic, {}), "");
  http::Headers bare;
  bare.Add("authorization", "Bearer");
  EXPECT_EQ(RequestToken(bare, {}), "");
  EXPECT_EQ(RequestToken(http::Headers(), "session"), "");
}

TEST(RequestTokenTest, TheCookieIsReadOnlyWhenNamedAndNoBearerCame) {
  http::Headers headers;
  headers.Add("cookie", "theme=dark; session=\"tok.en.1\"");
  headers.Add("cookie", "session=second");
  EXPECT_EQ(RequestToken(headers, {}), "");
  EXPECT_EQ(RequestToken(headers, "session"), "tok.en.1");
  EXPECT_EQ(RequestToken(headers, "sess"), "");
  headers.Add("authorization", "Bearer header.wins");
  EXPECT_EQ(RequestToken(headers, "session"), "header.wins");
}

TEST(BearerChallengeTest, NamesTheRealmAndARefusalAsASafeQuotedString) {
  EXPECT_EQ(BearerChallenge("api"), R"(Bearer realm="api")");
  EXPECT_EQ(BearerChallenge("api", "bad \"kid\"\n\\x\xff"),
            R"(Bearer realm="api", error="invalid_token", error_description="bad  kid   x ")");
}

}  // namespace
}  // namespace ferry::auth
