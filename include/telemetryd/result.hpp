#pragma once
// Hot-path and I/O results (std::expected is C++23; GCC 12 lacks it). Errors say whether retrying
// can help: retryable ones pause and retry, permanent ones go to the dead-letter topic.

#include <string>
#include <utility>
#include <variant>

namespace telemetryd {

struct Error {
  enum class Kind { kRetryable, kPermanent };
  Kind kind = Kind::kRetryable;
  std::string message;
  static Error retryable(std::string message) { return {Kind::kRetryable, std::move(message)}; }
  static Error permanent(std::string message) { return {Kind::kPermanent, std::move(message)}; }
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
