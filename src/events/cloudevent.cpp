#include "events/cloudevent.hpp"

#include <unistd.h>

#include <cstring>

#include <cstdio>

#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::events {

UuidV7Generator::UuidV7Generator() : rng_(std::random_device{}()) {
  // One 32-bit draw is too little entropy for a 64-bit engine; mix in a second.
  rng_.seed((static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}());
}

std::string UuidV7Generator::next(std::chrono::system_clock::time_point now) {
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  const std::uint64_t rand_a = rng_();
  const std::uint64_t rand_b = rng_();
  const std::uint64_t high = (ms << 16) | 0x7000 | (rand_a & 0x0fff);
  const std::uint64_t low = (rand_b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(high >> 32),
                static_cast<unsigned>((high >> 16) & 0xffff), static_cast<unsigned>(high & 0xffff),
                static_cast<unsigned>(low >> 48),
                static_cast<unsigned long long>(low & 0xffffffffffffULL));
  return buf;
}

std::string encode_cloudevent(std::string_view id, std::string_view source, std::string_view type,
                              std::chrono::system_clock::time_point time, std::string_view subject,
                              std::string_view data_json) {
  JsonWriter json;
  json.begin_object()
      .key("specversion")
      .value("1.0")
      .key("id")
      .value(id)
      .key("source")
      .value(source)
      .key("type")
      .value(type)
      .key("time")
      .value(rfc3339_utc(time));
  // subject is optional, and the schema rejects an empty one: leave it out.
  if (!subject.empty()) json.key("subject").value(subject);
  json.key("datacontenttype").value("application/json").key("data").raw(data_json).end_object();
  return json.take();
}

std::string local_source(std::string_view component) {
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  return "//telemetryd/" + std::string(host) + "/" + std::string(component);
}

}  // namespace telemetryd::events
