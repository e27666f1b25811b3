// The query API's bearer tokens through the real binary: the all role with
// embedded.query.auth: bearer (its synthetic source writes usage of three tenants to SQLite),
// and a processor, whose default needs a token (without MongoDB: a refusal never reaches the
// store, and an admitted request gets the store's 503).

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/http_client.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

constexpr const char* kAdmin = "admin-token-0123456789";
constexpr const char* kAcme = "acme-token-0123456789";
constexpr const char* kStar = "star-token-0123456789";

struct QueryTokens {
  std::string path;
  QueryTokens() {
    path = (std::filesystem::temp_directory_path() /
            ("telemetryd-query-tokens-" + std::to_string(getpid())))
               .string();
    std::ofstream(path) << "# name token [tenants=a,b]\n"
                        << "admin " << kAdmin << "\n"
                        << "acme " << kAcme << " tenants=tenant-acme\n"
                        << "star " << kStar << " tenants=*\n";
  }
  ~QueryTokens() { std::filesystem::remove(path); }
};

HttpResult get(int port, const std::string& target, const std::string& token = {}) {
  Headers headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  return http_request("127.0.0.1", port, "GET", target, {}, {}, headers);
}

std::string error_code(const std::string& body) {
  const auto at = body.find("\"code\":\"");
  if (at == std::string::npos) return {};
  return body.substr(at + 8, body.find('"', at + 8) - at - 8);
}

bool has_group(const HttpResult& usage, const std::string& tenant) {
  return usage.body.find("\"_id\":\"" + tenant + "\"") != std::string::npos;
}

}  // namespace

TEST_CASE("query routes: no token or a wrong one is 401, a scoped token reads its tenants only",
          "[query][auth][embedded]") {
  const QueryTokens tokens;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("telemetryd-query-auth-" + std::to_string(getpid()));
  ChildProcess child({telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
                      "--set", "embedded.data_dir=" + dir.string(), "--set",
                      "synthetic.sample_interval_ms=200", "--set", "embedded.query.auth=bearer",
                      "--set", "embedded.query.tokens_file=" + tokens.path});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);

  for (const char* target :
       {"/gpu/info", "/v1/gpus", "/v1/usage", "/v1/devices", "/v1/gpus/GPU-1/metrics"}) {
    INFO(target);
    const HttpResult missing = get(port, target);
    CHECK(missing.status == 401);
    CHECK(error_code(missing.body) == "missing_token");
    CHECK(missing.headers.count("www-authenticate") == 1);
    CHECK(missing.headers.at("www-authenticate").rfind("Bearer", 0) == 0);
    const HttpResult wrong = get(port, target, "not-a-token-0123456789");
    CHECK(wrong.status == 401);
    CHECK(error_code(wrong.body) == "invalid_token");
  }
  // The operator endpoints stay open.
  CHECK(get(port, "/health").status == 200);
  CHECK(get(port, "/metrics").status == 200);

  // Every tenant for the unscoped and the tenants=* tokens, once the pipeline stored usage.
  HttpResult all;
  for (int i = 0; i < 100 && !has_group(all, "tenant-globex"); ++i) {
    std::this_thread::sleep_for(200ms);
    all = get(port, "/v1/usage?group_by=tenant", kAdmin);
  }
  INFO(child.stdout_text().substr(0, 3000));
  REQUIRE(all.status == 200);
  CHECK(has_group(all, "tenant-acme"));
  CHECK(has_group(all, "tenant-globex"));
  CHECK(has_group(get(port, "/v1/usage?group_by=tenant", kStar), "tenant-globex"));

  // The scoped token: only its tenant, whatever the grouping; another tenant asked for is 403.
  const HttpResult scoped = get(port, "/v1/usage?group_by=tenant", kAcme);
  CHECK(scoped.status == 200);
  CHECK(has_group(scoped, "tenant-acme"));
  CHECK_FALSE(has_group(scoped, "tenant-globex"));
  CHECK_FALSE(has_group(scoped, "tenant-initech"));
  CHECK(get(port, "/v1/usage?group_by=tenant&tenant=tenant-acme", kAcme).status == 200);
  const HttpResult forbidden = get(port, "/v1/usage?tenant=tenant-globex", kAcme);
  CHECK(forbidden.status == 403);
  CHECK(error_code(forbidden.body) == "forbidden_tenant");
  CHECK(forbidden.body.find("\"field\":\"tenant\"") != std::string::npos);
  // An admin narrows to one tenant with ?tenant=.
  const HttpResult one = get(port, "/v1/usage?group_by=tenant&tenant=tenant-globex", kAdmin);
  CHECK(has_group(one, "tenant-globex"));
  CHECK_FALSE(has_group(one, "tenant-acme"));
  // GPU routes hold no tenant's data: a scoped token reads them.
  CHECK(get(port, "/v1/gpus", kAcme).status == 200);

  const std::string metrics = get(port, "/metrics").body;
  for (const char* reason : {"missing_token", "invalid_token", "forbidden_tenant"}) {
    INFO(reason);
    CHECK(metrics.find("processor_query_unauthorized_total{reason=\"" + std::string(reason) +
                       "\"}") != std::string::npos);
  }
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(10s) == std::optional<int>(0));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a processor needs query.tokens_file by default and refuses queries without a token",
          "[query][auth][cli]") {
  const auto refused = run_command(
      {telemetryd_bin(), "run", "--role", "processor", "--set", "http.listen=127.0.0.1:0"});
  CHECK(refused.status == 78);
  CHECK(refused.output.find("processor.query.tokens_file") != std::string::npos);

  const QueryTokens tokens;
  ChildProcess child({telemetryd_bin(), "run", "--role", "processor", "--set",
                      "http.listen=127.0.0.1:0", "--set", "kafka.brokers=127.0.0.1:1", "--set",
                      "mongodb.uri=mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", "--set",
                      "processor.query.tokens_file=" + tokens.path});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  CHECK(get(port, "/v1/usage").status == 401);
  CHECK(get(port, "/gpu/info", "wrong-token-0123456789").status == 401);
  CHECK(get(port, "/v1/usage?tenant=tenant-globex", kAcme).status == 403);
  // Admitted: the request reaches the store, which is away.
  CHECK(get(port, "/v1/usage", kAdmin).status == 503);
  CHECK(get(port, "/health").status == 200);
  CHECK(get(port, "/ready").status == 503);
  CHECK(get(port, "/metrics").status == 200);
  child.send_signal(SIGTERM);
  child.wait_exit(10s);
}
