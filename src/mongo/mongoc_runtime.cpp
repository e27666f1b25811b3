#include "mongo/mongoc_runtime.hpp"

#include <mongoc/mongoc.h>

#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "telemetryd/log.hpp"

namespace telemetryd::mongo {
namespace {

// libmongoc writes to stderr in its own format by default; route it to the JSON log instead.
void mongoc_log_to_json(mongoc_log_level_t level, const char* domain, const char* message, void*) {
  if (level >= MONGOC_LOG_LEVEL_DEBUG) return;
  const log::Level mapped = level <= MONGOC_LOG_LEVEL_CRITICAL  ? log::Level::kError
                            : level == MONGOC_LOG_LEVEL_WARNING ? log::Level::kWarn
                                                                : log::Level::kInfo;
  log::write(mapped, "mongodb", message, {{"domain", domain}});
}

// Debian's libmongoc initialises itself from a library constructor, before main(), and there
// creates the shared memory /dev/shm/mongoc-<pid> for its statistics counters; mongoc_cleanup()
// removes it at exit. A daemon killed with SIGKILL never does, so the files pile up, and a later
// process given the same pid cannot create its own: libmongoc then prints a plain-text warning on
// stderr, outside the JSON log, before any handler is set. Nothing here reads those counters, so
// the name goes at once (the mapping stays valid until exit). MONGOC_DISABLE_SHM=1 in the
// environment would avoid the file altogether, but it must be set before the process starts.
void remove_counters_name() {
  const std::string name = "/mongoc-" + std::to_string(getpid());
  shm_unlink(name.c_str());
}

}  // namespace

MongocRuntime::MongocRuntime() {
  mongoc_log_set_handler(mongoc_log_to_json, nullptr);
  mongoc_init();
  remove_counters_name();
}

MongocRuntime::~MongocRuntime() {
  mongoc_cleanup();
}

}  // namespace telemetryd::mongo
