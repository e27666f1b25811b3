#pragma once
// Hot-path and I/O results (std::expected is C++23; GCC 12 lacks it). Errors say whether retrying
// can help: retryable ones pause and retry; permanent ones are answers (a refused document goes
// to the dead-letter topic, a refused start-up stops the process). An error that nothing
// recognised is retryable and says so (`unclassified`), so it is retried and counted, never taken
// for a refusal of valid events.

#include <string>
#include <utility>
#include <variant>

namespace telemetryd {

struct Error {
  enum class Kind { kRetryable, kPermanent };
  Kind kind = Kind::kRetryable;
  std::string message;
  /// Where it came from, for counting: "mongo:server:11600", "sqlite:13", "http:503"; empty when
  /// the producer of the error names none.
  std::string code;
  /// True when no rule recognised the error (it is then retryable, and alerts).
  bool unclassified = false;
  static Error retryable(std::string message, std::string code = {}) {
    return {Kind::kRetryable, std::move(message), std::move(code)};
  }
  static Error permanent(std::string message, std::string code = {}) {
    return {Kind::kPermanent, std::move(message), std::move(code)};
  }
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}      // NOLINT: implicit by design, like expected
  Result(Error error) : value_(std::move(error)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(value_); }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(value_); }
  const T& value() const { return std::get<T>(value_); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<Error>(value_); }

 private:
  std::variant<T, Error> value_;
};

}  // namespace telemetryd
