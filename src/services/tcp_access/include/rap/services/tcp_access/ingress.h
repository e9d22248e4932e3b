// Client ingress protocol between a user's client (rapctl connect) and an entry node
// (docs/PROTOCOL.md §14.4): TLS 1.3 with the entry's key pinned, one hello each way, then chunks
// [u32 big-endian length][bytes] both ways; a zero-length chunk is the half-close.
//
// The codec is pure (fuzzed); IngressClient is the client side over Asio + OpenSSL.
#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "rap/common/framing.h"
#include "rap/common/result.h"

namespace rap::services::tcp {

namespace asio = boost::asio;

inline constexpr std::size_t kMaxHello = 64 * 1024;
inline constexpr std::size_t kMaxChunk = 256 * 1024;

// The framing (rap/common/framing.h), re-exported for the ingress protocol.
using rap::append_frame;
using rap::FrameReader;

// Hello from the client: {"v":1,"ticket":b64,"class":"interactive|bulk"}.
struct ClientHello {
  std::string ticket;
  std::string traffic_class = "interactive";
};
Result<ClientHello> parse_client_hello(std::string_view json_text);

// One client connection to an entry through the ingress protocol.
class IngressClient {
 public:
  using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;
  // Connects to `endpoint` ("host:port"), checks that the server's Ed25519 key is
  // `entry_public_key_hex`, sends the hello and waits for the answer. Errors: transport errors,
  // "entry_key_mismatch", and the entry's refusal code (e.g. "grant_expired", "not_entitled").
  static asio::awaitable<Result<std::unique_ptr<IngressClient>>> connect(
      asio::any_io_executor ex, std::string endpoint, std::string entry_public_key_hex,
      ClientHello hello, std::chrono::seconds timeout);

  // At least one byte; 0 = the entry half-closed.
  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf);
  asio::awaitable<Result<void>> write(asio::const_buffer buf);
  asio::awaitable<Result<void>> close_write();
  const std::string& route() const { return route_; }

 private:
  IngressClient(std::shared_ptr<asio::ssl::context> ctx, std::shared_ptr<TlsStream> tls)
      : ctx_(std::move(ctx)), tls_(std::move(tls)) {}
  std::shared_ptr<asio::ssl::context> ctx_;
  std::shared_ptr<TlsStream> tls_;
  FrameReader reader_{kMaxChunk};
  std::string_view pending_;  // into reader_'s buffer
  std::size_t pending_pos_ = 0;
  bool eof_ = false;
  std::string route_;
  std::string wbuf_;
  std::array<char, 64 * 1024> rbuf_{};
};

// Carries a local TCP connection over an ingress client both ways until both directions ended
// (half-closes forwarded), as `rapctl connect` does for each accepted connection.
asio::awaitable<void> pipe(asio::ip::tcp::socket& sock, IngressClient& client);

}  // namespace rap::services::tcp
