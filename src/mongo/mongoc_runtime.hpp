#pragma once
// libmongoc's process-wide state: its log handler, init and cleanup, held for a command's life.

namespace telemetryd::mongo {

/// Routes libmongoc's log to the JSON log, then calls mongoc_init(); the destructor calls
/// mongoc_cleanup(). One per command that talks to MongoDB, created before any client.
class MongocRuntime {
 public:
  MongocRuntime();
  ~MongocRuntime();
  MongocRuntime(const MongocRuntime&) = delete;
  MongocRuntime& operator=(const MongocRuntime&) = delete;
};

}  // namespace telemetryd::mongo
