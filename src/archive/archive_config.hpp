#pragma once
// The `archive:` section. The worker component lists archive_section() among its subsections
// and builds the store and batcher from the validated Config with the two factories below.

#include <memory>
#include <vector>

#include "archive/archive_batcher.hpp"
#include "archive/archive_store.hpp"
#include "archive/s3_store.hpp"
#include "telemetryd/config.hpp"

namespace telemetryd::archive {

/// Keys relative to the section ("enabled", "s3.endpoint", ...).
std::vector<KeySpec> archive_keys();
const SectionSpec& archive_section();

/// archive.enabled (false when the section is not part of the role).
bool archive_enabled(const Config& config);

/// The S3 settings, credentials resolved (file, inline or AWS_* environment). Throws
/// ConfigError naming the archive.s3.* key when they are incomplete or contradictory.
S3Settings s3_settings(const Config& config);

/// The configured store. Throws ConfigError (bad combination of keys) or StartupError (the
/// directory cannot be created, the CA file cannot be read). Opens no connection.
std::unique_ptr<ArchiveStore> make_archive_store(const Config& config);

BatcherSettings batcher_settings(const Config& config);

}  // namespace telemetryd::archive
