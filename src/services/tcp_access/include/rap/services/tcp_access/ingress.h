// Client ingress protocol between a user's client (rapctl connect) and an entry node
// (docs/PROTOCOL.md §14.4): TLS 1.3 with the entry's key pinned, one hello each way, then chunks
// [u32 big-endian length][bytes] both ways; a zero-length chunk is the half-close.
//
// The codecs are pure (fuzzed); IngressClient is the client side, TLS straight on the socket
// (rap/crypto/tls_socket.h) with no copy of the payload in user space.
#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rap/common/framing.h"
#include "rap/common/result.h"
#include "rap/crypto/tls_socket.h"

namespace rap::services::tcp {

namespace asio = boost::asio;

inline constexpr std::size_t kMaxHello = 64 * 1024;
inline constexpr std::size_t kMaxChunk = 256 * 1024;

// The framing (rap/common/framing.h), re-exported for the ingress protocol.
using rap::append_frame;
using rap::ChunkDecoder;
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
  // Connects to `endpoint` ("host:port"), checks that the server's Ed25519 key is
  // `entry_public_key_hex`, sends the hello and waits for the answer. Errors: transport errors,
  // "entry_key_mismatch", and the entry's refusal code (e.g. "grant_expired", "not_entitled").
  static asio::awaitable<Result<std::unique_ptr<IngressClient>>> connect(
      asio::any_io_executor ex, std::string endpoint, std::string entry_public_key_hex,
      ClientHello hello, std::chrono::seconds timeout);

  // At least one byte; 0 = the entry half-closed.
  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf);
  // The next bytes from the entry without copying: a view into this client's read buffer, valid
  // until the next read. Empty = the entry half-closed.
  asio::awaitable<Result<std::string_view>> read_view();
  asio::awaitable<Result<void>> write(asio::const_buffer buf);
  // Sends the `body_len` bytes at `frame + kFrameHeader` as one chunk, writing the chunk header
  // into the first kFrameHeader bytes of `frame` (no copy). 0 < body_len <= kMaxChunk.
  asio::awaitable<Result<void>> write_framed(char* frame, std::size_t body_len);
  asio::awaitable<Result<void>> close_write();
  const std::string& route() const { return route_; }
  // The hello asked for the bulk class: pipe() runs it at low priority on its thread.
  bool bulk() const { return bulk_; }
  ~IngressClient();
  IngressClient(const IngressClient&) = delete;
  IngressClient& operator=(const IngressClient&) = delete;

 private:
  IngressClient(std::shared_ptr<SSL_CTX> ctx, std::shared_ptr<crypto::TlsSocket> tls);
  std::shared_ptr<SSL_CTX> ctx_;
  std::shared_ptr<crypto::TlsSocket> tls_;
  ChunkDecoder decoder_{kMaxChunk};
  std::vector<std::string_view> pieces_;  // into rbuf_ or leftover_
  std::size_t piece_ = 0;                 // next of pieces_
  std::string_view partial_;              // rest of a piece read_some did not take
  std::string leftover_;                  // bytes read with the entry's answer
  std::string route_;
  bool bulk_ = false;
  std::string wbuf_;
  std::vector<char> rbuf_;
};

// Carries a local TCP connection over an ingress client both ways until both directions ended
// (half-closes forwarded), as `rapctl connect` does for each accepted connection.
asio::awaitable<void> pipe(asio::ip::tcp::socket& sock, IngressClient& client);

}  // namespace rap::services::tcp
