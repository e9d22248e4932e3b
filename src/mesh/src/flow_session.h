// Internal to rap_mesh: one resumable flow (docs/PROTOCOL.md §14.7) over a replaceable route
// channel. The entry side moves it to another lease when its route fails; the exit side keeps it
// suspended for a grace period and accepts the entry's resume on a new route. Runs on the mesh
// executor; every coroutine holds a shared_ptr to the flow.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rap/fabric/byte_queue.h"
#include "rap/mesh/flow.h"
#include "rap/mesh/mesh_node.h"

namespace rap::mesh::detail {

// Wakes every coroutine waiting at the time of notify() (a condition variable for one thread).
class Notifier {
 public:
  asio::awaitable<void> wait(const asio::any_io_executor& ex);
  void notify();

 private:
  std::list<std::weak_ptr<asio::steady_timer>> waiters_;
};

class Flow : public std::enable_shared_from_this<Flow> {
 public:
  enum class Side { kEntry, kExit };
  enum class State { kAttached, kResuming, kSuspended, kFailed };

  Flow(MeshNode& mesh, Side side, std::string id, std::unique_ptr<RouteChannel> ch,
       std::vector<Lease> leases, fabric::TrafficClass cls, nlohmann::json hello);

  const std::string& id() const { return id_; }
  Side side() const { return side_; }
  const Lease& lease() const { return lease_; }
  fabric::TrafficClass traffic_class() const { return cls_; }
  const nlohmann::json& hello() const { return hello_; }
  State state() const { return state_; }
  std::uint64_t bytes_in() const { return bytes_in_; }
  std::uint64_t bytes_out() const { return bytes_out_; }
  std::size_t resend_bytes() const { return tx_.unacked_bytes(); }
  std::uint64_t stale_bytes() const { return rx_.stale; }
  std::uint32_t switches() const { return switches_; }

  asio::awaitable<Result<void>> answer(const nlohmann::json& reply);
  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf);
  asio::awaitable<Result<void>> write(asio::const_buffer buf);
  asio::awaitable<Result<void>> close_write();
  void reset(const std::string& reason);
  // The application dropped its handle: a clean close when both halves ended, else a reset.
  void release();

  // Exit side: the entry resumed the flow on `ch`; `peer_rx` is the entry's receive position.
  // Answers the resume, then resends what the entry has not received.
  asio::awaitable<Result<void>> resume_on(std::unique_ptr<RouteChannel> ch, std::uint64_t peer_rx);
  // Ends the flow with an error for every waiter; the route is reset at once.
  void fail(const Error& e);
  // Ends the flow on purpose (the service reset or dropped it, its grant was revoked): as fail(),
  // but the other end is told with a flow ABORT first, so it releases its side now instead of
  // holding it for a resume.
  void end(const Error& e);
  nlohmann::json status() const;
  // Starts reading the current route (after construction and after each route change).
  void start_pump();
  // Largest amount the peer may have unacknowledged (its announced window, bounded).
  void set_peer_window(std::uint64_t w) { rx_limit_ = std::min<std::uint64_t>(w, 64u << 20); }

 private:
  asio::awaitable<void> lock();
  void unlock();
  // Installs `ch` as the current route; the caller holds the lock.
  asio::awaitable<Result<void>> install(std::shared_ptr<RouteChannel> ch, std::uint64_t peer_rx,
                                        bool answer);
  void route_failed(std::uint64_t epoch, const Error& why);
  asio::awaitable<void> reattach(Error why);
  asio::awaitable<void> grace(std::uint64_t epoch);
  void maybe_ack(bool force);
  asio::awaitable<void> ack_writer();
  // Reads the current route until it fails or is replaced; parses frames into rxq_.
  asio::awaitable<void> pump(std::uint64_t epoch);
  // Parses the bytes in rbuf_: DATA into rxq_, ACKs into tx_, END into end_at_.
  Result<void> consume();
  asio::awaitable<Result<void>> send_frame(RouteChannel& ch, FlowFrameType type,
                                           std::uint64_t offset,
                                           std::span<const std::uint8_t> data);
  std::vector<const Lease*> candidates() const;

  MeshNode& mesh_;
  asio::any_io_executor ex_;
  Side side_;
  std::string id_;
  std::shared_ptr<RouteChannel> ch_;
  std::vector<Lease> leases_;  // entry: the ticket's leases, primary first
  Lease lease_;                // the current route's lease
  fabric::TrafficClass cls_;
  nlohmann::json hello_;
  State state_ = State::kAttached;
  Error error_;
  std::uint64_t epoch_ = 0;  // bumped on every route change: fences the old route's bytes
  FlowTx tx_;
  FlowRx rx_;
  std::uint64_t ack_sent_ = 0;
  bool ack_writer_running_ = false;
  bool eof_ = false;
  bool refused_ = false;  // the exit service answered with an error
  bool locked_ = false;
  Notifier changed_;
  std::vector<std::uint8_t> rbuf_;
  std::size_t rpos_ = 0, rend_ = 0;
  std::uint64_t data_left_ = 0, data_seq_ = 0;  // the DATA frame being read
  std::uint64_t rx_recv_ = 0;                   // next position expected from the route
  std::optional<std::uint64_t> end_at_;         // the peer's END position, once received
  // Received, not yet delivered (in order). ByteQueue packs the pieces of many reads into
  // 64 KiB chunks instead of one allocation per piece.
  fabric::ByteQueue rxq_;
  std::uint64_t rx_limit_ = 4u << 20;  // the peer's window
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::uint32_t switches_ = 0;
  TimePoint failed_at_{};
  std::string failure_reason_;
  std::string failure_detail_;
};

// The RouteChannel services hold; dropping it releases the flow.
class FlowHandle final : public RouteChannel {
 public:
  explicit FlowHandle(std::shared_ptr<Flow> f) : f_(std::move(f)) {}
  ~FlowHandle() override { f_->release(); }
  FlowHandle(const FlowHandle&) = delete;
  FlowHandle& operator=(const FlowHandle&) = delete;
  const Lease& lease() const override { return f_->lease(); }
  const nlohmann::json& hello() const override { return f_->hello(); }
  asio::awaitable<Result<void>> answer(const nlohmann::json& reply) override {
    co_return co_await f_->answer(reply);
  }
  asio::awaitable<Result<std::size_t>> read_some(asio::mutable_buffer buf) override {
    co_return co_await f_->read_some(buf);
  }
  asio::awaitable<Result<void>> write(asio::const_buffer buf) override {
    co_return co_await f_->write(buf);
  }
  asio::awaitable<Result<void>> close_write() override { co_return co_await f_->close_write(); }
  void reset(const std::string& reason) override { f_->reset(reason); }
  std::uint64_t bytes_in() const override { return f_->bytes_in(); }
  std::uint64_t bytes_out() const override { return f_->bytes_out(); }
  fabric::TrafficClass traffic_class() const override { return f_->traffic_class(); }

 private:
  std::shared_ptr<Flow> f_;
};

}  // namespace rap::mesh::detail
