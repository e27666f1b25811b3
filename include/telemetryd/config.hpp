#pragma once
// Role-file configuration: each component declares the keys of its own section (a SectionSpec);
// the loader validates the whole file against the sections of the chosen role before anything
// starts, and hands components a typed, defaults-filled Config.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace telemetryd {

/// One thing wrong with a role file, located precisely enough to fix without guessing.
struct ConfigProblem {
  std::string file;  // "--set" for command-line overrides
  int line = 0;      // 1-based; 0 when the whole file is concerned
  int column = 0;    // 1-based
  std::string path;  // dotted key path, e.g. "http.listen"
  std::string message;
  std::string hint;  // may be empty
  /// Cross-key checks: the key whose value made `path` necessary (e.g. processor.store), where
  /// the problem is located when `path` itself is absent from the file.
  std::string because_of;
  /// `file:line:col: key.path: message (hint)`
  std::string to_string() const;
};

/// Thrown for every startup configuration failure; carries all problems found, not just the first.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigProblem> problems);
  const std::vector<ConfigProblem>& problems() const { return problems_; }

 private:
  std::vector<ConfigProblem> problems_;
};

enum class ValueType { kString, kInt, kDouble, kBool, kStringList };

/// Declares one key of a section. `name` may be dotted ("tls.ca_file") for nested mappings.
struct KeySpec {
  std::string name;
  ValueType type = ValueType::kString;
  std::string description;
  /// Textual default, parsed like a value from the file; nullopt means no default.
  std::optional<std::string> default_value;
  bool required = false;
  std::optional<double> min;
  std::optional<double> max;
  /// For enumerations: the accepted strings.
  std::vector<std::string> allowed;
  /// Extra check on the final text; returns an error message or nullopt.
  std::function<std::optional<std::string>(std::string_view)> check;
  /// Added to errors about this key, e.g. the expected format.
  std::string hint;
  /// Value is never echoed in errors or logs.
  bool secret = false;
};

class Config;

/// Handed to a section's cross-key check: reports a problem at the place in the role file where
/// a key was written (or at its section when the key was left at its default).
class KeyProblems {
 public:
  virtual ~KeyProblems() = default;
  /// `message` must never contain a secret's value.
  virtual void add(std::string_view path, std::string message, std::string hint = {}) = 0;
};

struct SectionSpec {
  std::string name;
  std::string description;
  std::vector<KeySpec> keys;
  /// Rules joining several keys ("a certificate needs its key"). Runs once every key of the
  /// section has a valid value, with the whole role's values.
  std::function<void(const Config&, KeyProblems&)> check;
};

/// Where a key was written: file (or "--set") and position; its section's for a default.
struct KeyOrigin {
  std::string file;
  int line = 0;
  int column = 0;
};

using ConfigValue = std::variant<std::string, std::int64_t, double, bool, std::vector<std::string>>;

/// A validated configuration: every declared key of the role's sections has a value
/// (explicit or default) unless it is optional with no default.
class Config {
 public:
  Config() = default;
  Config(std::string source, std::string role,
         std::map<std::string, ConfigValue, std::less<>> values)
      : source_(std::move(source)), role_(std::move(role)), values_(std::move(values)) {}

  const std::string& source() const { return source_; }
  const std::string& role() const { return role_; }
  bool has(std::string_view path) const { return values_.contains(path); }

  /// Accessors throw std::logic_error when the path was not declared with that type: that is a
  /// programming error, validation already guaranteed the user's side.
  const std::string& str(std::string_view path) const;
  std::int64_t integer(std::string_view path) const;
  double number(std::string_view path) const;
  bool flag(std::string_view path) const;
  const std::vector<std::string>& list(std::string_view path) const;

  /// The loader records where each key was written.
  void set_origins(std::map<std::string, KeyOrigin, std::less<>> origins) {
    origins_ = std::move(origins);
  }
  /// The one place a problem found after loading (a component's constructor, a file a key
  /// names) gets its position: where `path` was written (its section's place when it was left
  /// at its default), else where `because_of` was, else the problem as it came. Problems that
  /// already have a line keep it.
  ConfigProblem located(ConfigProblem problem) const;

 private:
  template <typename T>
  const T& get(std::string_view path) const;
  std::string source_;
  std::string role_;
  std::map<std::string, ConfigValue, std::less<>> values_;
  std::map<std::string, KeyOrigin, std::less<>> origins_;
};

/// Tells the loader which sections a role uses; nullopt for an unknown role.
struct RoleCatalog {
  std::vector<std::string> roles;
  std::function<std::optional<std::vector<const SectionSpec*>>(std::string_view role)> sections_for;
  /// Every section of every role, to tell "not used by this role" from "unknown".
  std::vector<const SectionSpec*> all_sections;
  /// Cross-key checks of a role's components, run once every key is valid; problems are located
  /// at the named key (or its closest parent in the file) by the loader.
  std::function<std::vector<ConfigProblem>(const Config&)> check;
};

struct LoadOptions {
  /// Role file; empty means built-in defaults only.
  std::string file;
  /// --role; must match the file's `role:` when both are given.
  std::string role;
  /// --set key.path=value, applied on top of the file in order.
  std::vector<std::string> overrides;
};

/// Loads, interpolates, overrides and validates. Throws ConfigError listing every problem.
Config load_config(const LoadOptions& options, const RoleCatalog& catalog);

/// Expands ${VAR} and ${VAR:-default}; `$$` is a literal `$`. Returns nullopt and sets `error`
/// when a variable is undefined and has no default, or the syntax is broken.
std::optional<std::string> interpolate_env(std::string_view text, std::string& error);

/// The closest candidate within a small edit distance, for "did you mean" hints.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

/// Key checks shared by sections.
std::optional<std::string> check_host_port(std::string_view text);
std::optional<std::string> check_host_port_list(std::string_view text);
/// Empty, or host:port.
std::optional<std::string> check_optional_host_port(std::string_view text);

/// File key checks, run when the role file loads. An empty value passes (the key is unused).
/// A file that exists, can be opened for reading and is not empty (passwords, tokens).
std::optional<std::string> check_readable_file(std::string_view path);
/// Readable, with at least one PEM certificate (CA bundles, certificates).
std::optional<std::string> check_pem_certificate_file(std::string_view path);
/// Readable, with an unencrypted PEM private key.
std::optional<std::string> check_pem_key_file(std::string_view path);
/// Readable, with a PEM certificate and its unencrypted private key in the same file.
std::optional<std::string> check_pem_certificate_and_key_file(std::string_view path);
/// Both files already passed the checks above; says when the key does not belong to the
/// certificate.
std::optional<std::string> check_key_matches_certificate(const std::string& certificate_file,
                                                         const std::string& key_file);

/// The secret configured by `key` (e.g. "kafka.sasl_password") or by `key`_file: the file's
/// first line without its line ending when `key`_file is set, else the value of `key`. Throws
/// StartupError naming the key and the file, never the secret.
std::string read_secret(const Config& config, const std::string& key);
/// The two keys read_secret reads: `name` (a secret, e.g. "password") and `name`_file;
/// `what` says whose secret it is ("Password of username").
std::vector<KeySpec> secret_keys(const std::string& name, const std::string& what);

}  // namespace telemetryd
