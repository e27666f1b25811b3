#pragma once
// Shared by the protobuf and JSON decoders (not part of the interface): where in the request a
// decoder is, for error messages.

#include <array>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

namespace telemetryd::otlp::detail {

/// The decoder's position as "resource_spans[0].scope_spans[1].spans[3]". Pushing and popping
/// only store two words; the text is built when an error is reported.
class Path {
 public:
  static constexpr std::size_t kNoIndex = std::numeric_limits<std::size_t>::max();

  void push(std::string_view name, std::size_t index = kNoIndex) {
    if (size_ < entries_.size()) entries_[size_] = {name, index};
    ++size_;
  }
  void pop() { --size_; }

  /// "PATH: what", or just "what" at the top level.
  std::string describe(std::string_view what) const {
    std::string out;
    for (std::size_t i = 0; i < size_ && i < entries_.size(); ++i) {
      if (i > 0) out += '.';
      out += entries_[i].name;
      if (entries_[i].index != kNoIndex) {
        out += '[';
        out += std::to_string(entries_[i].index);
        out += ']';
      }
    }
    if (size_ > entries_.size()) out += "...";
    if (!out.empty()) out += ": ";
    out += what;
    return out;
  }

 private:
  struct Entry {
    std::string_view name;  // a literal, or a key in the JSON being decoded
    std::size_t index;
  };
  // Requests nest 8 levels, attribute values up to kMaxValueDepth more (two entries each).
  std::array<Entry, 80> entries_{};
  std::size_t size_ = 0;
};

/// Pushes on construction (`name` must outlive the Scope), pops on destruction.
class Scope {
 public:
  Scope(Path& path, std::string_view name, std::size_t index = Path::kNoIndex) : path_(path) {
    path_.push(name, index);
  }
  ~Scope() { path_.pop(); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Path& path_;
};

}  // namespace telemetryd::otlp::detail
