// Internal helpers shared by carrier implementations.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>

#include "rap/fabric/carrier.h"

namespace rap::fabric::detail {

Result<PeerProof> proof_from_ssl(SSL* ssl);
std::string describe_tls_failure(SSL* ssl, const boost::system::error_code& ec);

// Latency tuning for every fabric TCP socket: no Nagle, and at most kNotSentLowat bytes of
// unsent data in the kernel so newly scheduled interactive frames are not stuck behind megabytes
// of bulk already handed to the socket (TCP_NOTSENT_LOWAT).
inline constexpr int kNotSentLowat = 128 * 1024;
void tune_socket(asio::ip::tcp::socket& s);
// TCP_INFO of the connected socket `fd` (nullopt when the kernel does not answer).
std::optional<TransportInfo> tcp_transport_info(int fd);
// "address:port" of the peer, or "unknown".
std::string endpoint_string(const asio::ip::tcp::socket& s);

// Runs `on_expire` if not cancelled within `timeout` (closes sockets to abort pending I/O).
class Deadline {
 public:
  Deadline(const asio::any_io_executor& ex, Duration timeout, std::function<void()> on_expire)
      : state_(std::make_shared<State>(ex)) {
    state_->on_expire = std::move(on_expire);
    state_->timer.expires_after(timeout);
    state_->timer.async_wait([s = state_](const boost::system::error_code& ec) {
      if (!ec && s->armed) {
        s->expired = true;
        s->on_expire();
      }
    });
  }
  ~Deadline() { cancel(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  void cancel() {
    state_->armed = false;
    state_->timer.cancel();
  }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    explicit State(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::function<void()> on_expire;
    bool armed = true;
    bool expired = false;
  };
  std::shared_ptr<State> state_;
};

}  // namespace rap::fabric::detail
