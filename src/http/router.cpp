#include "http/router.hpp"

#include <cctype>

#include "telemetryd/json_writer.hpp"

namespace telemetryd::http {

namespace {
std::string url_decode(std::string_view text, bool plus_is_space = true);

std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (true) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_parameter(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}
}  // namespace

void Router::add(beast_http::verb method, std::string path, Handler handler) {
  if (path.find('{') == std::string::npos) {
    routes_[std::move(path)][method] = std::move(handler);
    return;
  }
  for (auto& pattern : patterns_) {
    if (pattern.text == path) {
      pattern.methods[method] = std::move(handler);
      return;
    }
  }
  Pattern pattern{path, {}, {}};
  for (const auto segment : split_segments(path)) pattern.segments.emplace_back(segment);
  pattern.methods[method] = std::move(handler);
  patterns_.push_back(std::move(pattern));
}

const Router::Methods* Router::match(
    std::string_view path, std::string& label,
    std::map<std::string, std::string, std::less<>>* params) const {
  if (const auto found = routes_.find(path); found != routes_.end()) {
    label = found->first;
    return &found->second;
  }
  if (patterns_.empty()) return nullptr;
  const auto segments = split_segments(path);
  for (const auto& pattern : patterns_) {
    if (pattern.segments.size() != segments.size()) continue;
    bool matches = true;
    for (std::size_t i = 0; i < segments.size() && matches; ++i) {
      const std::string_view want = pattern.segments[i];
      matches = is_parameter(want) ? !segments[i].empty() : want == segments[i];
    }
    if (!matches) continue;
    label = pattern.text;
    if (params) {
      for (std::size_t i = 0; i < segments.size(); ++i) {
        const std::string_view want = pattern.segments[i];
        if (is_parameter(want)) {
          (*params)[std::string(want.substr(1, want.size() - 2))] =
              url_decode(segments[i], /*plus_is_space=*/false);
        }
      }
    }
    return &pattern.methods;
  }
  return nullptr;
}

bool Router::has_path(std::string_view path) const {
  std::string label;
  return match(path, label, nullptr) != nullptr;
}

boost::asio::awaitable<Response> Router::dispatch(const Request& request,
                                                  std::string& route) const {
  const std::string_view target = request.target();
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  std::map<std::string, std::string, std::less<>> params;
  const Methods* methods = match(path, route, &params);
  if (methods == nullptr) {
    route = "unmatched";
    co_return json_error(beast_http::status::not_found, "not_found",
                         "no route for " + std::string(path));
  }
  const auto handler = methods->find(request.method());
  if (handler == methods->end()) {
    std::string allow;
    for (const auto& [method, unused] : *methods) {
      allow += (allow.empty() ? "" : ", ") + std::string(beast_http::to_string(method));
    }
    Response res = json_error(
        beast_http::status::method_not_allowed, "method_not_allowed",
        std::string(request.method_string()) + " is not allowed on " + std::string(path));
    res.set(beast_http::field::allow, allow);
    co_return res;
  }
  const RequestContext context{request, path,
                               question == std::string_view::npos
                                   ? decltype(RequestContext::query){}
                                   : parse_query(target.substr(question + 1)),
                               std::move(params)};
  co_return co_await handler->second(context);
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// '+' is a space in a query string only; in a path it is itself.
std::string url_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (plus_is_space && text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
               hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}
}  // namespace

std::map<std::string, std::string, std::less<>> parse_query(std::string_view query) {
  std::map<std::string, std::string, std::less<>> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (!pair.empty()) {
      out[url_decode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

std::string media_type(const Request& request) {
  const std::string_view header = request[beast_http::field::content_type];
  std::string_view type = header.substr(0, header.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  std::string out(type);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Response json_response(beast_http::status status, std::string body) {
  Response res{status, 11};
  res.set(beast_http::field::content_type, "application/json");
  res.body() = std::move(body);
  res.body().push_back('\n');
  res.prepare_payload();
  return res;
}

Response json_error(beast_http::status status, std::string_view code, std::string_view message,
                    std::string_view field) {
  JsonWriter json;
  json.begin_object().key("error").begin_object().key("code").value(code).key("message").value(
      message);
  if (!field.empty()) json.key("field").value(field);
  json.end_object().end_object();
  return json_response(status, json.take());
}

}  // namespace telemetryd::http
