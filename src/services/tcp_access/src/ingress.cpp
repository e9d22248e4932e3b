#include "rap/services/tcp_access/ingress.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

namespace rap::services::tcp {

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Json = nlohmann::json;

std::string hex_of(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}
}  // namespace

Result<ClientHello> parse_client_hello(std::string_view text) {
  auto j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("bad_hello", "hello is not a JSON object");
  ClientHello h;
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() || v->get<int>() != 1)
    return fail("bad_hello", "unsupported hello version");
  auto t = j.find("ticket");
  if (t == j.end() || !t->is_string() || t->get<std::string>().empty())
    return fail("bad_hello", "hello has no ticket");
  h.ticket = t->get<std::string>();
  if (auto c = j.find("class"); c != j.end()) {
    if (!c->is_string()) return fail("bad_hello", "class must be a string");
    h.traffic_class = c->get<std::string>();
    if (h.traffic_class != "interactive" && h.traffic_class != "bulk")
      return fail("bad_hello", "class must be interactive or bulk");
  }
  for (const auto& [k, _] : j.items()) {
    if (k != "v" && k != "ticket" && k != "class")
      return fail("bad_hello", "unknown hello member '" + k + "'");
  }
  return h;
}

asio::awaitable<Result<std::unique_ptr<IngressClient>>> IngressClient::connect(
    asio::any_io_executor ex, std::string endpoint, std::string entry_public_key_hex,
    ClientHello hello, std::chrono::seconds timeout) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos) co_return fail("bad_endpoint", "entry endpoint is not host:port");
  std::string host = endpoint.substr(0, colon);
  const std::string port = endpoint.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION);
  ctx->set_verify_mode(asio::ssl::verify_none);  // the key pin below is the check
  auto tls = std::make_shared<TlsStream>(ex, *ctx);
  asio::steady_timer timer(ex, timeout);
  timer.async_wait([weak = std::weak_ptr<TlsStream>(tls)](const boost::system::error_code& ec) {
    auto t = weak.lock();
    if (!ec && t) {
      boost::system::error_code ignored;
      t->lowest_layer().close(ignored);
    }
  });
  asio::ip::tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, port, kTuple);
  if (rec) co_return fail("connect_failed", "resolve " + host + ": " + rec.message());
  auto [cec, ep] = co_await asio::async_connect(tls->lowest_layer(), results, kTuple);
  if (cec) co_return fail("connect_failed", "connect " + endpoint + ": " + cec.message());
  boost::system::error_code nd_ignored;
  tls->lowest_layer().set_option(asio::ip::tcp::no_delay(true), nd_ignored);
  auto [hec] = co_await tls->async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) co_return fail("tls_failed", "TLS with " + endpoint + ": " + hec.message());
  {
    X509* cert = SSL_get1_peer_certificate(tls->native_handle());
    std::string got;
    if (cert != nullptr) {
      EVP_PKEY* pk = X509_get0_pubkey(cert);
      std::array<unsigned char, 32> raw{};
      std::size_t len = raw.size();
      if (pk != nullptr && EVP_PKEY_get_raw_public_key(pk, raw.data(), &len) == 1 && len == 32)
        got = hex_of(raw.data(), raw.size());
      X509_free(cert);
    }
    if (got.empty() || got != entry_public_key_hex)
      co_return fail("entry_key_mismatch",
                     "the entry's TLS key is not the one the control plane named");
  }
  std::string out;
  append_frame(Json{{"v", 1}, {"ticket", hello.ticket}, {"class", hello.traffic_class}}.dump(),
               out);
  auto [wec, wn] = co_await asio::async_write(*tls, asio::buffer(out), kTuple);
  if (wec) co_return fail("connect_failed", "send hello: " + wec.message());
  std::unique_ptr<IngressClient> c(new IngressClient(std::move(ctx), std::move(tls)));
  c->reader_.set_max(kMaxHello);
  for (;;) {
    auto f = c->reader_.next();
    if (!f) co_return tl::unexpected(f.error());
    if (*f) {
      auto j = Json::parse((*f)->begin(), (*f)->end(), nullptr, false);
      if (j.is_discarded() || !j.is_object())
        co_return fail("bad_answer", "entry answered with something else than JSON");
      if (auto e = j.find("error"); e != j.end() && e->is_object())
        co_return fail(e->value("code", std::string("refused")),
                       e->value("message", std::string()));
      if (!j.value("ok", false)) co_return fail("bad_answer", "entry did not answer ok");
      c->route_ = j.value("route", std::string());
      break;
    }
    auto [rec2, n] = co_await c->tls_->async_read_some(asio::buffer(c->rbuf_), kTuple);
    if (rec2) co_return fail("connect_failed", "entry closed during setup: " + rec2.message());
    c->reader_.feed(c->rbuf_.data(), n);
  }
  timer.cancel();
  c->reader_.set_max(kMaxChunk);
  co_return c;
}

