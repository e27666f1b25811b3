#include "scrape/scrape_targets.hpp"

namespace telemetryd::scrape {
namespace {

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

Result<Target> parse_target(std::string_view line) {
  const std::vector<std::string_view> parts = words(line);
  if (parts.empty()) return Error::permanent("a target needs a URL");
  Target target;
  target.url = std::string(parts.front());
  std::string_view rest = parts.front();
  std::string scheme;
  if (rest.starts_with("http://")) {
    scheme = "http://";
  } else if (rest.starts_with("https://")) {
    scheme = "https://";
  } else {
    return Error::permanent("'" + target.url + "' is not an http:// or https:// URL");
  }
  rest.remove_prefix(scheme.size());
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  if (authority.empty() || authority.find_first_of("@?#") != std::string_view::npos) {
    return Error::permanent("'" + target.url + "' has no usable host (user info is not allowed)");
  }
  target.origin = scheme + std::string(authority);
  target.path = slash == std::string_view::npos ? "/metrics" : std::string(rest.substr(slash));
  if (target.path.find('#') != std::string::npos) {
    return Error::permanent("'" + target.url + "' must not have a #fragment");
  }
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    const std::size_t eq = part.find('=');
    const std::string_view name = part.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : part.substr(eq + 1);
    if (value.empty()) {
      return Error::permanent("'" + std::string(part) + "' is not host=NAME or deployment=NAME");
    }
    if (name == "host") {
      target.host = std::string(value);
    } else if (name == "deployment") {
      target.deployment = std::string(value);
    } else {
      return Error::permanent("unknown target option '" + std::string(name) +
                              "' (host= and deployment= are known)");
    }
  }
  return target;
}

Result<std::vector<Target>> parse_targets_file(std::string_view text, std::string_view file) {
  std::vector<Target> targets;
  int number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    line = line.substr(0, line.find('#'));
    if (words(line).empty()) continue;
    Result<Target> target = parse_target(line);
    if (!target) {
      return Error::permanent(std::string(file) + ":" + std::to_string(number) + ": " +
                              target.error().message);
    }
    targets.push_back(std::move(target.value()));
  }
  return targets;
}

}  // namespace telemetryd::scrape
