// Fuzzes the role-file loader (src/config/loader.cpp) through load_config with the daemon's real
// role catalog. The input is a role file, optionally followed by a line `#%%` and command-line
// arguments, one per line: `role=NAME` is --role NAME, anything else is one --set override.
// Invariants (docs/fuzzing.md):
//  - load_config returns a Config or throws ConfigError; any other exception is a bug;
//  - a ConfigError lists at least one problem, and each points at an existing line and column of
//    the role file, at the n-th --set (1 <= n <= overrides), or at --role when one was given;
//  - the value of a `secret` key (as written, after ${VAR} expansion, and the password inside a
//    URI) never appears in any problem; values that look like a secret (>= 6 bytes with a digit,
//    an upper- and a lower-case letter) are checked, so plain words of the messages cannot match;
//  - an accepted Config has a known role, and every key of its sections with a default or marked
//    required has a value of the declared type, inside its range and allowed values.
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "app/roles.hpp"
#include "fuzz_invariants.hpp"
#include "telemetryd/config.hpp"

extern char** environ;

namespace {

using fuzz::violated;

using telemetryd::Config;
using telemetryd::ConfigError;
using telemetryd::ConfigProblem;
using telemetryd::KeySpec;
using telemetryd::LoadOptions;
using telemetryd::SectionSpec;
using telemetryd::ValueType;

// Exported by LLVMFuzzerInitialize; seeds write ${FUZZ_SECRET} as a secret's value.
constexpr const char* kEnvSecret = "Env5ecretValue42";

std::string role_file_path;

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (true) {
    const auto nl = text.find('\n', start);
    lines.emplace_back(text.substr(start, nl == std::string_view::npos ? nl : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return lines;
}

bool looks_secret(std::string_view text) {
  const auto has = [&](int (*test)(int)) {
    return std::any_of(text.begin(), text.end(),
                       [&](char c) { return test(static_cast<unsigned char>(c)) != 0; });
  };
  return text.size() >= 6 && has(isdigit) && has(isupper) && has(islower);
}

// Every full path ("mongodb.uri") of a key declared secret by any section.
const std::vector<std::string>& secret_paths() {
  static const std::vector<std::string> paths = [] {
    std::vector<std::string> out;
    for (const SectionSpec* section : telemetryd::app::role_catalog().all_sections)
      for (const KeySpec& key : section->keys)
        if (key.secret) out.push_back(section->name + "." + key.name);
    return out;
  }();
  return paths;
}

// The texts secret values were found in (this input's), to tell a leak from a quote.
std::vector<std::string> secret_texts;

std::size_t occurrences(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string_view::npos;
       pos = haystack.find(needle, pos + needle.size()))
    ++n;
  return n;
}

// `record`: text is where the value is written in the input (not a re-reading of it).
void add_secret(std::vector<std::string>& secrets, const std::string& text, bool record = true) {
  if (record) secret_texts.push_back(text);
  std::vector<std::string> candidates{text};
  std::string error;
  if (auto expanded = telemetryd::interpolate_env(text, error)) candidates.push_back(*expanded);
  // scheme://user:password@host: the password alone is as secret as the whole URI.
  for (std::size_t i = 0, n = candidates.size(); i < n; ++i) {
    const std::string& uri = candidates[i];
    const auto scheme = uri.find("://");
    const auto at = uri.rfind('@');
    if (scheme == std::string::npos || at == std::string::npos || at < scheme) continue;
    const auto colon = uri.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at)
      candidates.push_back(uri.substr(colon + 1, at - colon - 1));
  }
  for (auto& candidate : candidates)
    if (looks_secret(candidate)) secrets.push_back(std::move(candidate));
}

// A scalar, or the scalars of a list (a kStringList value); one level only, as an alias can
// make a list contain itself.
void collect_scalars(const YAML::Node& node, std::vector<std::string>& secrets,
                     bool record = true) {
  if (node.IsScalar()) add_secret(secrets, node.Scalar(), record);
  if (!node.IsSequence()) return;
  for (const auto& item : node)
    if (item.IsScalar()) add_secret(secrets, item.Scalar(), record);
}

// The secret values as written in the role file, found with yaml-cpp independently of the
// loader; a file yaml-cpp cannot read has none to leak.
void secrets_in_file(const std::string& text, std::vector<std::string>& secrets) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return;
    for (const std::string& path : secret_paths()) {
      const auto dot = path.find('.');
      for (const auto& section : root) {
        if (!section.first.IsScalar() || section.first.Scalar() != path.substr(0, dot) ||
            !section.second.IsMap())
          continue;
        for (const auto& entry : section.second)
          if (entry.first.IsScalar() && entry.first.Scalar() == path.substr(dot + 1))
            collect_scalars(entry.second, secrets);
      }
    }
  } catch (const YAML::Exception&) {
  }
}

