#pragma once
// GET /gpu/info, /v1/gpus, /v1/usage, /v1/gpus/{uuid}/metrics and /v1/devices over a Store. Queries
// run on the blocking pool so a slow database never stalls /health or /metrics on the io thread.

#include <boost/asio/thread_pool.hpp>

#include "http/router.hpp"
#include "processor/store.hpp"

namespace telemetryd::processor {

void add_query_routes(http::Router& router, boost::asio::thread_pool& blocking, Store& store);

}  // namespace telemetryd::processor
