// Load client for bench/http/run.py: N threads, each with its own blocking connection, send
// GET requests for a fixed time. keepalive: one connection per thread, requests back to back;
// connect: a new TCP (and, with --ca, TLS) connection per request, i.e. new handshakes/s.
// --body FILE POSTs that file instead (--content-type, default application/x-protobuf); with
// --patch-marker M, the 8 bytes after every occurrence of M in the body are overwritten with a
// number unique to each request, across runs too (a random base per process; bench/otlp: new
// trace ids, so every request stores new spans).
// Any 2xx answer counts as done; other statuses count as failed and are listed by code; after a
// failure the thread waits --backoff-ms (default 0) before it reconnects, as an exporter backs off.
// Each answered request's latency (write to whole answer read) is kept, so the line carries p50 and
// p99 in ms (bench/read_path compares routes by them).
// Prints one JSON line; never judges the numbers.

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

namespace {

struct Options {
  int port = 0;
  std::string ca;  // empty: plain HTTP
  std::string target = "/health";
  bool keepalive = true;
  int threads = 2;
  double seconds = 3;
  std::string body;  // non-empty: POST it
  std::string content_type = "application/x-protobuf";
  std::vector<std::size_t> patch_at;  // offsets of the 8 bytes patched per request
  int backoff_ms = 0;
  std::uint64_t patch_base = 0;  // random per process
};

// Answers by status code; index 0 counts transport errors.
std::array<std::atomic<long>, 600> statuses{};

// A request's body: the file, with a number unique to this request at every patch offset.
struct Body {
  const Options& o;
  int thread;
  std::uint64_t sequence = 0;
  std::string text;
  const std::string& next() {
    const std::uint64_t n =
        o.patch_base ^ ((static_cast<std::uint64_t>(thread) << 40) | ++sequence);
    for (std::size_t at : o.patch_at) {
      for (std::size_t b = 0; b < 8; ++b) text[at + b] = static_cast<char>(n >> (56 - 8 * b));
    }
    return text;
  }
};

template <typename Stream>
bool exchange(Stream& stream, beast::flat_buffer& buffer, const Options& o, Body& body) {
  boost::system::error_code ec;
  if (o.body.empty()) {
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, o.target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.keep_alive(o.keepalive);
    bhttp::write(stream, req, ec);
  } else {
    bhttp::request<bhttp::span_body<const char>> req{bhttp::verb::post, o.target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.set(bhttp::field::content_type, o.content_type);
    req.keep_alive(o.keepalive);
    const std::string& text = body.next();
    req.body() = {text.data(), text.size()};
    req.prepare_payload();
    bhttp::write(stream, req, ec);
  }
  if (ec) {
    ++statuses[0];
    return false;
  }
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buffer, res, ec);
  const unsigned code = ec ? 0 : res.result_int();
  if (code / 100 == 2) return true;
  ++statuses[code < statuses.size() ? code : 0];
  return false;
}

// A request's answer time in microseconds, into `latencies` when it succeeded.
template <typename Stream>
bool timed_exchange(Stream& stream, beast::flat_buffer& buffer, const Options& o, Body& body,
                    std::vector<std::uint32_t>& latencies) {
  const auto started = std::chrono::steady_clock::now();
  if (!exchange(stream, buffer, o, body)) return false;
  latencies.push_back(
      static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count()));
  return true;
}

double percentile_ms(const std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto at = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1));
  return sorted[at] / 1000.0;
}

