#pragma once
#include <chrono>
#include <string>

#include "http/router.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/readiness.hpp"

namespace telemetryd::app {

/// GET /health (alive), /ready (dependency checks), /metrics (Prometheus text format).
void add_standard_routes(http::Router& router, const Readiness& readiness,
                         const metrics::Registry& registry, std::string role);

}  // namespace telemetryd::app
