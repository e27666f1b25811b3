#pragma once
// What every fuzz target does when an invariant breaks: say which, with the offending text, and
// abort so libFuzzer keeps the input. Shared by the fuzz/*.cpp targets.

#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace fuzz {

[[noreturn]] inline void violated(const char* what, std::string_view detail) {
  std::fprintf(stderr, "invariant violated: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

inline void expect(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) violated(what, detail);
}

inline bool utf8(std::string_view text) {
  return simdjson::validate_utf8(text.data(), text.size());
}

}  // namespace fuzz
