#include "scrape/exposition.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

namespace telemetryd::scrape {

namespace {

// What went wrong on the current line; the caller adds the line number.
struct LineError {
  std::string what;
};

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

// A real number as both formats write it: decimal with optional exponent, or +Inf/-Inf/NaN
// (any case, as Go's ParseFloat and the OpenMetrics ABNF allow). Hex floats are refused although
// Go would take them: no exporter writes them and OpenMetrics forbids them.
bool parse_number(std::string_view token, double& out) {
  std::string_view body = token;
  bool negative = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (iequals(body, "inf") || iequals(body, "infinity")) {
    out = negative ? -std::numeric_limits<double>::infinity()
                   : std::numeric_limits<double>::infinity();
    return true;
  }
  if (iequals(body, "nan") && body.size() == token.size()) {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (body.empty() || !(is_digit(body[0]) || body[0] == '.')) return false;
  for (const char c : body)
    if (!is_digit(c) && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-') return false;
  double value = 0;
  const auto [end, ec] =
      std::from_chars(body.data(), body.data() + body.size(), value, std::chars_format::general);
  if (ec != std::errc{} || end != body.data() + body.size()) return false;
  out = negative ? -value : value;
  return true;
}

// Walks one line. Every read checks the position against the end first.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : line_(line) {}

  bool done() const { return pos_ >= line_.size(); }
  char peek() const { return done() ? '\0' : line_[pos_]; }
  void advance() { ++pos_; }
  std::size_t skip_blanks() {
    const std::size_t start = pos_;
    while (!done() && is_blank(line_[pos_])) ++pos_;
    return pos_ - start;
  }
  std::string_view token() {
    const std::size_t start = pos_;
    while (!done() && !is_blank(line_[pos_])) ++pos_;
    return line_.substr(start, pos_ - start);
  }
  // [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; without ':' for label names.
  std::string_view identifier(bool colons) {
    const std::size_t start = pos_;
    while (!done()) {
      const char c = line_[pos_];
      const bool ok =
          is_alpha(c) || c == '_' || (colons && c == ':') || (pos_ > start && is_digit(c));
      if (!ok) break;
      ++pos_;
    }
    return line_.substr(start, pos_ - start);
  }
  // A double-quoted string at the current position, unescaped. Like Prometheus, only \\, \" and
  // \n are escapes; a backslash before anything else is kept as written.
  bool quoted(std::string& out, LineError& error) {
    advance();  // the opening quote
    out.clear();
    while (!done()) {
      const char c = line_[pos_++];
      if (c == '"') return true;
      if (c == '\\' && !done()) {
        const char next = line_[pos_++];
        if (next == 'n') {
          out += '\n';
        } else if (next == '\\' || next == '"') {
          out += next;
        } else {
          out += '\\';
          out += next;
        }
      } else {
        out += c;
      }
      if (out.size() > kMaxLabelValueBytes) {
        error.what =
            "a quoted string is longer than " + std::to_string(kMaxLabelValueBytes) + " bytes";
        return false;
      }
    }
    error.what = "a quoted string is not closed";
    return false;
  }

 private:
  std::string_view line_;
  std::size_t pos_ = 0;
};

bool parse_type_word(std::string_view word, MetricType& type) {
  static constexpr std::array<std::pair<std::string_view, MetricType>, 9> kTypes{{
      {"counter", MetricType::kCounter},
      {"gauge", MetricType::kGauge},
      {"histogram", MetricType::kHistogram},
      {"summary", MetricType::kSummary},
      {"untyped", MetricType::kUntyped},
      {"info", MetricType::kInfo},
      {"stateset", MetricType::kStateSet},
      {"gaugehistogram", MetricType::kGaugeHistogram},
      {"unknown", MetricType::kUnknown},
  }};
  for (const auto& [name, value] : kTypes) {
    if (word == name) {
      type = value;
      return true;
    }
  }
  return false;
}

// A metric name where only a name may stand (after # TYPE / # HELP): legacy or quoted.
bool read_family_name(LineReader& in, std::string& name, LineError& error) {
  if (in.peek() == '"') return in.quoted(name, error) && !name.empty();
  name = std::string(in.identifier(/*colons=*/true));
  return !name.empty();
}

enum class CommentKind { kOther, kEof };

// `# TYPE`, `# HELP`, `# UNIT`, `# EOF` and free comments. Only TYPE is kept.
bool parse_comment(std::string_view line, bool openmetrics, Exposition& out, CommentKind& kind,
                   LineError& error) {
  kind = CommentKind::kOther;
  if (openmetrics && line == "# EOF") {
    kind = CommentKind::kEof;
    return true;
  }
  LineReader in(line);
  in.advance();                            // '#'
  if (in.skip_blanks() == 0) return true;  // "#foo": a plain comment
  const std::string_view keyword = in.token();
  if (keyword != "TYPE" && keyword != "HELP") return true;
  if (in.skip_blanks() == 0) {
    error.what = std::string(keyword) + " without a metric name";
    return false;
  }
  std::string name;
  if (!read_family_name(in, name, error)) {
    if (error.what.empty()) error.what = std::string(keyword) + " without a valid metric name";
    return false;
  }
  if (keyword == "HELP") return true;  // the text is free-form; nothing reads it
  if (in.skip_blanks() == 0) {
    error.what = "TYPE of " + name + " without a type";
    return false;
  }
  const std::string_view word = in.token();
  MetricType type{};
  if (!parse_type_word(word, type)) {
    error.what = "TYPE of " + name + " is not a known type: " + std::string(word.substr(0, 40));
    return false;
  }
  in.skip_blanks();
  if (!in.done()) {
    error.what = "unexpected text after the TYPE of " + name;
    return false;
  }
  const auto [it, inserted] = out.types.emplace(name, type);
  if (!inserted && it->second != type) {
    error.what = "a second, different TYPE for " + name;
    return false;
  }
  return true;
}

// Sorted, not pairwise: a line of a megabyte can hold tens of thousands of labels.
bool no_label_twice(const std::vector<Label>& labels, LineError& error) {
  std::vector<std::string_view> names;
  names.reserve(labels.size());
  for (const Label& label : labels) names.push_back(label.name);
  std::sort(names.begin(), names.end());
  const auto twice = std::adjacent_find(names.begin(), names.end());
  if (twice == names.end()) return true;
  error.what = "label " + std::string(*twice) + " appears twice";
  return false;
}

// `{a="x",b="y"}` and, from Prometheus 3's UTF-8 names, `{"my.metric", a="x"}`. The reader is at
// the '{'.
bool parse_labels(LineReader& in, Sample& sample, LineError& error) {
  in.advance();  // '{'
  std::string text;
  for (;;) {
    in.skip_blanks();
    if (in.peek() == '}') break;
    std::string label_name;
    if (in.peek() == '"') {
      if (!in.quoted(text, error)) return false;
      in.skip_blanks();
      if (in.peek() != '=') {
        // A quoted string alone is the metric name; only one, and only without a name outside.
        if (!sample.name.empty() || text.empty()) {
          error.what = "a quoted metric name where a label was expected";
          return false;
        }
        sample.name = std::move(text);
        if (in.peek() == ',') {
          in.advance();
        } else if (in.peek() != '}') {
          error.what = "expected ',' or '}' after the quoted metric name";
          return false;
        }
        continue;
      }
      label_name = text;
    } else {
      label_name = std::string(in.identifier(/*colons=*/false));
      if (label_name.empty()) {
        error.what = "expected a label name";
        return false;
      }
      in.skip_blanks();
    }
    if (label_name.empty()) {
      error.what = "an empty label name";
      return false;
    }
    if (in.peek() != '=') {
      error.what = "expected '=' after label " + label_name;
      return false;
    }
    in.advance();
    in.skip_blanks();
    if (in.peek() != '"') {
      error.what = "the value of label " + label_name + " is not quoted";
      return false;
    }
    if (!in.quoted(text, error)) return false;
    sample.labels.push_back({std::move(label_name), text});
    in.skip_blanks();
    if (in.peek() == ',') {
      in.advance();
    } else if (in.peek() != '}') {
      error.what = "expected ',' or '}' in the labels";
      return false;
    }
  }
  in.advance();  // '}'
  return no_label_twice(sample.labels, error);
}

// Text format: integer milliseconds. OpenMetrics: (fractional) seconds.
bool parse_timestamp(std::string_view token, bool openmetrics, std::int64_t& ms) {
  if (openmetrics) {
    double seconds = 0;
    if (!parse_number(token, seconds) || !std::isfinite(seconds)) return false;
    const double millis = std::round(seconds * 1000.0);
    if (!(std::fabs(millis) < 9.2e18)) return false;
    ms = static_cast<std::int64_t>(millis);
    return true;
  }
  std::string_view digits = token;
  if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);  // strconv.ParseInt takes it
  if (digits.empty() || digits[0] == '+') return false;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
  return ec == std::errc{} && end == digits.data() + digits.size();
}

bool parse_sample(std::string_view line, bool openmetrics, Sample& sample, LineError& error) {
  LineReader in(line);
  if (in.peek() != '{') {
    sample.name = std::string(in.identifier(/*colons=*/true));
    if (sample.name.empty()) {
      error.what = "expected a metric name";
      return false;
    }
  }
  if (in.peek() == '{' && !parse_labels(in, sample, error)) return false;
  if (sample.name.empty()) {
    error.what = "a sample without a metric name";
    return false;
  }
  if (in.skip_blanks() == 0) {
    error.what = in.done() ? "no value for " + sample.name
                           : "unexpected character after the metric name " + sample.name;
    return false;
  }
  const std::string_view value = in.token();
  if (!parse_number(value, sample.value)) {
    error.what = "the value of " + sample.name + " is not a number";
    return false;
  }
  in.skip_blanks();
  // OpenMetrics exemplar: ` # {labels} value [timestamp]`; read past, not kept.
  if (in.done() || (openmetrics && in.peek() == '#')) return true;
  std::int64_t ms = 0;
  if (!parse_timestamp(in.token(), openmetrics, ms)) {
    error.what = "the timestamp of " + sample.name + " is not valid";
    return false;
  }
  sample.timestamp_ms = ms;
  in.skip_blanks();
  if (in.done() || (openmetrics && in.peek() == '#')) return true;
  error.what = "unexpected text after the timestamp of " + sample.name;
  return false;
}

bool is_blank_line(std::string_view line) {
  for (const char c : line)
    if (!is_blank(c)) return false;
  return true;
}

Error line_error(std::size_t number, const std::string& what) {
  return Error::permanent("exposition line " + std::to_string(number) + ": " + what);
}

}  // namespace

Result<Exposition> parse_exposition(std::string_view text, bool openmetrics) {
  Exposition out;
  bool eof = false;
  std::size_t number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (is_blank_line(line)) continue;
    // The text format allows indentation (Prometheus' lexer skips it); OpenMetrics does not.
    if (!openmetrics)
      while (is_blank(line.front())) line.remove_prefix(1);
    if (eof) return line_error(number, "text after # EOF");
    if (!simdjson::validate_utf8(line.data(), line.size()))
      return line_error(number, "not valid UTF-8");
    LineError error;
    if (line[0] == '#') {
      CommentKind kind{};
      if (!parse_comment(line, openmetrics, out, kind, error))
        return line_error(number, error.what);
      eof = kind == CommentKind::kEof;
      continue;
    }
    if (out.samples.size() >= kMaxSamples)
      return line_error(number, "more than " + std::to_string(kMaxSamples) + " samples");
    Sample sample;
    if (!parse_sample(line, openmetrics, sample, error)) return line_error(number, error.what);
    out.samples.push_back(std::move(sample));
  }
  return out;
}

bool is_openmetrics(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && is_blank(media.front())) media.remove_prefix(1);
  while (!media.empty() && is_blank(media.back())) media.remove_suffix(1);
  return iequals(media, "application/openmetrics-text");
}

const std::string* find_label(const Sample& sample, std::string_view name) {
  for (const Label& label : sample.labels)
    if (label.name == name) return &label.value;
  return nullptr;
}

std::optional<MetricType> family_type(const Exposition& exposition, std::string_view sample_name) {
  if (const auto it = exposition.types.find(sample_name); it != exposition.types.end())
    return it->second;
  static constexpr std::array<std::string_view, 8> kSuffixes{
      "_total", "_created", "_bucket", "_count", "_sum", "_info", "_gcount", "_gsum"};
  for (const std::string_view suffix : kSuffixes) {
    if (sample_name.size() > suffix.size() && sample_name.ends_with(suffix)) {
      const auto family = sample_name.substr(0, sample_name.size() - suffix.size());
      if (const auto it = exposition.types.find(family); it != exposition.types.end())
        return it->second;
    }
  }
  return std::nullopt;
}

}  // namespace telemetryd::scrape
