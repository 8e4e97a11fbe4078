#include "auth/algorithm.hpp"

#include <array>
#include <utility>

namespace ferry::auth {
namespace {

constexpr std::array<std::pair<Algorithm, std::string_view>, 13> kNames{{
    {Algorithm::kRS256, "RS256"},
    {Algorithm::kRS384, "RS384"},
    {Algorithm::kRS512, "RS512"},
    {Algorithm::kPS256, "PS256"},
    {Algorithm::kPS384, "PS384"},
    {Algorithm::kPS512, "PS512"},
    {Algorithm::kES256, "ES256"},
    {Algorithm::kES384, "ES384"},
    {Algorithm::kES512, "ES512"},
    {Algorithm::kEdDSA, "EdDSA"},
    {Algorithm::kHS256, "HS256"},
    {Algorithm::kHS384, "HS384"},
    {Algorithm::kHS512, "HS512"},
}};

constexpr std::array<Algorithm, 10> kAsymmetric{
    Algorithm::kRS256, Algorithm::kRS384, Algorithm::kRS512, Algorithm::kPS256, Algorithm::kPS384,
    Algorithm::kPS512, Algorithm::kES256, Algorithm::kES384, Algorithm::kES512, Algorithm::kEdDSA,
};

}  // namespace

std::optional<Algorithm> AlgorithmFromName(std::string_view name) {
  for (const auto& [algorithm, text] : kNames) {
    if (text == name) return algorithm;
  }
  return std::nullopt;
}

std::string_view AlgorithmName(Algorithm algorithm) {
  for (const auto& [candidate, text] : kNames) {
    if (candidate == algorithm) return text;
  }
  return "?";
}

bool IsHmac(Algorithm algorithm) {
  return algorithm == Algorithm::kHS256 || algorithm == Algorithm::kHS384 ||
         algorithm == Algorithm::kHS512;
}

std::span<const Algorithm> AsymmetricAlgorithms() { return kAsymmetric; }

}  // namespace ferry::auth