asio::awaitable<Result<std::size_t>> IngressClient::read_some(asio::mutable_buffer buf) {
  while (pending_pos_ >= pending_.size()) {
    if (eof_) co_return std::size_t{0};
    auto f = reader_.next();
    if (!f) co_return tl::unexpected(f.error());
    if (*f) {
      if ((*f)->empty()) {
        eof_ = true;
        co_return std::size_t{0};
      }
      pending_ = **f;
      pending_pos_ = 0;
      break;
    }
    auto [ec, n] = co_await tls_->async_read_some(asio::buffer(rbuf_), kTuple);
    if (ec) co_return fail("entry_closed", "entry connection ended: " + ec.message());
    reader_.feed(rbuf_.data(), n);
  }
  const std::size_t n = std::min(buf.size(), pending_.size() - pending_pos_);
  std::memcpy(buf.data(), pending_.data() + pending_pos_, n);
  pending_pos_ += n;
  co_return n;
}

asio::awaitable<Result<void>> IngressClient::write(asio::const_buffer buf) {
  wbuf_.clear();
  const auto* p = static_cast<const char*>(buf.data());
  std::size_t left = buf.size();
  while (left > 0) {
    const std::size_t n = std::min(left, kMaxChunk);
    append_frame({p, n}, wbuf_);
    p += n;
    left -= n;
  }
  auto [ec, n] = co_await asio::async_write(*tls_, asio::buffer(wbuf_), kTuple);
  if (ec) co_return fail("entry_closed", "write to entry: " + ec.message());
  co_return Result<void>{};
}

asio::awaitable<Result<void>> IngressClient::close_write() {
  wbuf_.clear();
  append_frame({}, wbuf_);
  auto [ec, n] = co_await asio::async_write(*tls_, asio::buffer(wbuf_), kTuple);
  if (ec) co_return fail("entry_closed", "write to entry: " + ec.message());
  co_return Result<void>{};
}

asio::awaitable<void> pipe(asio::ip::tcp::socket& sock, IngressClient& client) {
  auto up = [&]() -> asio::awaitable<void> {
    std::vector<char> buf(64 * 1024);
    for (;;) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kTuple);
      if (ec) {
        (void)co_await client.close_write();
        co_return;
      }
      if (!co_await client.write(asio::buffer(buf.data(), n))) {
        boost::system::error_code ignored;
        sock.close(ignored);
        co_return;
      }
    }
  };
  auto down = [&]() -> asio::awaitable<void> {
    std::vector<char> buf(64 * 1024);
    for (;;) {
      auto n = co_await client.read_some(asio::buffer(buf));
      if (!n || *n == 0) {
        boost::system::error_code e;
        if (!n) {
          sock.close(e);
        } else {
          sock.shutdown(asio::ip::tcp::socket::shutdown_send, e);
        }
        co_return;
      }
      auto [ec, w] = co_await asio::async_write(sock, asio::buffer(buf.data(), *n), kTuple);
      if (ec) co_return;
    }
  };
  using namespace asio::experimental::awaitable_operators;
  co_await (up() && down());
}

}  // namespace rap::services::tcp