void worker(const Options& o, int index, asio::ssl::context* tls, std::atomic<bool>& stop,
            std::atomic<long>& done, std::atomic<long>& failed,
            std::vector<std::uint32_t>& latencies) {
  asio::io_context io;
  Body body{o, index, 0, o.body};
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(o.port));
  const auto fail = [&] {
    ++failed;
    if (o.backoff_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.backoff_ms));
  };
  while (!stop) {
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    if (tls != nullptr) {
      asio::ssl::stream<tcp::socket> stream(io, *tls);
      stream.next_layer().connect(endpoint, ec);
      if (!ec) stream.handshake(asio::ssl::stream_base::client, ec);
      if (ec) {
        fail();
        continue;
      }
      do {
        if (!timed_exchange(stream, buffer, o, body, latencies)) {
          fail();
          break;
        }
        ++done;
      } while (o.keepalive && !stop);
      stream.next_layer().close(ec);
    } else {
      tcp::socket socket(io);
      socket.connect(endpoint, ec);
      if (ec) {
        fail();
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      do {
        if (!timed_exchange(socket, buffer, o, body, latencies)) {
          fail();
          break;
        }
        ++done;
      } while (o.keepalive && !stop);
      socket.close(ec);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string body_file;
  std::string marker;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--port")
      o.port = std::stoi(value);
    else if (flag == "--ca")
      o.ca = value;
    else if (flag == "--target")
      o.target = value;
    else if (flag == "--mode")
      o.keepalive = value == "keepalive";
    else if (flag == "--threads")
      o.threads = std::stoi(value);
    else if (flag == "--seconds")
      o.seconds = std::stod(value);
    else if (flag == "--body")
      body_file = value;
    else if (flag == "--content-type")
      o.content_type = value;
    else if (flag == "--patch-marker")
      marker = value;
    else if (flag == "--backoff-ms")
      o.backoff_ms = std::stoi(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (!body_file.empty()) {
    std::ifstream in(body_file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    o.body = text.str();
    if (!in || o.body.empty()) {
      std::fprintf(stderr, "cannot read %s\n", body_file.c_str());
      return 2;
    }
    for (std::size_t at = marker.empty() ? std::string::npos : o.body.find(marker);
         at != std::string::npos; at = o.body.find(marker, at + marker.size() + 8)) {
      if (at + marker.size() + 8 > o.body.size()) break;
      o.patch_at.push_back(at + marker.size());
    }
    std::random_device random;
    o.patch_base = (static_cast<std::uint64_t>(random()) << 32) ^ random();
    if (!marker.empty() && o.patch_at.empty()) {
      std::fprintf(stderr, "marker %s is not in %s\n", marker.c_str(), body_file.c_str());
      return 2;
    }
  }
  std::unique_ptr<asio::ssl::context> tls;
  if (!o.ca.empty()) {
    tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    tls->load_verify_file(o.ca);
    tls->set_verify_mode(asio::ssl::verify_peer);
  }
  std::atomic<bool> stop{false};
  std::atomic<long> done{0};
  std::atomic<long> failed{0};
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  std::vector<std::vector<std::uint32_t>> latencies(static_cast<std::size_t>(o.threads));
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back(worker, std::cref(o), t + 1, tls.get(), std::ref(stop), std::ref(done),
                         std::ref(failed), std::ref(latencies[static_cast<std::size_t>(t)]));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::vector<std::uint32_t> all;
  for (const auto& each : latencies) all.insert(all.end(), each.begin(), each.end());
  std::sort(all.begin(), all.end());
  std::string failures;  // "503":n,... (0: transport errors)
  for (std::size_t code = 0; code < statuses.size(); ++code) {
    if (statuses[code] == 0) continue;
    if (!failures.empty()) failures += ',';
    failures += "\"" + std::to_string(code) + "\":" + std::to_string(statuses[code].load());
  }
  std::printf(
      "{\"requests\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"per_second\":%.1f,"
      "\"failures\":{%s},\"patched\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
      done.load(), failed.load(), wall, static_cast<double>(done.load()) / wall, failures.c_str(),
      o.patch_at.size(), percentile_ms(all, 0.50), percentile_ms(all, 0.99),
      all.empty() ? 0.0 : all.back() / 1000.0);
  return failed.load() > done.load() ? 1 : 0;
}
