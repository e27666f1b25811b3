#include "archive/archive_config.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "archive/filesystem_store.hpp"
#include "telemetryd/errors.hpp"

namespace telemetryd::archive {
namespace {

std::optional<std::string> check_endpoint(std::string_view text) {
  S3Endpoint endpoint;
  std::string error;
  if (!parse_endpoint(text, endpoint, error)) return error;
  return std::nullopt;
}

std::optional<std::string> check_prefix(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text.back() != '/') return std::string("must end with '/'");
  if (!valid_key(std::string(text) + "x")) {
    return std::string("must be relative, without empty, '.' or '..' segments");
  }
  return std::nullopt;
}

[[noreturn]] void config_problem(const Config& config, const std::string& key,
                                 const std::string& message, const std::string& hint = {}) {
  throw ConfigError({{config.source(), 0, 0, "archive." + key, message, hint}});
}

std::string optional_str(const Config& config, const std::string& key) {
  const std::string path = "archive." + key;
  return config.has(path) ? config.str(path) : std::string();
}

std::string trim_right(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

std::vector<KeySpec> archive_keys() {
  return {
      {.name = "enabled",
       .type = ValueType::kBool,
       .description = "Archive every consumed event to object storage as gzip NDJSON.",
       .default_value = "false"},
      {.name = "store",
       .description = "s3 for an S3-compatible bucket; filesystem for a local directory.",
       .default_value = "s3",
       .allowed = {"s3", "filesystem"}},
      {.name = "prefix",
       .description = "Key prefix of every archive object; empty or ending with '/'.",
       .default_value = "archive/",
       .check = check_prefix,
       .hint = "e.g. archive/ or telemetry/prod/"},
      {.name = "max_records",
       .type = ValueType::kInt,
       .description = "Seal a partition's batch once it holds this many events.",
       .default_value = "10000",
       .min = 1,
       .max = 10000000},
      {.name = "max_bytes",
       .type = ValueType::kInt,
       .description = "Seal a partition's batch once its uncompressed NDJSON reaches this size.",
       .default_value = "8388608",
       .min = 1024,
       .max = 1073741824},
      {.name = "max_age_ms",
       .type = ValueType::kInt,
       .description = "Seal a partition's batch this long after its first event.",
       .default_value = "60000",
       .min = 10,
       .max = 86400000},
      {.name = "max_buffered_bytes",
       .type = ValueType::kInt,
       .description = "Above this many bytes held for upload the worker pauses consumption.",
       .default_value = "268435456",
       .min = 1048576,
       .max = 17179869184.0},
      {.name = "retry_backoff_initial_ms",
       .type = ValueType::kInt,
       .description = "Wait after a partition's first failed upload before trying again.",
       .default_value = "500",
       .min = 1,
       .max = 600000},
      {.name = "retry_backoff_max_ms",
       .type = ValueType::kInt,
       .description = "Longest wait between upload attempts (the wait doubles per failure).",
       .default_value = "30000",
       .min = 1,
       .max = 3600000},
      {.name = "gzip_level",
       .type = ValueType::kInt,
       .description = "zlib level: 1 is fastest, 9 smallest.",
       .default_value = "6",
       .min = 1,
       .max = 9},
      {.name = "s3.endpoint",
       .description = "S3 endpoint; requests use path-style URLs (endpoint/bucket/key). "
                      "Required for s3.",
       .check = check_endpoint,
       .hint = "http://host:port or https://host:port"},
      {.name = "s3.bucket",
       .description = "Bucket the archive objects go to (it must exist). Required for s3."},
      {.name = "s3.region",
       .description = "Region in the SigV4 credential scope.",
       .default_value = "us-east-1"},
      {.name = "s3.access_key_id",
       .description = "Access key id; when absent, AWS_ACCESS_KEY_ID from the environment."},
      {.name = "s3.secret_access_key",
       .description = "Secret key; prefer s3.secret_access_key_file or ${VAR}. Never logged.",
       .secret = true},
      {.name = "s3.secret_access_key_file",
       .description = "File holding the secret key (trailing newline ignored); when neither "
                      "this nor s3.secret_access_key is set, AWS_SECRET_ACCESS_KEY."},
      {.name = "s3.ca_file",
       .description = "PEM CA bundle to verify an https endpoint; empty uses the system store."},
      {.name = "s3.connect_timeout_ms",
       .type = ValueType::kInt,
       .description = "Longest TCP connect plus TLS handshake before a retryable error.",
       .default_value = "5000",
       .min = 100,
       .max = 600000},
      {.name = "s3.request_timeout_ms",
       .type = ValueType::kInt,
       .description = "Longest request write plus response read before a retryable error.",
       .default_value = "30000",
       .min = 100,
       .max = 3600000},
      {.name = "filesystem.path",
       .description = "Directory of the filesystem store (created when missing).",
       .default_value = "/var/lib/telemetryd/archive"},
  };
}

const SectionSpec& archive_section() {
  static const SectionSpec section{
      "archive", "Exactly-once archive of consumed events to S3-compatible storage or a directory.",
      archive_keys()};
  return section;
}

bool archive_enabled(const Config& config) {
  return config.has("archive.enabled") && config.flag("archive.enabled");
}

S3Settings s3_settings(const Config& config) {
  S3Settings s;
  std::string error;
  const std::string endpoint = optional_str(config, "s3.endpoint");
  if (endpoint.empty()) {
    config_problem(config, "s3.endpoint", "required when archive.store is s3",
                   "http://host:port or https://host:port");
  }
  if (!parse_endpoint(endpoint, s.endpoint, error)) config_problem(config, "s3.endpoint", error);
  s.bucket = optional_str(config, "s3.bucket");
  if (s.bucket.empty()) {
    config_problem(config, "s3.bucket", "required when archive.store is s3");
  }
  if (s.bucket.find('/') != std::string::npos) {
    config_problem(config, "s3.bucket", "a bucket name has no '/'", "put paths in archive.prefix");
  }
  s.credentials.region = config.str("archive.s3.region");
  s.credentials.access_key_id = optional_str(config, "s3.access_key_id");
  if (s.credentials.access_key_id.empty()) {
    if (const char* env = std::getenv("AWS_ACCESS_KEY_ID")) s.credentials.access_key_id = env;
  }
  if (s.credentials.access_key_id.empty()) {
    config_problem(config, "s3.access_key_id", "required when archive.store is s3",
                   "or set AWS_ACCESS_KEY_ID");
  }
  const std::string inline_secret = optional_str(config, "s3.secret_access_key");
  const std::string secret_file = optional_str(config, "s3.secret_access_key_file");
  if (!inline_secret.empty() && !secret_file.empty()) {
    config_problem(config, "s3.secret_access_key_file",
                   "set either s3.secret_access_key or s3.secret_access_key_file, not both");
  }
  if (!secret_file.empty()) {
    std::ifstream in(secret_file);
    if (!in) config_problem(config, "s3.secret_access_key_file", "cannot read " + secret_file);
    std::stringstream ss;
    ss << in.rdbuf();
    s.credentials.secret_access_key = trim_right(ss.str());
    if (s.credentials.secret_access_key.empty()) {
      config_problem(config, "s3.secret_access_key_file", secret_file + " is empty");
    }
  } else if (!inline_secret.empty()) {
    s.credentials.secret_access_key = inline_secret;
  } else if (const char* env = std::getenv("AWS_SECRET_ACCESS_KEY")) {
    s.credentials.secret_access_key = env;
  }
  if (s.credentials.secret_access_key.empty()) {
    config_problem(config, "s3.secret_access_key", "required when archive.store is s3",
                   "s3.secret_access_key_file, s3.secret_access_key or AWS_SECRET_ACCESS_KEY");
  }
  s.ca_file = optional_str(config, "s3.ca_file");
  s.connect_timeout = std::chrono::milliseconds(config.integer("archive.s3.connect_timeout_ms"));
  s.request_timeout = std::chrono::milliseconds(config.integer("archive.s3.request_timeout_ms"));
  return s;
}

std::unique_ptr<ArchiveStore> make_archive_store(const Config& config) {
  if (config.str("archive.store") == "filesystem") {
    return std::make_unique<FilesystemStore>(config.str("archive.filesystem.path"));
  }
  return std::make_unique<S3Store>(s3_settings(config));
}

BatcherSettings batcher_settings(const Config& config) {
  BatcherSettings b;
  b.prefix = config.str("archive.prefix");
  b.max_records = static_cast<std::size_t>(config.integer("archive.max_records"));
  b.max_bytes = static_cast<std::size_t>(config.integer("archive.max_bytes"));
  b.max_age = std::chrono::milliseconds(config.integer("archive.max_age_ms"));
  b.max_buffered_bytes = static_cast<std::size_t>(config.integer("archive.max_buffered_bytes"));
  b.retry_backoff_initial =
      std::chrono::milliseconds(config.integer("archive.retry_backoff_initial_ms"));
  b.retry_backoff_max = std::chrono::milliseconds(config.integer("archive.retry_backoff_max_ms"));
  if (b.retry_backoff_max < b.retry_backoff_initial) b.retry_backoff_max = b.retry_backoff_initial;
  b.gzip_level = static_cast<int>(config.integer("archive.gzip_level"));
  return b;
}

}  // namespace telemetryd::archive
