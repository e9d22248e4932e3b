// The fabric's public API for services: a Session is one persistent, authenticated, multiplexed
// connection to a peer node; a Stream is one ordered, flow-controlled byte stream inside it.
//
//   auto carrier = co_await tls_connect(ctx, "10.0.0.2", 7443, 5s);
//   auto session = Session::create(ex, std::move(*carrier), config, signer, clock);
//   co_await session->start();                       // HELLO -> AUTH -> SESSION_READY
//   auto stream = session->open_stream("tcp", TrafficClass::kInteractive, route_id);
//   co_await (*stream)->write(asio::buffer(request));
//   auto n = co_await (*stream)->read_some(asio::buffer(reply));
//
// Threading: a session and its streams live on the executor of the coroutine that created them
// (one thread). Services never see frames, routes or carriers.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rap/common/clock.h"
#include "rap/common/result.h"
#include "rap/crypto/keys.h"
#include "rap/fabric/carrier.h"
#include "rap/fabric/session_core.h"

namespace rap::fabric {

class Session;

// Signs AUTH with the node's Ed25519 key (the key of its certificate).
class KeySigner final : public Signer {
 public:
  explicit KeySigner(crypto::Ed25519Key key) : key_(std::move(key)) {}
  std::array<std::uint8_t, 64> sign(std::span<const std::uint8_t> m) const override {
    return key_.sign(m);
  }

 private:
  crypto::Ed25519Key key_;
};

class Stream {
 public:
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  std::uint32_t id() const { return id_; }
  const StreamInfo& info() const { return info_; }
  // Node id of the peer this stream's session is with (from its certificate).
  const std::string& peer_node_id() const;
  // Reads at least one byte; 0 means the peer closed its side (EOF). Errors carry the reset
  // reason.
  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf);
  // Queues all bytes, waiting for send room (backpressure) as needed.
  asio::awaitable<Result<void>> write(asio::const_buffer buf);
  // Half-close: the peer reads EOF after the queued bytes.
  Result<void> close_write();
  void reset(ErrorCode code, const std::string& reason);

 private:
  friend class Session;
  Stream(std::shared_ptr<Session> s, StreamInfo info);
  void wake();
  std::shared_ptr<Session> session_;
  std::uint32_t id_;
  StreamInfo info_;
  // One wake-up signal per direction: a reader and a writer may wait at the same time (a
  // full-duplex splice); one shared timer would make each cancel the other's wait in a loop.
  asio::steady_timer read_signal_;
  asio::steady_timer write_signal_;
  std::optional<Error> reset_;
};

class Session : public std::enable_shared_from_this<Session>, private SessionObserver {
 public:
  // `signer` and `clock` must outlive the session. config.role is set from how the carrier was
  // made: pass kInitiator for connect, kAcceptor for accept.
  static std::shared_ptr<Session> create(const asio::any_io_executor& ex,
                                         std::unique_ptr<Carrier> carrier, SessionConfig config,
                                         const Signer& signer, const Clock& clock);
  ~Session() override;

  // Starts the I/O loops and waits for the handshake. On failure the session is closed and the
  // error says why (wrong cluster, HELLO/certificate mismatch, bad AUTH, timeout...).
  asio::awaitable<Result<void>> start();
  Result<std::shared_ptr<Stream>> open_stream(const std::string& service, TrafficClass cls,
                                              std::uint64_t route_id = 0);
  // Next stream the peer opened; nullptr once the session is closed.
  asio::awaitable<std::shared_ptr<Stream>> accept();
  void goaway(ErrorCode code, const std::string& reason, bool drain);
  void close(const std::string& reason);
  // Completes when the session is closed and its loops have ended.
  asio::awaitable<void> wait_closed();

  bool is_open() const { return core_.is_open(); }
  bool is_closed() const { return core_.is_closed(); }
  const Error& close_reason() const { return core_.close_reason(); }
  const PeerProof& peer() const { return core_.peer(); }
  std::string_view carrier_kind() const { return carrier_->kind(); }
  std::string remote_endpoint() const { return carrier_->remote_endpoint(); }
  std::optional<TransportInfo> transport_info() const { return carrier_->transport_info(); }
  SessionStats stats() const { return core_.stats(); }
  std::vector<StreamStats> stream_stats() const { return core_.stream_stats(); }
  void set_node_load(std::uint16_t cpu_permille, std::uint32_t memory_kib) {
    core_.set_node_load(cpu_permille, memory_kib);
  }
  SessionCore& core() { return core_; }
  // Whether the write loop holds its 64 KiB batch buffer (it gives it back after about 1-2 s
  // with nothing to send).
  bool holds_write_buffer() const { return wbuf_ != nullptr; }

 private:
  friend class Stream;
  Session(std::unique_ptr<Carrier> carrier, SessionConfig config, const Signer& signer,
          const Clock& clock, const asio::any_io_executor& ex);
  asio::awaitable<void> read_loop();
  asio::awaitable<void> write_loop();
  asio::awaitable<void> tick_loop();
  void loop_done();

  // SessionObserver
  void on_ready() override;
  void on_stream_opened(std::uint32_t id) override;
  void on_readable(std::uint32_t id) override;
  void on_writable(std::uint32_t id) override;
  void on_stream_reset(std::uint32_t id, ErrorCode code, const std::string& reason) override;
  void on_output() override;
  void on_closed(const Error& why) override;

  void wake_stream(std::uint32_t id);

  std::unique_ptr<Carrier> carrier_;
  const Clock& clock_;
  asio::any_io_executor ex_;
  SessionCore core_;
  asio::steady_timer write_signal_;
  asio::steady_timer state_signal_;  // ready / closed / accept queue / loops done
  asio::steady_timer tick_timer_;
  std::deque<std::uint32_t> accept_queue_;
  std::map<std::uint32_t, Stream*> streams_;
  // The write loop's batch buffer. Kept while the session is busy (allocating it on every
  // pause cost a 64 KiB zero-fill per burst); the tick loop frees it once the write loop has
  // waited with nothing to send for kWriteBufferLinger, so idle sessions hold none.
  std::unique_ptr<std::uint8_t[]> wbuf_;
  bool write_idle_ = false;
  TimePoint write_idle_since_{};
  int loops_running_ = 0;
  bool started_ = false;
};

}  // namespace rap::fabric
