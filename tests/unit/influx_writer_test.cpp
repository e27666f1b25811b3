#include "influx/influx_writer.hpp"

#include <zlib.h>

#include <catch2/catch.hpp>

#include "influx/influx_store.hpp"

using namespace telemetryd;
using namespace telemetryd::influx;

TEST_CASE("write answers are classified: retry what no point caused, refuse what points did",
          "[influx]") {
  CHECK(classify_write(204, "") == WriteVerdict::kOk);
  for (unsigned status : {500u, 502u, 503u, 504u, 429u}) {
    INFO(status);
    CHECK(classify_write(status, "timeout") == WriteVerdict::kRetryable);
  }
  // Credentials, permissions and a missing database are an operator's to fix: pause, keep data.
  CHECK(classify_write(401, "authorization failed") == WriteVerdict::kRetryable);
  CHECK(classify_write(403, "forbidden") == WriteVerdict::kRetryable);
  CHECK(classify_write(404, "database not found: \"x\"") == WriteVerdict::kRetryable);
  CHECK(classify_write(400, "unable to parse 'x': missing fields") == WriteVerdict::kPermanent);
  CHECK(classify_write(413, "Request Entity Too Large") == WriteVerdict::kPermanent);
  // A status nobody expects (a proxy's 405 or 409 in front of the server) is no answer about
  // the points: retried, never dead-lettered.
  for (unsigned status : {301u, 405u, 409u, 418u}) {
    INFO(status);
    CHECK(classify_write(status, "odd") == WriteVerdict::kRetryable);
  }
  CHECK(classify_write(400, "partial write: points beyond retention policy dropped=3") ==
        WriteVerdict::kPartial);
  CHECK(classify_write(422,
                       "failure writing points to database: partial write: field type "
                       "conflict") == WriteVerdict::kPartial);
}

TEST_CASE("the server's error text is taken from v1 and v2 JSON bodies", "[influx]") {
  CHECK(server_message(R"({"error":"database not found: \"telemetry\""})") ==
        "database not found: \"telemetry\"");
  CHECK(server_message(R"({"code":"invalid","message":"bucket not found"})") == "bucket not found");
  CHECK(server_message("<html>bad gateway</html>\n") == "<html>bad gateway</html>");
}

TEST_CASE("partial write messages name the dropped points", "[influx]") {
  // Both verbatim from Debian's InfluxDB 1.6.7.
  const PartialWrite conflict = parse_partial_write(
      "partial write: field type conflict: input field \"x\" on measurement \"gpu_metrics\" is "
      "type float, already exists as type integer dropped=2");
  REQUIRE(conflict.type_conflicts.size() == 1);
  CHECK(conflict.type_conflicts[0] == std::pair<std::string, std::string>("gpu_metrics", "x"));
  CHECK(conflict.dropped == 2);
  CHECK_FALSE(conflict.other);
  const PartialWrite parse = parse_partial_write(
      "partial write: unable to parse 'bad line here=': invalid field format dropped=0");
  REQUIRE(parse.unparsable_lines.size() == 1);
  CHECK(parse.unparsable_lines[0] == "bad line here=");
  const PartialWrite retention =
      parse_partial_write("partial write: points beyond retention policy dropped=3");
  CHECK(retention.other);
  CHECK(retention.dropped == 3);

  const std::vector<std::string> lines{
      "gpu_metrics,host=a event_id=\"1\",x=1.5 1\n",
      "gpu_metrics,host=a\\ x=1 event_id=\"2\",y=2 2\n",       // x only in a tag value
      "gpu_metrics,host=a event_id=\"3\",s=\",x=1\",y=3 3\n",  // x only inside a string
      "token_usage,host=a event_id=\"4\",x=1.5 4\n",           // another measurement
      "bad line here=\n",
      "gpu_metrics,host=b event_id=\"6\",y=1,x=2.5 6\n"};
  CHECK(points_named_by(conflict, {0, 1, 2, 3, 4, 5}, lines) == std::vector<std::size_t>{0, 5});
  CHECK(points_named_by(parse, {0, 1, 2, 3, 4, 5}, lines) == std::vector<std::size_t>{4});
  CHECK(points_named_by(retention, {0, 1, 2, 3, 4, 5}, lines).empty());
}

