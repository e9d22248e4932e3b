// rapctl connect: TCP application access (docs/PROTOCOL.md §14). Asks the control plane for a
// ticket to a resource, listens on a local port and carries every accepted connection to the
// entry node named in the ticket (TLS 1.3, entry key pinned), which routes it through the mesh
// to the resource. Tickets are renewed at half their lifetime.
#include "rap/cli/connect.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <functional>

#include "rap/cli/http_client.h"
#include "rap/common/framing.h"
#include "rap/common/priority.h"
#include "rap/common/thread_slice.h"
#include "rap/services/tcp_access/ingress.h"

namespace rap::cli {

namespace {

namespace asio = boost::asio;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string url_part(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

struct Ticket {
  std::string ticket, entry_endpoint, entry_key, resource_name;
  std::int64_t expires_at = 0;
  std::int64_t offline_until = 0;  // signed offline horizon (0: none)
  std::int64_t fetched_at = 0;
};

std::int64_t now_s() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

class Connector {
 public:
  Connector(const ConnectArgs& a, const ClientOptions& opts, Io& io)
      : args_(a), client_(opts), io_(io) {}

  // Resolves the resource (name or id) among the caller's entitled resources.
  Result<void> resolve() {
    auto r = client_.request("GET", "/api/v1/orgs/" + url_part(args_.org) + "/my-resources");
    if (!r) return tl::unexpected(r.error());
    if (r->status >= 400) return http_error(*r);
    for (const auto& res : r->j.value("resources", json::array())) {
      if (res.value("name", "") == args_.resource || res.value("id", "") == args_.resource) {
        resource_id_ = res.value("id", "");
        return {};
      }
    }
    return fail("not_entitled",
                "no resource '" + args_.resource + "' that you may use in '" + args_.org + "'");
  }

  Result<Ticket> fetch() {
    json body = json::object();
    if (args_.ttl_seconds > 0) body["ttl_seconds"] = args_.ttl_seconds;
    if (!entry_node_.empty()) body["entry_node"] = entry_node_;
    auto r = client_.request(
        "POST", "/api/v1/orgs/" + url_part(args_.org) + "/resources/" + resource_id_ + "/connect",
        body);
    unavailable_ = !r || r->status >= 500;
    if (!r) return tl::unexpected(r.error());
    if (r->status >= 400) return http_error(*r);
    Ticket t;
    t.ticket = r->j.value("ticket", "");
    t.entry_endpoint = r->j.value("entry", json::object()).value("endpoint", "");
    t.entry_key = r->j.value("entry", json::object()).value("public_key", "");
    t.expires_at = r->j.value("expires_at", std::int64_t{0});
    if (auto o = r->j.find("offline_until"); o != r->j.end() && o->is_number_integer())
      t.offline_until = o->get<std::int64_t>();
    t.resource_name = r->j.value("resource", json::object()).value("name", args_.resource);
    t.fetched_at = now_s();
    if (t.ticket.empty() || t.entry_endpoint.empty() || t.entry_key.empty())
      return fail("bad_response", "the connect response lacks ticket or entry");
    return t;
  }

  // The current ticket, renewed once half of its lifetime has passed.
  Result<Ticket> ticket() {
    const auto now = now_s();
    if (ticket_.ticket.empty() ||
        now >= ticket_.fetched_at + (ticket_.expires_at - ticket_.fetched_at) / 2) {
      auto t = fetch();
      if (!t) {
        // The control plane is unreachable (no answer, or 5xx): the current ticket stays in use
        // up to its signed offline horizon. The nodes decide: they honour it past expiry only
        // while they cannot reach the control plane either. A refusal (4xx) ends it at once.
        if (unavailable_ && !ticket_.ticket.empty() &&
            now < std::max(ticket_.expires_at, ticket_.offline_until)) {
          if (!warned_offline_)
            io_.err << "rapctl: the control plane is unreachable (" << t.error().message
                    << "); using the current ticket"
                    << (ticket_.offline_until > ticket_.expires_at
                            ? " (nodes may honour it offline for " +
                                  std::to_string(ticket_.offline_until - now) + " s)"
                            : std::string())
                    << "\n";
          warned_offline_ = true;
          return ticket_;
        }
        return t;
      }
      if (warned_offline_) io_.err << "rapctl: the control plane is reachable again\n";
      warned_offline_ = false;
      ticket_ = *t;
    }
    return ticket_;
  }

  asio::awaitable<void> serve(asio::ip::tcp::socket sock) {
    using services::tcp::IngressClient;
    boost::system::error_code ignored;
    sock.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto t = ticket();
    if (!t) {
      io_.err << "rapctl: connection refused: " << t.error().message << " (" << t.error().code
              << ")\n";
      co_return;
    }
    auto ex = co_await asio::this_coro::executor;
    // Named arguments only: GCC 12 mishandles temporaries inside co_await expressions.
    std::string endpoint = t->entry_endpoint;
    std::string key = t->entry_key;
    services::tcp::ClientHello hello{t->ticket, args_.traffic_class};
    const std::chrono::seconds timeout(static_cast<int>(timeout_s_));
    auto c = co_await IngressClient::connect(ex, std::move(endpoint), std::move(key),
                                             std::move(hello), timeout);
    if (!c) {
      io_.err << "rapctl: connection refused: " << c.error().message << " (" << c.error().code
              << ")\n";
      last_error_ = c.error();
      co_return;
    }
    connections_++;
    co_await services::tcp::pipe(sock, **c);
  }

  void set_timeout(double s) { timeout_s_ = s; }
  void set_entry_node(std::string id) { entry_node_ = std::move(id); }
  const std::string& resource_id() const { return resource_id_; }
  std::uint64_t connections() const { return connections_; }
  const std::optional<Error>& last_error() const { return last_error_; }

 private:
  static tl::unexpected<Error> http_error(const HttpReply& r) {
    std::string code = "http_" + std::to_string(r.status);
    std::string msg = r.body;
    if (r.j.is_object() && r.j.contains("error") && r.j["error"].is_object()) {
      code = r.j["error"].value("code", code);
      msg = r.j["error"].value("message", msg);
    }
    return tl::unexpected(Error{code, msg});
  }

  const ConnectArgs& args_;
  const HttpClient client_;
  Io& io_;
  std::string resource_id_;
  std::string entry_node_;  // --local-entry: the ticket must name this entry
  Ticket ticket_;
  bool unavailable_ = false;     // the last fetch got no answer or a 5xx
  bool warned_offline_ = false;  // said once that the current ticket is kept
  double timeout_s_ = 30;
  std::uint64_t connections_ = 0;
  std::optional<Error> last_error_;
};

// The node agent's user socket (services/tcp_access/user_api.h): one JSON frame each way.
class UserSocket {
 public:
  explicit UserSocket(asio::io_context& ioc) : sock_(ioc) {}
  Result<void> open(const std::string& path) {
    boost::system::error_code ec;
    sock_.connect(asio::local::stream_protocol::endpoint(path), ec);
    if (ec) return fail("connect_failed", "node agent user socket " + path + ": " + ec.message());
    return {};
  }
  Result<void> send(const json& j) {
    std::string out;
    append_frame(j.dump(), out);
    boost::system::error_code ec;
    asio::write(sock_, asio::buffer(out), ec);
    if (ec) return fail("connect_failed", "node agent: " + ec.message());
    return {};
  }
  // The next answer; an {"error":...} answer becomes an Error.
  Result<json> receive() {
    for (;;) {
      auto f = frames_.next();
      if (!f) return tl::unexpected(f.error());
      if (*f) return answer(json::parse((*f)->begin(), (*f)->end(), nullptr, false));
      char buf[4096];
      boost::system::error_code ec;
      const std::size_t n = sock_.read_some(asio::buffer(buf), ec);
      if (ec) return fail("connect_failed", "the node agent closed the user socket");
      frames_.feed(buf, n);
    }
  }
  Result<json> call(const json& j) {
    if (auto s = send(j); !s) return tl::unexpected(s.error());
    return receive();
  }
  asio::local::stream_protocol::socket& socket() { return sock_; }

 private:
  static Result<json> answer(const json& j) {
    if (!j.is_object()) return fail("bad_response", "the node agent sent no JSON object");
    if (auto e = j.find("error"); e != j.end() && e->is_object())
      return tl::unexpected(Error{e->value("code", "refused"), e->value("message", "")});
    return j;
  }
  asio::local::stream_protocol::socket sock_;
  FrameReader frames_{64 * 1024};
};

std::string default_user_socket() {
  std::error_code ec;
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator("/run/rap-node-agent", ec))
    if (e.path().extension() == ".sock") found.push_back(e.path().string());
  return found.size() == 1 ? found.front() : std::string();
}

// --local-entry: the node agent on this host listens; rapctl hands it the ticket and renews it.
int connect_local_entry(const ConnectArgs& a, const std::string& path, Connector& conn, Io& io) {
  asio::io_context ioc(1);
  UserSocket us(ioc);
  if (auto o = us.open(path); !o) return report(io, o.error());
  auto hi = us.call(json{{"v", 1}, {"op", "hello"}});
  if (!hi) return report(io, hi.error());
  conn.set_entry_node(hi->value("node", ""));
  auto t = conn.ticket();
  if (!t) return report(io, t.error());
  auto l = us.call(json{{"v", 1},
                        {"op", "listen"},
                        {"ticket", t->ticket},
                        {"listen", a.listen},
                        {"class", a.traffic_class}});
  if (!l) return report(io, l.error());
  io.out << "forwarding " << l->value("listen", "") << " -> " << a.resource << " (org " << a.org
         << ", entry-node listener); Ctrl-C stops" << std::endl;
  // Renewal: check every second; the agent's answers are read as they come (an EOF means it
  // closed the listener: stopping or restarting).
  int rc = kExitOk;
  std::string last = t->ticket;
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int) {
    if (!e) ioc.stop();
  });
  asio::steady_timer timer(ioc);
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      auto cur = conn.ticket();
      if (!cur) {
        io.err << "rapctl: ticket renewal failed: " << cur.error().message << " ("
               << cur.error().code << ")\n";
      } else if (cur->ticket != last) {
        last = cur->ticket;
        auto r = us.call(json{{"v", 1}, {"op", "ticket"}, {"ticket", last}});
        if (!r) {
          io.err << "rapctl: the node agent refused the renewed ticket: " << r.error().message
                 << " (" << r.error().code << ")\n";
          if (r.error().code == "connect_failed") {
            rc = kExitConnection;
            ioc.stop();
            return;
          }
        }
      }
      tick();
    });
  };
  tick();
  // Watch for the agent going away between renewals (a renewal's answer, read synchronously,
  // may also wake this: then the socket is empty again and the watch goes on).
  std::function<void()> watch = [&] {
    us.socket().async_wait(asio::socket_base::wait_read, [&](const boost::system::error_code& e) {
      if (e) return;
      char b = 0;
      const auto n = ::recv(us.socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        watch();
        return;
      }
      io.err << "rapctl: the node agent closed the entry-node listener\n";
      rc = kExitConnection;
      ioc.stop();
    });
  };
  watch();
  ioc.run();
  return rc;
}

}  // namespace

