#pragma once
// Routes requests by exact path and method. Unknown paths get a JSON 404, known paths with the
// wrong method a JSON 405 with Allow, so clients always receive a machine-readable error.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace telemetryd::http {

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;

struct RequestContext {
  const Request& request;
  std::string_view path;
  std::map<std::string, std::string, std::less<>> query;
};

using Handler = std::function<boost::asio::awaitable<Response>(const RequestContext&)>;

class Router {
 public:
  void add(beast_http::verb method, std::string path, Handler handler);
  /// Whether any method is registered for `path` (no query string).
  bool has_path(std::string_view path) const { return routes_.contains(path); }

  /// `route` is set to the matched path or "unmatched", a bounded label for metrics.
  boost::asio::awaitable<Response> dispatch(const Request& request, std::string& route) const;

 private:
  std::map<std::string, std::map<beast_http::verb, Handler>, std::less<>> routes_;
};

/// Splits "a=1&b=x%20y" into decoded pairs; the last duplicate wins.
std::map<std::string, std::string, std::less<>> parse_query(std::string_view query);

Response json_response(beast_http::status status, std::string body);
/// `{"error":{"code":..,"message":..,"field":..}}`; field omitted when empty.
Response json_error(beast_http::status status, std::string_view code, std::string_view message,
                    std::string_view field = {});

}  // namespace telemetryd::http