void check_problems(const ConfigError& error, const LoadOptions& options,
                    const std::vector<std::string>& lines,
                    const std::vector<std::string>& secrets) {
  if (error.problems().empty()) violated("ConfigError without problems", error.what());
  for (const ConfigProblem& p : error.problems()) {
    const std::string text = p.to_string();
    if (p.message.empty()) violated("problem without a message", text);
    if (p.file == options.file) {
      if (p.line < 1 || p.line > static_cast<int>(lines.size()))
        violated("problem points at a line the file does not have", text);
      const auto width = static_cast<int>(lines[static_cast<std::size_t>(p.line) - 1].size());
      if (p.column < 1 || p.column > width + 1)
        violated("problem points at a column the line does not have", text);
    } else if (p.file == "--set") {
      if (p.line < 1 || p.line > static_cast<int>(options.overrides.size()))
        violated("problem points at a --set that was not given", text);
    } else if (p.file == "--role") {
      if (options.role.empty()) violated("problem points at --role, which was not given", text);
    } else {
      violated("problem points at neither the file, --set nor --role", text);
    }
    // The role file's path is this harness's (a temp dir and the pid), not input: a --set value
    // copied from an earlier problem's location matched it once. Everything else is checked.
    std::string shown = text;
    if (p.file == options.file && shown.starts_with(options.file))
      shown.replace(0, options.file.size(), "ROLE_FILE");
    for (const std::string& secret : secrets)
      if (shown.find(secret) != std::string::npos)
        violated("a secret value appears in a problem", text);
  }
}

void check_config(const Config& config, const std::string& role) {
  const auto& catalog = telemetryd::app::role_catalog();
  if (std::find(catalog.roles.begin(), catalog.roles.end(), config.role()) == catalog.roles.end())
    violated("accepted an unknown role", config.role());
  if (!role.empty() && config.role() != role) violated("role differs from --role", config.role());
  const auto sections = catalog.sections_for(config.role());
  for (const SectionSpec* section : *sections) {
    for (const KeySpec& key : section->keys) {
      const std::string path = section->name + "." + key.name;
      if (!config.has(path)) {
        if (key.required || key.default_value) violated("accepted config lacks a key", path);
        continue;
      }
      try {
        double number = 0;
        switch (key.type) {
          case ValueType::kInt:
            number = static_cast<double>(config.integer(path));
            break;
          case ValueType::kDouble:
            number = config.number(path);
            break;
          case ValueType::kBool:
            (void)config.flag(path);
            continue;
          case ValueType::kStringList:
            for (const std::string& item : config.list(path))
              if (!key.allowed.empty() &&
                  std::find(key.allowed.begin(), key.allowed.end(), item) == key.allowed.end())
                violated("accepted a list item outside the allowed values", path);
            continue;
          case ValueType::kString: {
            const std::string& text = config.str(path);
            if (!key.allowed.empty() &&
                std::find(key.allowed.begin(), key.allowed.end(), text) == key.allowed.end())
              violated("accepted a value outside the allowed values", path);
            continue;
          }
        }
        if ((key.min && number < *key.min) || (key.max && number > *key.max))
          violated("accepted a value outside its range", path);
      } catch (const std::logic_error& e) {
        violated("accepted config has a key of the wrong type", e.what());
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The loader expands ${VAR}: a run must not depend on the caller's TELEMETRYD_* variables.
  std::vector<std::string> ours;
  for (char** env = environ; *env != nullptr; ++env)
    if (std::strncmp(*env, "TELEMETRYD_", 11) == 0)
      ours.emplace_back(*env, std::strchr(*env, '=') - *env);
  for (const std::string& name : ours) unsetenv(name.c_str());
  setenv("FUZZ_SECRET", kEnvSecret, 1);
  setenv("FUZZ_PORT", "9092", 1);
  const char* tmp = std::getenv("TMPDIR");
  role_file_path = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                   "/telemetryd-fuzz-role-" + std::to_string(getpid()) + ".yaml";
  std::atexit([] { std::remove(role_file_path.c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kMarker = "\n#%%\n";
  const auto marker = input.find(kMarker);
  const std::string file_text(input.substr(0, marker));

  LoadOptions options;
  options.file = role_file_path;
  if (marker != std::string_view::npos) {
    for (std::string& line : split_lines(input.substr(marker + kMarker.size()))) {
      if (line.rfind("role=", 0) == 0) {
        options.role = line.substr(5);
      } else if (!line.empty()) {
        options.overrides.push_back(std::move(line));
      }
    }
  }
  if (FILE* out = std::fopen(role_file_path.c_str(), "wb")) {
    std::fwrite(file_text.data(), 1, file_text.size(), out);
    std::fclose(out);
  } else {
    violated("cannot write the role file", role_file_path);
  }

  std::vector<std::string> secrets;
  secret_texts.clear();
  secrets_in_file(file_text, secrets);
  for (const std::string& override_text : options.overrides) {
    const auto eq = override_text.find('=');
    const std::string path = override_text.substr(0, eq);
    if (eq == std::string::npos) continue;
    if (std::find(secret_paths().begin(), secret_paths().end(), path) != secret_paths().end()) {
      add_secret(secrets, override_text.substr(eq + 1));
      try {
        // The same --set text read as YAML: not a second place the value is written.
        collect_scalars(YAML::Load(override_text.substr(eq + 1)), secrets, /*record=*/false);
      } catch (const YAML::Exception&) {
      }
    }
  }

  // A secret that also appears outside secret values (in another key, in a malformed --set the
  // loader quotes back) may show up in a problem about that; only the others are checked.
  std::erase_if(secrets, [&](const std::string& secret) {
    std::size_t inside = 0;
    for (const std::string& text : secret_texts) inside += occurrences(text, secret);
    return occurrences(input, secret) > inside;
  });

  try {
    const Config config = telemetryd::load_config(options, telemetryd::app::role_catalog());
    check_config(config, options.role);
  } catch (const ConfigError& error) {
    check_problems(error, options, split_lines(file_text), secrets);
  } catch (const std::exception& e) {
    violated("load_config threw something other than ConfigError", e.what());
  } catch (...) {
    violated("load_config threw a non-exception", "");
  }
  return 0;
}