int cmd_connect(const Globals& g, const ConnectArgs& a, Io& io, const Config& cfg) {
  std::string user_socket;
  if (a.local_entry) {
    if (a.once) return report(io, Error{"usage", "--once needs the forwarder (no --local-entry)"});
    user_socket = a.user_socket.empty() ? default_user_socket() : a.user_socket;
    if (user_socket.empty())
      return report(io, Error{"usage",
                              "no single node agent user socket in /run/rap-node-agent; name one "
                              "with --user-socket"});
  } else if (!a.user_socket.empty()) {
    return report(io, Error{"usage", "--user-socket goes with --local-entry"});
  }
  auto opts = client_options(io, g, cfg, true);
  if (!opts) return report(io, opts.error());
  if (a.traffic_class != "interactive" && a.traffic_class != "bulk")
    return report(io, Error{"usage", "--class must be interactive or bulk"});
  const auto colon = a.listen.rfind(':');
  boost::system::error_code ec;
  const auto addr = colon == std::string::npos
                        ? asio::ip::address()
                        : asio::ip::make_address(a.listen.substr(0, colon), ec);
  if (colon == std::string::npos || ec)
    return report(io, Error{"usage", "--listen must be IP:PORT, e.g. 127.0.0.1:2222"});
  Connector conn(a, *opts, io);
  conn.set_timeout(g.timeout_s);
  if (auto r = conn.resolve(); !r) return report(io, r.error());
  if (a.local_entry) return connect_local_entry(a, user_socket, conn, io);
  if (auto t = conn.ticket(); !t) return report(io, t.error());
  asio::io_context ioc(1);
  asio::ip::tcp::acceptor acc(ioc);
  const asio::ip::tcp::endpoint ep(
      addr, static_cast<std::uint16_t>(std::stoul(a.listen.substr(colon + 1))));
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return report(io, Error{"listen_failed", a.listen + ": " + ec.message()});
  const auto port = acc.local_endpoint().port();
  io.out << "forwarding " << ep.address().to_string() << ":" << port << " -> " << a.resource
         << " (org " << a.org << "); Ctrl-C stops" << std::endl;
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int) {
    if (!e) ioc.stop();
  });
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto [e, sock] = co_await acc.async_accept(kTuple);
          if (e) co_return;
          if (a.once) {
            co_await conn.serve(std::move(sock));
            ioc.stop();
            co_return;
          }
          asio::co_spawn(ioc, conn.serve(std::move(sock)), asio::detached);
        }
      },
      asio::detached);
  // An interactive forwarder asks for a short time slice: it wakes for every keystroke and should
  // not wait for a busy process's slice to end (rap/common/thread_slice.h). Best effort.
  if (a.traffic_class == "interactive") (void)request_thread_slice(kInteractiveThreadSlice);
  run_prioritised(ioc);  // bulk connections yield to interactive ones (rap/common/priority.h)
  if (a.once && conn.connections() == 0 && conn.last_error()) return report(io, *conn.last_error());
  return kExitOk;
}

}  // namespace rap::cli
