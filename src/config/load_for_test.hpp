// For the loader's unit tests only: load a YAML text that must load, or must fail.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "config/config.hpp"

namespace ferry::config {

// The config a text loads to; a failed load fails the test and gives an empty config.
inline std::shared_ptr<const Config> Load(const std::string& yaml) {
  auto loaded = LoadString(yaml, "t.yaml");
  EXPECT_TRUE(loaded) << (loaded ? "" : loaded.error().message());
  return loaded ? *loaded : std::make_shared<const Config>();
}

// The whole error message of a load that must fail (kInvalidArgument); "" if it loaded.
inline std::string Errors(const std::string& yaml) {
  auto loaded = LoadString(yaml, "t.yaml");
  EXPECT_FALSE(loaded) << "loaded without error:\n" << yaml;
  if (loaded) return "";
  EXPECT_EQ(loaded.error().code(), ErrorCode::kInvalidArgument);
  return loaded.error().message();
}

}  // namespace ferry::config
