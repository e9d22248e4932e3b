#include "rap/services/tcp_access/user_api.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "rap/common/framing.h"

namespace rap::services::tcp {

namespace {

using Json = nlohmann::json;
using local = asio::local::stream_protocol;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxRequest = 64 * 1024;

Json error_json(const Error& e) {
  return Json{{"error", {{"code", e.code}, {"message", e.message}}}};
}

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<std::unique_ptr<UserSocketServer>> UserSocketServer::start(const asio::any_io_executor& ex,
                                                                  TcpAccessEntry& entry,
                                                                  const std::string& path) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path))
    return fail("bad_config", "user socket path is empty or too long");
  std::unique_ptr<UserSocketServer> s(new UserSocketServer(path));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
    return fail("bad_config", "user socket path " + path + " exists and is not a socket");
  ::unlink(path.c_str());
  s->acceptor_ = std::make_shared<local::acceptor>(ex);
  boost::system::error_code ec;
  s->acceptor_->open(local(), ec);
  if (!ec) s->acceptor_->bind(local::endpoint(path), ec);
  // Any local user may ask: the ticket is the authorization, the peer uid the identity.
  if (!ec && ::chmod(path.c_str(), 0666) != 0)
    ec = boost::system::error_code(errno, boost::system::system_category());
  if (!ec) s->acceptor_->listen(16, ec);
  if (ec) return fail("listen_failed", "user socket " + path + ": " + ec.message());
  asio::co_spawn(ex, accept_loop(s->acceptor_, s->shared_, entry), asio::detached);
  spdlog::info("tcp entry: user socket for entry-node listeners on {}", path);
  return s;
}

UserSocketServer::~UserSocketServer() {
  stop();
}

void UserSocketServer::stop() {
  if (acceptor_ && acceptor_->is_open()) {
    boost::system::error_code ec;
    acceptor_->close(ec);
    ::unlink(path_.c_str());
  }
  for (auto* s : shared_->open) {
    boost::system::error_code ec;
    s->close(ec);
  }
}

asio::awaitable<void> UserSocketServer::accept_loop(std::shared_ptr<local::acceptor> acc,
                                                    std::shared_ptr<Shared> sh,
                                                    TcpAccessEntry& entry) {
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      continue;
    }
    asio::co_spawn(acc->get_executor(), serve(sh, entry, std::move(sock)), asio::detached);
  }
}

asio::awaitable<void> UserSocketServer::serve(std::shared_ptr<Shared> sh, TcpAccessEntry& entry,
                                              local::socket sock) {
  std::string out;
  auto reply = [&](const Json& j) -> asio::awaitable<bool> {
    out.clear();
    append_frame(j.dump(), out);
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(out), kTuple);
    co_return !ec;
  };
  auto refuse = [&](const Error& e) -> asio::awaitable<bool> {
    sh->refused++;
    spdlog::warn("tcp entry: user socket refused code={} reason=\"{}\"", e.code, e.message);
    co_return co_await reply(error_json(e));
  };
  if (sh->connections >= kMaxConnections) {
    const Error e{"busy", "too many entry-node listeners on this node"};
    (void)co_await refuse(e);
    co_return;
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    const Error e{"not_authorized", "peer credentials unavailable"};
    (void)co_await refuse(e);
    co_return;
  }
  sh->connections++;
  sh->open.insert(&sock);
  std::shared_ptr<EntryListener> listener;
  FrameReader frames(kMaxRequest);
  std::vector<char> buf(16 * 1024);
  for (;;) {
    auto f = frames.next();
    if (!f) {
      (void)co_await refuse(f.error());
      break;
    }
    if (!*f) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kTuple);
      if (ec) break;
      frames.feed(buf.data(), n);
      continue;
    }
    auto req = Json::parse((*f)->begin(), (*f)->end(), nullptr, false);
    if (req.is_discarded() || !req.is_object() || req.value("v", 0) != 1) {
      const Error e{"bad_request", "request is not a v1 JSON object"};
      if (!co_await refuse(e)) break;
      continue;
    }
    const std::string op = str(req, "op");
    bool ok = true;
    if (op == "hello") {
      const Json hi{{"ok", true}, {"node", entry.node_id()}};
      ok = co_await reply(hi);
    } else if (op == "listen") {
      fabric::TrafficClass cls = fabric::TrafficClass::kInteractive;
      const std::string c = str(req, "class");
      if (listener) {
        const Error e{"already_listening", "this connection holds a listener already"};
        ok = co_await refuse(e);
      } else if (!c.empty() && !fabric::parse_traffic_class(c, cls)) {
        const Error e{"bad_request", "class must be interactive or bulk"};
        ok = co_await refuse(e);
      } else {
        const std::string at = str(req, "listen").empty() ? "127.0.0.1:0" : str(req, "listen");
        auto l = entry.listen_local(at, cred.uid, str(req, "ticket"), cls);
        if (!l) {
          ok = co_await refuse(l.error());
        } else {
          listener = std::move(*l);
          sh->listeners++;
          const std::string host = at.substr(0, at.rfind(':'));
          const Json done{{"ok", true}, {"listen", host + ":" + std::to_string(listener->port())}};
          ok = co_await reply(done);
        }
      }
    } else if (op == "ticket") {
      if (!listener) {
        const Error e{"not_listening", "ask for a listener first"};
        ok = co_await refuse(e);
      } else if (auto t = listener->set_ticket(str(req, "ticket")); !t) {
        ok = co_await refuse(t.error());
      } else {
        const Json done{{"ok", true}};
        ok = co_await reply(done);
      }
    } else {
      const Error e{"bad_request", "unknown op '" + op.substr(0, 32) + "'"};
      ok = co_await refuse(e);
    }
    if (!ok) break;
  }
  if (listener) {
    sh->listeners--;
    listener->stop();
    spdlog::info("tcp entry: entry-node listener on port {} closed (accepted {}, refused {})",
                 listener->port(), listener->accepted(), listener->refused());
  }
  sh->open.erase(&sock);
  sh->connections--;
}

}  // namespace rap::services::tcp
