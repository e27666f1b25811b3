#pragma once
// Which components each role runs, and the daemon's own `daemon:` section.

#include <string>
#include <vector>

#include "telemetryd/config.hpp"

namespace telemetryd::app {

/// Component names of a role in start order; empty for an unknown role.
std::vector<std::string> components_for_role(std::string_view role);
/// The catalog the config loader validates role files against.
const RoleCatalog& role_catalog();

}  // namespace telemetryd::app
