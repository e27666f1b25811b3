#pragma once
// InfluxDB 1.x for integration tests, from the test's side: InfluxQL over the HTTP /query API
// as an operator would run it, the single value of a one-row answer, and the points of a
// measurement. Header-only: it REQUIREs, so it lives with Catch2.

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>

#include "influx/influx_writer.hpp"
#include "support/http_client.hpp"

namespace test_support {

inline int port_of(const std::string& url) {
  return std::stoi(url.substr(url.rfind(':') + 1));
}

// One InfluxQL statement over HTTP; the JSON answer. `db` may be empty (CREATE/DROP DATABASE).
inline std::string influx_query(const std::string& url, const std::string& db, const std::string& q,
                                const std::string& basic_user = {}) {
  std::string target = "/query?db=" + telemetryd::influx::url_encode(db);
  if (!basic_user.empty()) {
    const auto colon = basic_user.find(':');
    target += "&u=" + telemetryd::influx::url_encode(basic_user.substr(0, colon)) +
              "&p=" + telemetryd::influx::url_encode(basic_user.substr(colon + 1));
  }
  const HttpResult r =
      http_request("127.0.0.1", port_of(url), "POST", target,
                   "q=" + telemetryd::influx::url_encode(q), "application/x-www-form-urlencoded");
  INFO(q << " -> " << r.status << " " << r.body << r.error);
  REQUIRE(r.status == 200);
  return r.body;
}

// Best effort, for destructors: never REQUIREs.
inline void drop_influx_database(const std::string& url, const std::string& db) {
  http_request("127.0.0.1", port_of(url), "POST", "/query",
               "q=" + telemetryd::influx::url_encode("DROP DATABASE \"" + db + "\""),
               "application/x-www-form-urlencoded");
}

// The single value of a one-row answer (count, sum), or -1 when there is no series (no points).
inline double scalar(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  simdjson::dom::array series;
  if (doc["results"].at(0)["series"].get(series)) return -1;
  return double(series.at(0)["values"].at(0).at(1));
}

// The points of `measurement` (every point has an event_id field); 0 when there are none.
inline double influx_points(const std::string& url, const std::string& db,
                            const std::string& measurement) {
  return std::max(0.0, scalar(influx_query(url, db, "SELECT count(event_id) FROM " + measurement)));
}

}  // namespace test_support
