#include "rap/mesh/local_api.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

#include "rap/common/framing.h"
#include "rap/common/priority.h"

namespace rap::mesh {

namespace {

using Json = nlohmann::json;
using local = asio::local::stream_protocol;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxChunk = 256 * 1024;

Json error_json(const Error& e) {
  return Json{{"error", {{"code", e.code}, {"message", e.message}}}};
}

}  // namespace

LocalStreamServer::LocalStreamServer(asio::any_io_executor ex, MeshNode& mesh, std::string path,
                                     Authorize a)
    : ex_(std::move(ex)), mesh_(mesh), path_(std::move(path)), authorize_(std::move(a)) {}

LocalStreamServer::~LocalStreamServer() {
  stop();
}

Result<std::unique_ptr<LocalStreamServer>> LocalStreamServer::start(const asio::any_io_executor& ex,
                                                                    MeshNode& mesh,
                                                                    const std::string& path,
                                                                    Authorize authorize) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path))
    return fail("bad_config", "local stream socket path is empty or too long");
  std::unique_ptr<LocalStreamServer> s(new LocalStreamServer(ex, mesh, path, std::move(authorize)));
  ::unlink(path.c_str());
  s->acceptor_ = std::make_shared<local::acceptor>(ex);
  boost::system::error_code ec;
  s->acceptor_->open(local(), ec);
  // Created 0660 at once (no window where others could connect).
  const mode_t old = ::umask(0117);
  if (!ec) s->acceptor_->bind(local::endpoint(path), ec);
  ::umask(old);
  if (!ec) s->acceptor_->listen(64, ec);
  if (ec) return fail("listen_failed", "local stream socket " + path + ": " + ec.message());
  asio::co_spawn(ex, s->accept_loop(), asio::detached);
  spdlog::info("mesh: local stream API on {}", path);
  return s;
}

void LocalStreamServer::stop() {
  if (acceptor_ && acceptor_->is_open()) {
    boost::system::error_code ec;
    acceptor_->close(ec);
    ::unlink(path_.c_str());
  }
}

asio::awaitable<void> LocalStreamServer::accept_loop() {
  auto acc = acceptor_;
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      continue;
    }
    asio::co_spawn(ex_, serve(std::move(sock)), asio::detached);
  }
}

asio::awaitable<void> LocalStreamServer::serve(local::socket sock) {
  std::string out;
  auto reply = [&](const Json& j) -> asio::awaitable<bool> {
    out.clear();
    append_frame(j.dump(), out);
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(out), kTuple);
    co_return !ec;
  };
  auto refuse = [&](const Error& e) -> asio::awaitable<void> {
    refused_++;
    spdlog::warn("mesh: local stream API refused code={} reason=\"{}\"", e.code, e.message);
    (void)co_await reply(error_json(e));
  };
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    const Error e{"not_authorized", "peer credentials unavailable"};
    co_await refuse(e);
    co_return;
  }
  auto who = authorize_(LocalPeer{cred.pid, cred.uid});
  if (!who) {
    co_await refuse(who.error());
    co_return;
  }
  // The request, bounded in size and time.
  asio::steady_timer timer(ex_, std::chrono::seconds(10));
  timer.async_wait([&sock](const boost::system::error_code& ec) {
    if (!ec) {
      boost::system::error_code ig;
      sock.close(ig);
    }
  });
  FrameReader frames(kMaxControlMessage);
  std::vector<char> buf(64 * 1024);
  std::optional<Json> req;
  while (!req) {
    auto f = frames.next();
    if (!f) {
      co_await refuse(f.error());
      co_return;
    }
    if (*f) {
      auto j = Json::parse((*f)->begin(), (*f)->end(), nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        const Error e{"bad_request", "request is not a JSON object"};
        co_await refuse(e);
        co_return;
      }
      req = std::move(j);
      break;
    }
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kTuple);
    if (ec) co_return;
    frames.feed(buf.data(), n);
  }
  if (req->value("v", 0) != 1 || req->value("op", std::string()) != "open" ||
      !req->contains("lease") || !(*req)["lease"].is_string()) {
    const Error e{"bad_request", "expected {\"v\":1,\"op\":\"open\",\"lease\":...}"};
    co_await refuse(e);
    co_return;
  }
  fabric::TrafficClass cls = fabric::TrafficClass::kInteractive;
  if (req->contains("class") &&
      (!(*req)["class"].is_string() ||
       !fabric::parse_traffic_class((*req)["class"].get<std::string>(), cls))) {
    const Error e{"bad_request", "unknown traffic class"};
    co_await refuse(e);
    co_return;
  }
  auto lease = verify_lease((*req)["lease"].get<std::string>(), mesh_.trust(), mesh_.wall_now());
  if (!lease) {
    co_await refuse(lease.error());
    co_return;
  }
  const Json hello = req->value("hello", Json::object());
  auto ch = co_await mesh_.open_route(*lease, cls, hello);
  if (!ch) {
    co_await refuse(ch.error());
    co_return;
  }
  timer.cancel();
  opened_++;
  spdlog::info("mesh: workload {} (pid {}) opened route {}", *who, cred.pid, lease->id);
  const Json ok{{"ok", true}, {"route", lease->id}, {"answer", (*ch)->hello()}};
  if (!co_await reply(ok)) co_return;
  auto& channel = **ch;
  const bool bulk = cls == fabric::TrafficClass::kBulk;
  // Payload moves without copies here: chunks are decoded in place in the read buffer and
  // handed to the route as views; the route's bytes are read behind room for the chunk header.
  auto up = [&]() -> asio::awaitable<void> {  // workload -> route
    ChunkDecoder chunks(kMaxChunk);
    std::vector<std::string_view> pieces;
    std::string_view in = frames.rest();  // what came with the request
    for (;;) {
      pieces.clear();
      if (auto d = chunks.decode(in, pieces); !d) {
        channel.reset("workload sent a bad frame");
        boost::system::error_code ig;
        sock.close(ig);
        co_return;
      }
      for (const auto& p : pieces)
        if (!co_await channel.write(asio::buffer(p.data(), p.size()))) co_return;
      if (chunks.ended()) {
        (void)co_await channel.close_write();
        co_return;
      }
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kTuple);
      if (ec) {
        channel.reset("workload went away");
        co_return;
      }
      in = std::string_view(buf.data(), n);
      co_await rap::yield(bulk);  // route writes may not suspend: fairness, bulk at low priority
    }
  };
  auto down = [&]() -> asio::awaitable<void> {  // route -> workload
    std::vector<char> data(kFrameHeader + 64 * 1024);
    for (;;) {
      auto n = co_await channel.read_some(
          asio::buffer(data.data() + kFrameHeader, data.size() - kFrameHeader));
      if (!n) {
        boost::system::error_code ig;
        sock.close(ig);
        co_return;
      }
      put_frame_header(data.data(), static_cast<std::uint32_t>(*n));
      auto [ec, m] =
          co_await asio::async_write(sock, asio::buffer(data.data(), kFrameHeader + *n), kTuple);
      if (ec || *n == 0) co_return;
      co_await rap::yield(bulk);
    }
  };
  using namespace asio::experimental::awaitable_operators;
  co_await (up() && down());
}

}  // namespace rap::mesh
