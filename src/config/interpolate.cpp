#include <cstdlib>
#include <string_view>

#include "telemetryd/config.hpp"

namespace telemetryd {
namespace {

// A name a shell can export. Anything else cannot be set, and is never quoted back: the text
// between ${ and } of a secret key may be the secret itself written where a name belongs
// (found by fuzz_config_loader).
bool portable_name(std::string_view name) {
  const auto letter = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  if (name.empty() || !letter(name.front())) return false;
  for (const char c : name)
    if (!letter(c) && !(c >= '0' && c <= '9')) return false;
  return true;
}

}  // namespace

std::optional<std::string> interpolate_env(std::string_view text, std::string& error) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      out.push_back('$');
      ++i;
      continue;
    }
    if (i + 1 >= text.size() || text[i + 1] != '{') {
      out.push_back('$');
      continue;
    }
    const auto close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      error = "unterminated ${ in value";
      return std::nullopt;
    }
    const std::string_view body = text.substr(i + 2, close - i - 2);
    const auto marker = body.find(":-");
    const std::string name(body.substr(0, marker));
    if (name.empty()) {
      error = "empty variable name in ${}";
      return std::nullopt;
    }
    if (!portable_name(name)) {
      error = "invalid variable name in ${...} (letters, digits and _, not starting with a digit)";
      return std::nullopt;
    }
    if (const char* value = std::getenv(name.c_str()); value != nullptr && *value != '\0') {
      out += value;
    } else if (marker != std::string_view::npos) {
      out += body.substr(marker + 2);
    } else {
      error = "environment variable " + name + " is not set";
      return std::nullopt;
    }
    i = close;
  }
  return out;
}

}  // namespace telemetryd
