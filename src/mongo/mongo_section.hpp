#pragma once
// The `mongodb:` section, shared by the `mongodb` component (the worker's connection) and the
// `mongodb` sink (the processor's store), and the readiness ping both run.

#include <mongoc/mongoc.h>

#include <memory>

#include "telemetryd/config.hpp"
#include "telemetryd/readiness.hpp"

namespace telemetryd::mongo {

const SectionSpec& mongodb_section();

/// A `ping` to the server over its own small client pool, so a check never waits behind a
/// store's writes. Blocking: run it on the blocking pool.
class MongoPing {
 public:
  /// Throws StartupError when the pool cannot be built.
  explicit MongoPing(const Config& config);
  ProbeResult check();

 private:
  struct PoolDeleter {
    void operator()(mongoc_client_pool_t* pool) const { mongoc_client_pool_destroy(pool); }
  };
  std::unique_ptr<mongoc_client_pool_t, PoolDeleter> pool_;
};

}  // namespace telemetryd::mongo
