// Load client for bench/http/run.py: N threads, each with its own blocking connection, send
// GET requests for a fixed time. keepalive: one connection per thread, requests back to back;
// connect: a new TCP (and, with --ca, TLS) connection per request, i.e. new handshakes/s.
// Prints one JSON line; never judges the numbers.

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
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
};

template <typename Stream>
bool exchange(Stream& stream, beast::flat_buffer& buffer, const std::string& target, bool keep) {
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.keep_alive(keep);
  boost::system::error_code ec;
  bhttp::write(stream, req, ec);
  if (ec) return false;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buffer, res, ec);
  return !ec && res.result_int() == 200;
}

void worker(const Options& o, asio::ssl::context* tls, std::atomic<bool>& stop,
            std::atomic<long>& done, std::atomic<long>& failed) {
  asio::io_context io;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(o.port));
  while (!stop) {
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    if (tls != nullptr) {
      asio::ssl::stream<tcp::socket> stream(io, *tls);
      stream.next_layer().connect(endpoint, ec);
      if (!ec) stream.handshake(asio::ssl::stream_base::client, ec);
      if (ec) {
        ++failed;
        continue;
      }
      do {
        if (!exchange(stream, buffer, o.target, o.keepalive)) {
          ++failed;
          break;
        }
        ++done;
      } while (o.keepalive && !stop);
      stream.next_layer().close(ec);
    } else {
      tcp::socket socket(io);
      socket.connect(endpoint, ec);
      if (ec) {
        ++failed;
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      do {
        if (!exchange(socket, buffer, o.target, o.keepalive)) {
          ++failed;
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
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
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
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back(worker, std::cref(o), tls.get(), std::ref(stop), std::ref(done),
                         std::ref(failed));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("{\"requests\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"per_second\":%.1f}\n",
              done.load(), failed.load(), wall, static_cast<double>(done.load()) / wall);
  return failed.load() > done.load() ? 1 : 0;
}