TEST_CASE("InfluxDB URLs are parsed strictly", "[influx]") {
  std::string error;
  auto url = parse_url("https://influx.example:8443/proxy/", error);
  REQUIRE(url);
  CHECK(url->tls);
  CHECK(url->host == "influx.example");
  CHECK(url->port == "8443");
  CHECK(url->base_path == "/proxy");
  url = parse_url("http://127.0.0.1", error);
  REQUIRE(url);
  CHECK(url->port == "80");
  CHECK_FALSE(parse_url("127.0.0.1:8086", error));
  CHECK(error == "must start with http:// or https://");
  CHECK_FALSE(parse_url("http://user:pw@host:8086", error));
  CHECK_FALSE(parse_url("http://host:99999", error));
  CHECK_FALSE(parse_url("http://:8086", error));
}

TEST_CASE("gzip bodies inflate back to the line protocol", "[influx]") {
  std::string lines;
  for (int i = 0; i < 200; ++i)
    lines += "gpu_metrics,host=a event_id=\"" + std::to_string(i) + "\" 1\n";
  const std::string gz = gzip_compress(lines);
  REQUIRE(gz.size() > 18);
  CHECK(static_cast<unsigned char>(gz[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(gz[1]) == 0x8b);
  CHECK(gz.size() < lines.size() / 4);
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);
  std::string back(lines.size() + 16, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = reinterpret_cast<Bytef*>(back.data());
  zs.avail_out = static_cast<uInt>(back.size());
  CHECK(inflate(&zs, Z_FINISH) == Z_STREAM_END);
  back.resize(zs.total_out);
  inflateEnd(&zs);
  CHECK(back == lines);
}

TEST_CASE("a server that is not there is a retryable error naming it, within the timeout",
          "[influx]") {
  WriterSettings settings;
  settings.url = "http://127.0.0.1:1";  // nothing listens on port 1
  settings.timeout = std::chrono::milliseconds(500);
  settings.token = "s3cret-token";
  settings.api = Api::kV2;
  InfluxWriter writer(settings);
  Result<Reply> reply = writer.write("m f=1 1\n");
  REQUIRE_FALSE(reply);
  CHECK(reply.error().kind == Error::Kind::kRetryable);
  CHECK(reply.error().message.find("influxdb 127.0.0.1:1: connect") == 0);
  CHECK(reply.error().message.find("s3cret") == std::string::npos);
}

TEST_CASE(
    "points of one series and time with different ids get their own slots, across "
    "batches; an id seen before gets its slot again",
    "[influx]") {
  telemetryd::events::DecodedEvent a, b, c;
  a.id = "01a20320-0000-7000-8000-00000000000a";
  b.id = "01a20320-0000-7000-8000-00000000000b";
  c.id = "01a20320-0000-7000-8000-00000000000c";
  const std::string t = "token_usage,model=m,tenant_id=t event_id=\"x\" ";
  const std::string u = "token_usage,model=m,tenant_id=u event_id=\"x\" ";
  SlotTracker slots;
  std::vector<telemetryd::StoredEvent> batch{{&a}, {&b}, {&c}, {&a}};
  std::vector<std::string> lines{t + "1000\n", t + "1000\n", u + "1000\n", t + "1000\n"};
  slots.assign({0, 1, 2, 3}, batch, lines);
  CHECK(lines[0] == t + "1000\n");  // first come keeps its slot
  CHECK(lines[1] == t + "1001\n");
  CHECK(lines[2] == u + "1000\n");  // another series: untouched
  CHECK(lines[3] == t + "1000\n");  // a again: the same point

  // Next batch: d lands on the series and time a and b took; b is redelivered.
  telemetryd::events::DecodedEvent d;
  d.id = "01a20320-0000-7000-8000-00000000000d";
  std::vector<telemetryd::StoredEvent> next{{&d}, {&b}};
  std::vector<std::string> next_lines{t + "1000\n", t + "1000\n"};
  slots.assign({0, 1}, next, next_lines);
  CHECK(next_lines[0] == t + "1002\n");
  CHECK(next_lines[1] == t + "1001\n");  // b's earlier slot
}
