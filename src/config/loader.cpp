// Loads a role file with yaml-cpp, applies --set overrides and validates it against the sections
// of its role. Every problem is collected with file, line and column before anything is thrown,
// so an operator fixes a broken file in one pass.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "telemetryd/config.hpp"

namespace telemetryd {
namespace {

struct Origin {
  std::string file;
  int line = 0;
  int column = 0;
};

std::vector<int> line_widths(std::string_view text) {
  std::vector<int> widths;
  std::size_t start = 0;
  while (true) {
    const auto nl = text.find('\n', start);
    widths.push_back(static_cast<int>((nl == std::string_view::npos ? text.size() : nl) - start));
    if (nl == std::string_view::npos) return widths;
    start = nl + 1;
  }
}

// yaml-cpp can place a syntax error a column past the end of the input: report the nearest
// position the file has, so an editor's file:line:col jump always lands. 0 stays "whole file".
Origin within(Origin at, const std::vector<int>& widths) {
  if (at.line < 1 || widths.empty()) return at;
  at.line = std::min(at.line, static_cast<int>(widths.size()));
  at.column = std::clamp(at.column, 1, widths[static_cast<std::size_t>(at.line) - 1] + 1);
  return at;
}

std::string percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned value = 0;
    if (text[i] == '%' && i + 2 < text.size() &&
        std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16).ptr ==
            text.data() + i + 3) {
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// A checker's message about a secret value may quote parts of it (libmongoc's does, e.g.
// 'Password "..." must not have unescaped chars'). Replaced by *** here: the value, and for
// scheme://user:password@host/?key=value its user info, user, password and option values, as
// written and percent-decoded.
std::string redact(std::string message, const std::string& value) {
  std::vector<std::string> parts{value};
  const auto scheme = value.find("://");
  const std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const auto at = value.rfind('@');
  if (at != std::string::npos && at >= start) {
    const std::string info = value.substr(start, at - start);
    const auto colon = info.find(':');
    parts.insert(parts.end(), {info, info.substr(0, colon)});
    if (colon != std::string::npos) parts.push_back(info.substr(colon + 1));
  }
  if (const auto query = value.find('?', start); query != std::string::npos) {
    std::string_view options = std::string_view(value).substr(query + 1);
    while (!options.empty()) {
      const auto amp = options.find('&');
      const auto pair = options.substr(0, amp);
      if (const auto eq = pair.find('='); eq != std::string_view::npos)
        parts.emplace_back(pair.substr(eq + 1));
      options = amp == std::string_view::npos ? std::string_view() : options.substr(amp + 1);
    }
  }
  for (std::size_t i = 0, n = parts.size(); i < n; ++i) parts.push_back(percent_decoded(parts[i]));
  std::sort(parts.begin(), parts.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& part : parts) {
    if (part.empty()) continue;
    for (auto pos = message.find(part); pos != std::string::npos; pos = message.find(part, pos + 3))
      message.replace(pos, part.size(), "***");
  }
  return message;
}

class Validator {
 public:
  Validator(std::string file, const RoleCatalog& catalog)
      : file_(std::move(file)), catalog_(catalog) {}

  void set_text(std::string_view text) { widths_ = line_widths(text); }

  void add_problem(const Origin& origin, std::string path, std::string message,
                   std::string hint = {}) {
    const Origin at = origin.file == file_ ? within(origin, widths_) : origin;
    problems_.push_back(
        {at.file, at.line, at.column, std::move(path), std::move(message), std::move(hint)});
  }

  Origin origin_of(const YAML::Node& node, const std::string& path) const {
    // A value --set replaced, or anything inside it: its marks count in the --set text, not in
    // the file. The latest override at or above the path is the one that put it there.
    if (const int index = override_of(path, /*below=*/false)) return {"--set", index, 1};
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) {
      // Only --set makes nodes without a mark: the mapping a.b.c=v created on its way down, or
      // a key it added to a mapping the file aliases under another name too.
      if (const int index = override_of(path, /*below=*/true)) return {"--set", index, 1};
      if (!overridden_.empty()) return {"--set", override_of("", /*below=*/true), 1};
      return {file_, 0, 0};
    }
    return {file_, mark.line + 1, mark.column + 1};
  }

  // The index of the latest --set whose path is `path` or above it (below=false), or below it
  // (below=true); 0 when none.
  int override_of(const std::string& path, bool below) const {
    int latest = 0;
    const auto under = [](const std::string& inner, const std::string& outer) {
      return outer.empty() || inner == outer ||
             (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
              inner[outer.size()] == '.');
    };
    for (const auto& [overridden, index] : overridden_) {
      if (below ? under(overridden, path) : under(path, overridden))
        latest = std::max(latest, index);
    }
    return latest;
  }

  /// --set key.path=value: the value is parsed as YAML so numbers and booleans keep their type.
  void apply_override(YAML::Node& root, const std::string& text, int index) {
    const Origin at{"--set", index, 1};
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      // Not echoed: without its key, the text may be a value meant for a secret key.
      add_problem(at, "", "override is not key.path=value", "e.g. --set kafka.brokers=kafka1:9092");
      return;
    }
    const std::string path = text.substr(0, eq);
    std::vector<std::string> parts;
    std::stringstream ss(path);
    for (std::string part; std::getline(ss, part, '.');) {
      if (part.empty()) {
        add_problem(at, path, "empty segment in key path");
        return;
      }
      parts.push_back(part);
    }
    YAML::Node value;
    try {
      value = YAML::Load(text.substr(eq + 1));
    } catch (const YAML::Exception&) {
      value = YAML::Node(text.substr(eq + 1));
    }
    YAML::Node node = root;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node next = node[parts[i]];
      if (!next.IsMap()) {
        node[parts[i]] = YAML::Node(YAML::NodeType::Map);
        next.reset(node[parts[i]]);
      }
      node.reset(next);
    }
    node[parts.back()] = value;
    overridden_[path] = index;
  }

  Config validate(YAML::Node root, const std::string& role_from_cli) {
    if (root.IsNull() || !root.IsDefined()) root = YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) {
      add_problem(origin_of(root, ""), "", "the role file must be a mapping of sections");
      throw ConfigError(problems_);
    }
    std::vector<YAML::Node> checked;
    check_duplicates(root, "", checked);

    std::string role = role_from_cli;
    if (const YAML::Node role_node = root["role"]) {
      const std::string file_role = role_node.IsScalar() ? role_node.Scalar() : std::string();
      if (!role_from_cli.empty() && file_role != role_from_cli) {
        add_problem(
            origin_of(role_node, "role"), "role",
            "file is for role '" + file_role + "' but --role " + role_from_cli + " was given",
            "use the role file made for that role");
      }
      if (role.empty()) role = file_role;
    }
    if (role.empty()) {
      add_problem({file_, 1, 1}, "role", "missing required key",
                  "add 'role: " + join(catalog_.roles, "|") + "' or pass --role");
      throw ConfigError(problems_);
    }
    const auto sections = catalog_.sections_for(role);
    if (!sections) {
      const YAML::Node role_node = root["role"];
      add_problem(role_node ? origin_of(role_node, "role") : Origin{"--role", 0, 0}, "role",
                  "unknown role '" + role + "'", "one of " + join(catalog_.roles, ", "));
      throw ConfigError(problems_);
    }

    std::vector<std::string> section_names{"role"};
    for (const SectionSpec* s : *sections) section_names.push_back(s->name);
    for (const auto& entry : root) {
      if (!plain_key(entry.first, "")) continue;
      const std::string key = entry.first.Scalar();
      if (std::find(section_names.begin(), section_names.end(), key) != section_names.end()) {
        continue;
      }
      const bool other_role =
          std::any_of(catalog_.all_sections.begin(), catalog_.all_sections.end(),
                      [&](const SectionSpec* s) { return s->name == key; });
      if (other_role) {
        add_problem(origin_of(entry.first, key), key, "section is not used by role '" + role + "'",
                    "remove it");
      } else {
        unknown_key(entry.first, key, key, section_names);
      }
    }

    for (const SectionSpec* section : *sections) {
      const YAML::Node node = root[section->name];
      if (node && !node.IsMap() && !node.IsNull()) {
        add_problem(origin_of(node, section->name), section->name, "expected a mapping of keys");
        continue;
      }
      if (node && node.IsMap()) walk(node, section->name, *section);
      fill_missing(*section, node ? origin_of(node, section->name) : Origin{file_, 1, 1});
    }
    run_cross_checks(*sections, role);

    if (!problems_.empty()) throw ConfigError(problems_);
    Config config(file_.empty() ? std::string("(defaults)") : file_, role, std::move(values_));
    std::map<std::string, KeyOrigin, std::less<>> origins;
    for (const auto& [path, at] : origins_) origins[path] = {at.file, at.line, at.column};
    config.set_origins(std::move(origins));
    if (catalog_.check) {
      for (const ConfigProblem& p : catalog_.check(config)) {
        bool found = false;
        Origin at = locate(root, p.path, found);
        bool cause_found = false;
        if (!found && !p.because_of.empty()) {
          const Origin cause = locate(root, p.because_of, cause_found);
          if (cause_found) at = cause;
        }
        add_problem(at, p.path, p.message, p.hint);
      }
      if (!problems_.empty()) throw ConfigError(problems_);
    }
    return config;
  }

 private:
  // KeyProblems for the sections' cross-key checks, placing each problem at its key's origin.
  class CrossCheckProblems final : public KeyProblems {
   public:
    explicit CrossCheckProblems(Validator& validator) : validator_(validator) {}
    void add(std::string_view path, std::string message, std::string hint) override {
      const auto it = validator_.origins_.find(std::string(path));
      const Origin at = it != validator_.origins_.end() ? it->second : Origin{validator_.file_};
      validator_.add_problem(at, std::string(path), std::move(message), std::move(hint));
    }

   private:
    Validator& validator_;
  };

  // A section's rules run only when each of its keys has a valid value: a key with a problem
  // has no value to reason about, and its problem is already reported.
  void run_cross_checks(const std::vector<const SectionSpec*>& sections, const std::string& role) {
    const Config view(file_, role, values_);
    CrossCheckProblems sink(*this);
    for (const SectionSpec* section : sections) {
      if (!section->check) continue;
      const std::string prefix = section->name + ".";
      const bool clean = std::none_of(problems_.begin(), problems_.end(), [&](const auto& p) {
        return p.path == section->name || p.path.compare(0, prefix.size(), prefix) == 0;
      });
      if (clean) section->check(view, sink);
    }
  }

  static std::string join(const std::vector<std::string>& items, const std::string& sep) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
    return out;
  }

  // The node of `path` (found), or of its deepest parent present in the file (not found), or the
  // --set override that gave it.
  Origin locate(const YAML::Node& root, const std::string& path, bool& found) const {
    found = true;
    if (const auto it = overridden_.find(path); it != overridden_.end()) {
      return {"--set", it->second, 1};
    }
    YAML::Node node = root;
    Origin at{file_, 0, 0};
    std::stringstream ss(path);
    for (std::string part; std::getline(ss, part, '.');) {
      if (!node.IsMap() || !node[part]) {
        found = false;
        break;
      }
      const YAML::Node next = node[part];
      at = origin_of(next, "");
      node.reset(next);
    }
    return at;
  }

  // An alias shares its node: `a: &x {b: *x}` makes a mapping contain itself, and aliases of
  // aliases grow exponentially when walked as a tree. Each mapping is checked once.
  void check_duplicates(const YAML::Node& map, const std::string& prefix,
                        std::vector<YAML::Node>& checked) {
    if (std::any_of(checked.begin(), checked.end(),
                    [&](const YAML::Node& node) { return node.is(map); }))
      return;
    checked.push_back(map);
    std::set<std::string> seen;
    for (const auto& entry : map) {
      if (!entry.first.IsScalar()) continue;
      const std::string key = entry.first.Scalar();
      const std::string path = prefix.empty() ? key : prefix + "." + key;
      if (!seen.insert(key).second) {
        add_problem(origin_of(entry.first, path), path, "duplicate key",
                    "the later value would silently win");
      }
      if (entry.second.IsMap()) check_duplicates(entry.second, path, checked);
    }
  }

  // YAML allows a mapping, a list or null as a key (`[a, b]: 1`, `? {x: 1}`); a role file's keys
  // are names.
  bool plain_key(const YAML::Node& key, const std::string& parent) {
    if (key.IsScalar()) return true;
    add_problem(origin_of(key, parent), parent,
                std::string("a key must be a name, not ") + (key.IsMap()        ? "a mapping"
                                                             : key.IsSequence() ? "a list"
                                                                                : "empty"));
    return false;
  }

  void unknown_key(const YAML::Node& key_node, const std::string& path, const std::string& key,
                   const std::vector<std::string>& candidates) {
    const auto guess = closest_match(key, candidates);
    add_problem(origin_of(key_node, path), path, "unknown key",
                guess ? "did you mean '" + *guess + "'?" : "known keys: " + join(candidates, ", "));
  }

  // Keys directly below `relative` (a dotted prefix inside the section, empty for the top).
  static std::vector<std::string> child_names(const SectionSpec& section,
                                              const std::string& relative) {
    std::vector<std::string> out;
    const std::string prefix = relative.empty() ? "" : relative + ".";
    for (const KeySpec& key : section.keys) {
      if (key.name.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string rest = key.name.substr(prefix.size());
      const std::string first = rest.substr(0, rest.find('.'));
      if (std::find(out.begin(), out.end(), first) == out.end()) out.push_back(first);
    }
    return out;
  }

  void walk(const YAML::Node& map, const std::string& path, const SectionSpec& section) {
    const std::string relative =
        path.size() > section.name.size() ? path.substr(section.name.size() + 1) : "";
    const auto names = child_names(section, relative);
    for (const auto& entry : map) {
      if (!plain_key(entry.first, path)) continue;
      const std::string key = entry.first.Scalar();
      const std::string full = path + "." + key;
      const std::string rel = relative.empty() ? key : relative + "." + key;
      const auto spec = std::find_if(section.keys.begin(), section.keys.end(),
                                     [&](const KeySpec& k) { return k.name == rel; });
      if (spec != section.keys.end()) {
        check_value(entry.second, full, *spec);
      } else if (std::find(names.begin(), names.end(), key) != names.end()) {
        if (entry.second.IsMap()) {
          walk(entry.second, full, section);
        } else {
          add_problem(origin_of(entry.second, full), full, "expected a mapping of keys",
                      "keys: " + join(child_names(section, rel), ", "));
        }
      } else {
        unknown_key(entry.first, full, key, names);
      }
    }
  }

  std::optional<std::string> scalar_text(const YAML::Node& node, const std::string& path,
                                         const KeySpec& spec) {
    const Origin at = origin_of(node, path);
    if (node.IsNull()) {
      add_problem(at, path, "has no value", spec.hint);
      return std::nullopt;
    }
    if (!node.IsScalar()) {
      add_problem(
          at, path,
          "expected a single value, not a " + std::string(node.IsMap() ? "mapping" : "list"),
          spec.hint);
      return std::nullopt;
    }
    std::string error;
    auto text = interpolate_env(node.Scalar(), error);
    if (!text) add_problem(at, path, error, "export it, or write ${NAME:-default}");
    return text;
  }

  void check_value(const YAML::Node& node, const std::string& path, const KeySpec& spec) {
    const Origin at = origin_of(node, path);
    origins_[path] = at;
    if (spec.type == ValueType::kStringList) {
      std::vector<std::string> items;
      const auto add = [&](const YAML::Node& item) {
        if (auto text = scalar_text(item, path, spec)) {
          if (auto value = convert(*text, spec, origin_of(item, path), path, item.Scalar())) {
            items.push_back(std::get<std::string>(*value));
          }
        }
      };
      if (node.IsSequence()) {
        for (const auto& item : node) add(item);
      } else {
        add(node);
      }
      values_[path] = std::move(items);
      return;
    }
    if (auto text = scalar_text(node, path, spec)) {
      if (auto value = convert(*text, spec, at, path, node.Scalar())) {
        values_[path] = std::move(*value);
      }
    }
  }

  // `written` is the value as the file has it: a value that came from ${VAR} is shown as
  // written, since environment variables often hold secrets even for keys that are not.
  std::optional<ConfigValue> convert(const std::string& text, const KeySpec& spec, const Origin& at,
                                     const std::string& path, const std::string& written = {}) {
    const std::string shown = spec.secret ? std::string("(secret)")
                              : written.find("${") != std::string::npos
                                  ? "'" + written + "' (from the environment)"
                                  : "'" + text + "'";
    auto range_ok = [&](double v) {
      if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max)) {
        std::ostringstream range;
        range.precision(15);
        range << "must be";
        if (spec.min) range << " >= " << *spec.min;
        if (spec.min && spec.max) range << " and";
        if (spec.max) range << " <= " << *spec.max;
        add_problem(at, path, "value " + shown + " is out of range", range.str());
        return false;
      }
      return true;
    };
    switch (spec.type) {
      case ValueType::kInt: {
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || end != text.data() + text.size()) {
          add_problem(at, path, "expected an integer, got " + shown, spec.hint);
          return std::nullopt;
        }
        if (!range_ok(static_cast<double>(v))) return std::nullopt;
        return ConfigValue(v);
      }
      case ValueType::kDouble: {
        double v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(v)) {
          add_problem(at, path, "expected a number, got " + shown, spec.hint);
          return std::nullopt;
        }
        if (!range_ok(v)) return std::nullopt;
        return ConfigValue(v);
      }
      case ValueType::kBool: {
        if (text == "true" || text == "True" || text == "TRUE") return ConfigValue(true);
        if (text == "false" || text == "False" || text == "FALSE") return ConfigValue(false);
        add_problem(at, path, "expected true or false, got " + shown, spec.hint);
        return std::nullopt;
      }
      case ValueType::kString:
      case ValueType::kStringList: {
        if (!spec.allowed.empty() &&
            std::find(spec.allowed.begin(), spec.allowed.end(), text) == spec.allowed.end()) {
          const auto guess = closest_match(text, spec.allowed);
          add_problem(at, path, "value " + shown + " is not allowed",
                      "one of " + join(spec.allowed, ", ") +
                          (guess ? "; did you mean '" + *guess + "'?" : ""));
          return std::nullopt;
        }
        if (spec.check) {
          if (auto problem = spec.check(text)) {
            add_problem(at, path,
                        spec.secret ? redact(*problem, text) : *problem + ", got " + shown,
                        spec.hint);
            return std::nullopt;
          }
        }
        return ConfigValue(text);
      }
    }
    return std::nullopt;
  }

  void fill_missing(const SectionSpec& section, const Origin& section_origin) {
    for (const KeySpec& key : section.keys) {
      const std::string path = section.name + "." + key.name;
      if (values_.contains(path)) continue;
      origins_.try_emplace(path, section_origin);
      if (key.required) {
        add_problem(section_origin, path, "missing required key",
                    key.description.empty() ? key.hint : key.description);
        continue;
      }
      if (!key.default_value) continue;
      if (key.type == ValueType::kStringList) {
        std::vector<std::string> items;
        std::stringstream ss(*key.default_value);
        for (std::string item; std::getline(ss, item, ',');) items.push_back(item);
        values_[path] = std::move(items);
      } else if (auto value = convert(*key.default_value, key, section_origin, path)) {
        values_[path] = std::move(*value);
      }
    }
  }

  std::string file_;
  const RoleCatalog& catalog_;
  std::vector<ConfigProblem> problems_;
  std::map<std::string, ConfigValue, std::less<>> values_;
  std::map<std::string, int> overridden_;
  std::map<std::string, Origin> origins_;  // where each key was written, or its section
  std::vector<int> widths_;                // of the file's lines

 public:
  bool has_problems() const { return !problems_.empty(); }
  const std::vector<ConfigProblem>& problems() const { return problems_; }
};

}  // namespace

Config load_config(const LoadOptions& options, const RoleCatalog& catalog) {
  Validator validator(options.file, catalog);
  YAML::Node root;
  if (!options.file.empty()) {
    std::ifstream in(options.file);
    if (!in) {
      throw ConfigError(
          {{options.file, 0, 0, "", "cannot open file", "check the path and permissions"}});
    }
    std::ostringstream text;
    text << in.rdbuf();
    validator.set_text(text.str());
    try {
      root = YAML::Load(text.str());
    } catch (const YAML::ParserException& e) {
      const Origin at =
          within({options.file, e.mark.line + 1, e.mark.column + 1}, line_widths(text.str()));
      throw ConfigError({{at.file, at.line, at.column, "", "YAML syntax error: " + e.msg, ""}});
    }
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  int index = 0;
  for (const auto& override_text : options.overrides) {
    if (root.IsMap()) validator.apply_override(root, override_text, ++index);
  }
  if (validator.has_problems()) throw ConfigError(validator.problems());
  return validator.validate(root, options.role);
}

}  // namespace telemetryd
