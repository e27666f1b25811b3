#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "telemetryd/config.hpp"

namespace telemetryd {

std::string ConfigProblem::to_string() const {
  std::string out = file;
  out += ':' + std::to_string(line) + ':' + std::to_string(column) + ": ";
  out += path.empty() ? std::string("(top-level)") : path;
  out += ": " + message;
  if (!hint.empty()) out += " (" + hint + ")";
  return out;
}

namespace {
std::string summarise(const std::vector<ConfigProblem>& problems) {
  std::string out = "invalid configuration:";
  for (const auto& p : problems) out += "\n  " + p.to_string();
  return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<ConfigProblem> problems)
    : std::runtime_error(summarise(problems)), problems_(std::move(problems)) {}

template <typename T>
const T& Config::get(std::string_view path) const {
  const auto it = values_.find(path);
  if (it == values_.end()) throw std::logic_error("config key not declared: " + std::string(path));
  const T* value = std::get_if<T>(&it->second);
  if (value == nullptr) throw std::logic_error("config key has another type: " + std::string(path));
  return *value;
}

const std::string& Config::str(std::string_view path) const {
  return get<std::string>(path);
}
std::int64_t Config::integer(std::string_view path) const {
  return get<std::int64_t>(path);
}
double Config::number(std::string_view path) const {
  return get<double>(path);
}
bool Config::flag(std::string_view path) const {
  return get<bool>(path);
}
const std::vector<std::string>& Config::list(std::string_view path) const {
  return get<std::vector<std::string>>(path);
}

namespace {
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}
}  // namespace

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

std::optional<std::string> check_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return "expected host:port";
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return "expected host:port";
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    return "port must be a number from 0 to 65535";
  }
  return std::nullopt;
}

std::optional<std::string> check_host_port_list(std::string_view text) {
  if (text.empty()) return "expected at least one host:port";
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto item =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    if (auto problem = check_host_port(item)) {
      return "'" + std::string(item) + "': " + *problem;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return std::nullopt;
}

std::optional<std::string> check_optional_host_port(std::string_view text) {
  if (text.empty()) return std::nullopt;
  return check_host_port(text);
}

ConfigProblem Config::located(ConfigProblem problem) const {
  if (problem.line != 0) return problem;
  auto it = origins_.find(problem.path);
  if (it == origins_.end() && !problem.because_of.empty()) it = origins_.find(problem.because_of);
  if (it == origins_.end() || it->second.line == 0) return problem;
  problem.file = it->second.file;
  problem.line = it->second.line;
  problem.column = it->second.column;
  return problem;
}

}  // namespace telemetryd
