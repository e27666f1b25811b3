#include <catch2/catch.hpp>

#include "app/roles.hpp"
#include "telemetryd/component.hpp"

using namespace telemetryd;

// A linker that drops a component's object file would silently remove it from every role.
TEST_CASE("every expected component is registered", "[registry]") {
  const auto names = ComponentRegistry::instance().names();
  for (const char* expected : {"http", "kafka", "mongodb", "processor", "worker"}) {
    INFO(expected);
    CHECK(std::find(names.begin(), names.end(), expected) != names.end());
  }
}

TEST_CASE("every role's components exist and declare a section", "[registry]") {
  for (const auto& role : app::role_catalog().roles) {
    INFO(role);
    const auto components = app::components_for_role(role);
    CHECK_FALSE(components.empty());
    for (const auto& name : components) {
      const ComponentInfo* info = ComponentRegistry::instance().find(name);
      REQUIRE(info != nullptr);
      CHECK(info->section.name == name);
      for (const auto& key : info->section.keys) CHECK_FALSE(key.description.empty());
    }
  }
}
