#pragma once
// Routes requests by path and method. Unknown paths get a JSON 404, known paths with the
// wrong method a JSON 405 with Allow, so clients always receive a machine-readable error.
// A path is exact ("/v1/gpus") or a pattern whose `{name}` segments each match one non-empty
// path segment ("/v1/gpus/{uuid}/metrics"); exact paths win, then patterns in the order added.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd::http {

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;

struct RequestContext {
  const Request& request;
  std::string_view path;
  std::map<std::string, std::string, std::less<>> query;
  /// The `{name}` segments of a pattern route, percent-decoded; empty for exact routes.
  std::map<std::string, std::string, std::less<>> params;
};

using Handler = std::function<boost::asio::awaitable<Response>(const RequestContext&)>;

class Router {
 public:
  /// `path` is exact, or a pattern when it holds a `{name}` segment.
  void add(beast_http::verb method, std::string path, Handler handler);
  /// Whether any method is registered for `path` (no query string), exactly or by a pattern.
  bool has_path(std::string_view path) const;

  /// `route` is set to the matched path or pattern, or "unmatched": a bounded label for metrics.
  boost::asio::awaitable<Response> dispatch(const Request& request, std::string& route) const;

 private:
  using Methods = std::map<beast_http::verb, Handler>;
  struct Pattern {
    std::string text;                   // as added, the metrics label
    std::vector<std::string> segments;  // "{name}" or a literal
    Methods methods;
  };
  // The route for `path`: its label, methods and parameters; nullptr when none matches.
  const Methods* match(std::string_view path, std::string& label,
                       std::map<std::string, std::string, std::less<>>* params) const;

  std::map<std::string, Methods, std::less<>> routes_;
  std::vector<Pattern> patterns_;
};

/// Splits "a=1&b=x%20y" into decoded pairs; the last duplicate wins.
std::map<std::string, std::string, std::less<>> parse_query(std::string_view query);

/// The request's media type without parameters, lowercased:
/// "Application/JSON; charset=utf-8" -> "application/json".
std::string media_type(const Request& request);

Response json_response(beast_http::status status, std::string body);
/// `{"error":{"code":..,"message":..,"field":..}}`; field omitted when empty.
Response json_error(beast_http::status status, std::string_view code, std::string_view message,
                    std::string_view field = {});

}  // namespace telemetryd::http
