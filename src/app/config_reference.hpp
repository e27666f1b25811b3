#pragma once
#include <string>

namespace telemetryd::app {

/// Markdown reference of every role's sections and keys, built from the components' own schemas,
/// so docs/config-reference.md cannot drift from what the loader accepts (a test compares them).
std::string config_reference_markdown();

}  // namespace telemetryd::app
