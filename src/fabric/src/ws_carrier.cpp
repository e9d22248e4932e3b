// WebSocket carrier: Fabric frames inside binary WebSocket messages over mutual TLS, for networks
// that only pass HTTPS (port 443). Message boundaries carry no meaning: the session treats the
// payload as a byte stream, exactly like the TLS carrier.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_prefix.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "carrier_util.h"
#include "rap/fabric/carrier.h"

namespace rap::fabric {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr char kPath[] = "/fabric/v1";
constexpr char kSubprotocol[] = "rap-fabric.v1";

using WsStream = websocket::stream<asio::ssl::stream<tcp::socket>>;

void tune(WsStream& ws) {
  ws.binary(true);
  ws.auto_fragment(false);
  ws.read_message_max(0);  // the session bounds frames itself
  websocket::permessage_deflate pmd;
  pmd.client_enable = false;
  pmd.server_enable = false;
  ws.set_option(pmd);
}

class WssCarrier final : public Carrier {
 public:
  WssCarrier(std::unique_ptr<WsStream> ws, PeerProof p, std::string remote)
      : ws_(std::move(ws)), peer_(std::move(p)), remote_(std::move(remote)) {}

  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) override {
    for (;;) {
      auto [ec, n] = co_await ws_->async_read_some(buf, kTuple);
      if (ec) co_return fail("carrier_read", ec.message());
      if (n > 0) co_return n;
    }
  }
  asio::awaitable<Result<void>> write(asio::const_buffer buf) override {
    auto [ec, n] = co_await ws_->async_write(buf, kTuple);
    (void)n;
    if (ec) co_return fail("carrier_write", ec.message());
    co_return Result<void>{};
  }
  const PeerProof& peer() const override { return peer_; }
  std::string_view kind() const override { return "wss"; }
  std::string remote_endpoint() const override { return remote_; }
  std::optional<TransportInfo> transport_info() const override {
    return detail::tcp_transport_info(beast::get_lowest_layer(*ws_).native_handle());
  }
  void close() override {
    boost::system::error_code ec;
    beast::get_lowest_layer(*ws_).shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(*ws_).close(ec);
  }

 private:
  std::unique_ptr<WsStream> ws_;
  PeerProof peer_;
  std::string remote_;
};

}  // namespace

asio::awaitable<Result<std::unique_ptr<Carrier>>> wss_connect(std::shared_ptr<TlsContext> ctx,
                                                              std::string host, std::uint16_t port,
                                                              Duration timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto ws = std::make_unique<WsStream>(ex, ctx->native());
  detail::Deadline deadline(ex, timeout, [w = ws.get()] {
    boost::system::error_code ec;
    beast::get_lowest_layer(*w).close(ec);
  });
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), kTuple);
  if (rec) co_return fail("resolve_failed", host + ": " + rec.message());
  auto [cec, ep] = co_await asio::async_connect(beast::get_lowest_layer(*ws), results, kTuple);
  if (cec)
    co_return fail("connect_failed", host + ":" + std::to_string(port) + ": " + cec.message());
  detail::tune_socket(beast::get_lowest_layer(*ws));
  auto [hec] = co_await ws->next_layer().async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) {
    co_return fail("tls_handshake_failed",
                   detail::describe_tls_failure(ws->next_layer().native_handle(), hec));
  }
  tune(*ws);
  ws->set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
    req.set(beast::http::field::sec_websocket_protocol, kSubprotocol);
    req.set(beast::http::field::user_agent, "rap-fabric/1");
  }));
  auto [wec] = co_await ws->async_handshake(host + ":" + std::to_string(port), kPath, kTuple);
  if (wec) co_return fail("ws_handshake_failed", wec.message());
  auto proof = detail::proof_from_ssl(ws->next_layer().native_handle());
  if (!proof) co_return tl::unexpected(proof.error());
  deadline.cancel();
  std::string remote = detail::endpoint_string(beast::get_lowest_layer(*ws));
  co_return std::make_unique<WssCarrier>(std::move(ws), std::move(*proof), std::move(remote));
}

asio::awaitable<Result<std::unique_ptr<Carrier>>> wss_accept(std::shared_ptr<TlsContext> ctx,
                                                             tcp::socket socket, Duration timeout) {
  auto ex = co_await asio::this_coro::executor;
  detail::tune_socket(socket);
  auto ws = std::make_unique<WsStream>(std::move(socket), ctx->native());
  detail::Deadline deadline(ex, timeout, [w = ws.get()] {
    boost::system::error_code ec;
    beast::get_lowest_layer(*w).close(ec);
  });
  auto [hec] = co_await ws->next_layer().async_handshake(asio::ssl::stream_base::server, kTuple);
  if (hec) {
    co_return fail("tls_handshake_failed",
                   detail::describe_tls_failure(ws->next_layer().native_handle(), hec));
  }
  tune(*ws);
  ws->set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
    res.set(beast::http::field::sec_websocket_protocol, kSubprotocol);
  }));
  beast::flat_buffer buffer;
  beast::http::request<beast::http::empty_body> req;
  auto [rec, rn] = co_await beast::http::async_read(ws->next_layer(), buffer, req, kTuple);
  (void)rn;
  if (rec) co_return fail("ws_handshake_failed", rec.message());
  if (req.target() != kPath || !websocket::is_upgrade(req)) {
    co_return fail("ws_handshake_failed", "expected a WebSocket upgrade on /fabric/v1");
  }
  auto [aec] = co_await ws->async_accept(req, kTuple);
  if (aec) co_return fail("ws_handshake_failed", aec.message());
  auto proof = detail::proof_from_ssl(ws->next_layer().native_handle());
  if (!proof) co_return tl::unexpected(proof.error());
  deadline.cancel();
  std::string remote = detail::endpoint_string(beast::get_lowest_layer(*ws));
  co_return std::make_unique<WssCarrier>(std::move(ws), std::move(*proof), std::move(remote));
}

}  // namespace rap::fabric
