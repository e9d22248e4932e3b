#include "rap/services/tcp_access/ingress.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

#include "rap/common/priority.h"
#include "rap/crypto/tls.h"

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

namespace {

constexpr std::size_t kClientReadBuffer = 256 * 1024;

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

}  // namespace

IngressClient::IngressClient(std::shared_ptr<SSL_CTX> ctx, std::shared_ptr<crypto::TlsSocket> tls)
    : ctx_(std::move(ctx)), tls_(std::move(tls)), rbuf_(kClientReadBuffer) {}

IngressClient::~IngressClient() = default;

asio::awaitable<Result<std::unique_ptr<IngressClient>>> IngressClient::connect(
    asio::any_io_executor ex, std::string endpoint, std::string entry_public_key_hex,
    ClientHello hello, std::chrono::seconds timeout) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos) co_return fail("bad_endpoint", "entry endpoint is not host:port");
  std::string host = endpoint.substr(0, colon);
  const std::string port = endpoint.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SslCtxFree{});
  if (!ctx) co_return fail("tls_failed", "SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  // AES-128-GCM first (hardware AES, the fabric's choice too); the key pin below is the
  // authentication, so no certificate chain is verified.
  SSL_CTX_set_ciphersuites(ctx.get(), crypto::kTls13Ciphersuites);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  // Bounds the whole set-up: closes whichever socket exists when the time is up.
  auto sock = std::make_shared<asio::ip::tcp::socket>(ex);
  std::shared_ptr<crypto::TlsSocket> tls;
  asio::steady_timer timer(ex, timeout);
  auto tls_slot = std::make_shared<std::weak_ptr<crypto::TlsSocket>>();
  timer.async_wait([weak_sock = std::weak_ptr<asio::ip::tcp::socket>(sock),
                    tls_slot](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto t = tls_slot->lock()) {
      t->close();
    } else if (auto s = weak_sock.lock()) {
      boost::system::error_code ignored;
      s->close(ignored);
    }
  });
  asio::ip::tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, port, kTuple);
  if (rec) co_return fail("connect_failed", "resolve " + host + ": " + rec.message());
  auto [cec, ep] = co_await asio::async_connect(*sock, results, kTuple);
  if (cec) co_return fail("connect_failed", "connect " + endpoint + ": " + cec.message());
  boost::system::error_code nd_ignored;
  sock->set_option(asio::ip::tcp::no_delay(true), nd_ignored);
  {
    auto wrapped = crypto::TlsSocket::wrap(std::move(*sock), ctx.get(), false, "tls");
    if (!wrapped) co_return tl::unexpected(wrapped.error());
    tls = std::move(*wrapped);
    *tls_slot = tls;
  }
  if (auto hs = co_await tls->handshake(); !hs)
    co_return fail("tls_failed", "TLS with " + endpoint + ": " + hs.error().message);
  {
    X509* cert = SSL_get1_peer_certificate(tls->ssl());
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
  if (auto w = co_await tls->write(asio::buffer(out)); !w)
    co_return fail("connect_failed", "send hello: " + w.error().message);
  std::unique_ptr<IngressClient> c(new IngressClient(std::move(ctx), tls));
  c->bulk_ = hello.traffic_class == "bulk";
  FrameReader reader(kMaxHello);
  for (;;) {
    auto f = reader.next();
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
    auto n = co_await tls->read_some(asio::buffer(c->rbuf_));
    if (!n) co_return fail("connect_failed", "entry closed during setup: " + n.error().message);
    reader.feed(c->rbuf_.data(), *n);
  }
  timer.cancel();
  // What came with the answer (a server's banner may follow it at once) is the first data.
  c->leftover_ = std::string(reader.rest());
  if (auto d = c->decoder_.decode(c->leftover_, c->pieces_); !d)
    co_return tl::unexpected(d.error());
  co_return c;
}

asio::awaitable<Result<std::string_view>> IngressClient::read_view() {
  while (piece_ >= pieces_.size()) {
    if (decoder_.ended()) co_return std::string_view{};
    pieces_.clear();
    piece_ = 0;
    auto n = co_await tls_->read_some(asio::buffer(rbuf_));
    if (!n) co_return fail("entry_closed", "entry connection ended: " + n.error().message);
    if (auto d = decoder_.decode(std::string_view(rbuf_.data(), *n), pieces_); !d)
      co_return tl::unexpected(d.error());
  }
  co_return pieces_[piece_++];
}

asio::awaitable<Result<std::size_t>> IngressClient::read_some(asio::mutable_buffer buf) {
  if (partial_.empty()) {
    auto v = co_await read_view();
    if (!v) co_return tl::unexpected(v.error());
    if (v->empty()) co_return std::size_t{0};
    partial_ = *v;
  }
  const std::size_t n = std::min(buf.size(), partial_.size());
  std::memcpy(buf.data(), partial_.data(), n);
  partial_.remove_prefix(n);
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
  if (auto w = co_await tls_->write(asio::buffer(wbuf_)); !w)
    co_return fail("entry_closed", "write to entry: " + w.error().message);
  co_return Result<void>{};
}

asio::awaitable<Result<void>> IngressClient::write_framed(char* frame, std::size_t body_len) {
  put_frame_header(frame, static_cast<std::uint32_t>(body_len));
  if (auto w = co_await tls_->write(asio::buffer(frame, kFrameHeader + body_len)); !w)
    co_return fail("entry_closed", "write to entry: " + w.error().message);
  co_return Result<void>{};
}

asio::awaitable<Result<void>> IngressClient::close_write() {
  std::array<char, kFrameHeader> end{};
  co_return co_await write_framed(end.data(), 0);
}

asio::awaitable<void> pipe(asio::ip::tcp::socket& sock, IngressClient& client) {
  auto up = [&]() -> asio::awaitable<void> {
    // Read straight behind room for the chunk header: one TLS write per read, no copy. Header
    // and body fill exactly four 16 KiB TLS records (65540 bytes would add a 4-byte fifth).
    std::vector<char> buf(64 * 1024);
    for (;;) {
      auto [ec, n] = co_await sock.async_read_some(
          asio::buffer(buf.data() + kFrameHeader, buf.size() - kFrameHeader), kTuple);
      if (ec) {
        (void)co_await client.close_write();
        co_return;
      }
      if (!co_await client.write_framed(buf.data(), n)) {
        boost::system::error_code ignored;
        sock.close(ignored);
        co_return;
      }
      if (client.bulk()) co_await rap::yield(true);  // after any interactive connection's work
    }
  };
  auto down = [&]() -> asio::awaitable<void> {
    for (;;) {
      auto v = co_await client.read_view();
      if (!v || v->empty()) {
        boost::system::error_code e;
        if (!v) {
          sock.close(e);
        } else {
          sock.shutdown(asio::ip::tcp::socket::shutdown_send, e);
        }
        co_return;
      }
      auto [ec, w] = co_await asio::async_write(sock, asio::buffer(v->data(), v->size()), kTuple);
      if (ec) co_return;
      if (client.bulk()) co_await rap::yield(true);
    }
  };
  using namespace asio::experimental::awaitable_operators;
  co_await (up() && down());
}

}  // namespace rap::services::tcp
