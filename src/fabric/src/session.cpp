#include "rap/fabric/session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

namespace rap::fabric {

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kIdleReadBuffer = 4 * 1024;
constexpr std::size_t kBusyReadBuffer = 64 * 1024;
constexpr std::size_t kWriteBuffer = 64 * 1024;
constexpr std::size_t kGuardedWriteBuffer = 16 * 1024;
constexpr auto kMaxTick = std::chrono::seconds(1);
constexpr auto kWriteBufferLinger = std::chrono::seconds(1);

// Waits until the timer is cancelled (the wake-up signal) or expires.
asio::awaitable<void> wait_signal(asio::steady_timer& t) {
  t.expires_at(asio::steady_timer::time_point::max());
  co_await t.async_wait(kTuple);
}
}  // namespace

// ---------------- Stream ----------------

Stream::Stream(std::shared_ptr<Session> s, StreamInfo info)
    : session_(std::move(s)),
      id_(info.id),
      info_(std::move(info)),
      read_signal_(session_->ex_),
      write_signal_(session_->ex_) {
  session_->streams_[id_] = this;
}

Stream::~Stream() {
  session_->streams_.erase(id_);
  if (!reset_) session_->core_.release_stream(id_);
}

const std::string& Stream::peer_node_id() const {
  return session_->peer().node_id;
}

void Stream::wake() {
  read_signal_.cancel();
  write_signal_.cancel();
}

asio::awaitable<Result<std::size_t>> Stream::read_some(asio::mutable_buffer buf) {
  for (;;) {
    if (reset_) co_return tl::unexpected(*reset_);
    bool eof = false;
    auto r = session_->core_.read(
        id_, std::span<std::uint8_t>(static_cast<std::uint8_t*>(buf.data()), buf.size()), eof,
        session_->clock_.now());
    if (!r) co_return r;
    if (*r > 0 || eof || buf.size() == 0) co_return *r;
    if (session_->core_.is_closed()) {
      co_return fail("session_closed", session_->core_.close_reason().message);
    }
    co_await wait_signal(read_signal_);
  }
}

asio::awaitable<Result<void>> Stream::write(asio::const_buffer buf) {
  auto data =
      std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(buf.data()), buf.size());
  while (!data.empty()) {
    if (reset_) co_return tl::unexpected(*reset_);
    auto r = session_->core_.write(id_, data);
    if (!r) co_return tl::unexpected(r.error());
    data = data.subspan(*r);
    if (data.empty()) break;
    co_await wait_signal(write_signal_);
  }
  co_return Result<void>{};
}

Result<void> Stream::close_write() {
  if (reset_) return tl::unexpected(*reset_);
  return session_->core_.close_stream(id_);
}

void Stream::reset(ErrorCode code, const std::string& reason) {
  if (reset_) return;
  reset_ = Error{std::string(to_string(code)), "reset locally: " + reason};
  session_->core_.reset_stream(id_, code, reason);
  wake();  // a reader or writer waiting on this stream returns the reset now
}

// ---------------- Session ----------------

std::shared_ptr<Session> Session::create(const asio::any_io_executor& ex,
                                         std::unique_ptr<Carrier> carrier, SessionConfig config,
                                         const Signer& signer, const Clock& clock) {
  return std::shared_ptr<Session>(
      new Session(std::move(carrier), std::move(config), signer, clock, ex));
}

Session::Session(std::unique_ptr<Carrier> carrier, SessionConfig config, const Signer& signer,
                 const Clock& clock, const asio::any_io_executor& ex)
    : carrier_(std::move(carrier)),
      clock_(clock),
      ex_(ex),
      core_(std::move(config), signer, carrier_->peer(), this),
      write_signal_(ex),
      state_signal_(ex),
      tick_timer_(ex) {}

Session::~Session() = default;

asio::awaitable<Result<void>> Session::start() {
  RAP_ASSERT(!started_);
  started_ = true;
  core_.start(clock_.now());
  auto self = shared_from_this();
  loops_running_ = 3;
  asio::co_spawn(
      ex_, [self]() { return self->read_loop(); }, asio::detached);
  asio::co_spawn(
      ex_, [self]() { return self->write_loop(); }, asio::detached);
  asio::co_spawn(
      ex_, [self]() { return self->tick_loop(); }, asio::detached);
  while (!core_.is_open() && !core_.is_closed() && core_.state() != SessionCore::State::kDraining) {
    co_await wait_signal(state_signal_);
  }
  if (core_.is_closed()) co_return tl::unexpected(core_.close_reason());
  co_return Result<void>{};
}

asio::awaitable<void> Session::read_loop() {
  std::vector<std::uint8_t> buf(kIdleReadBuffer);
  std::size_t have = 0;
  while (!core_.is_closed()) {
    if (have == buf.size())
      buf.resize(std::min<std::size_t>(buf.size() * 2, kBusyReadBuffer + 16 * 1024 * 1024));
    auto r = co_await carrier_->read_some(asio::buffer(buf.data() + have, buf.size() - have));
    if (!r) {
      core_.on_transport_error(r.error().message);
      break;
    }
    co_await asio::post(ex_, asio::use_awaitable);  // fairness, see write_loop
    const bool filled = have + *r == buf.size();
    have += *r;
    const std::size_t used =
        core_.on_receive(std::span<const std::uint8_t>(buf.data(), have), clock_.now());
    if (used < have) std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
    if (filled && buf.size() < kBusyReadBuffer) {
      buf.resize(kBusyReadBuffer);  // busy: read in large chunks
    } else if (!filled && have == 0 && buf.size() > kIdleReadBuffer && *r < kIdleReadBuffer) {
      std::vector<std::uint8_t>(kIdleReadBuffer).swap(buf);  // idle again: give memory back
    }
  }
  write_signal_.cancel();
  loop_done();
}

asio::awaitable<void> Session::write_loop() {
  // Waits for output; meanwhile (only then) the tick loop may free wbuf_.
  auto idle_wait = [this]() -> asio::awaitable<void> {
    write_idle_ = true;
    write_idle_since_ = clock_.now();
    co_await wait_signal(write_signal_);
    write_idle_ = false;
  };
  for (;;) {
    if (!core_.wants_write()) {
      if (core_.is_closed()) break;
      co_await idle_wait();
      continue;
    }
    if (!wbuf_) wbuf_ = std::make_unique_for_overwrite<std::uint8_t[]>(kWriteBuffer);
    // With a latency-sensitive stream open, write in TLS-record-sized batches so a message for
    // it waits behind at most one small batch.
    const std::size_t n = core_.produce(
        std::span<std::uint8_t>(wbuf_.get(),
                                core_.latency_sensitive() ? kGuardedWriteBuffer : kWriteBuffer),
        clock_.now());
    if (n == 0) {
      if (core_.is_closed()) break;
      co_await idle_wait();
      continue;
    }
    auto r = co_await carrier_->write(asio::buffer(wbuf_.get(), n));
    if (!r) {
      core_.on_transport_error(r.error().message);
      break;
    }
    // Carriers may complete without suspending (the socket had room): yield so the read loop
    // and the services on this executor are never starved by a busy writer.
    co_await asio::post(ex_, asio::use_awaitable);
  }
  carrier_->close();
  loop_done();
}

asio::awaitable<void> Session::tick_loop() {
  while (!core_.is_closed()) {
    auto deadline = core_.next_deadline();
    const auto cap = clock_.now() + kMaxTick;
    tick_timer_.expires_at(std::min(deadline, cap));
    co_await tick_timer_.async_wait(kTuple);
    if (core_.is_closed()) break;
    const auto now = clock_.now();
    core_.on_tick(now);
    if (write_idle_ && wbuf_ && now - write_idle_since_ >= kWriteBufferLinger) wbuf_.reset();
  }
  loop_done();
}

void Session::loop_done() {
  --loops_running_;
  state_signal_.cancel();
  if (loops_running_ == 0) {
    // Nothing may still be waiting on this session's timers after this point.
    write_signal_.cancel();
    tick_timer_.cancel();
  }
}

Result<std::shared_ptr<Stream>> Session::open_stream(const std::string& service, TrafficClass cls,
                                                     std::uint64_t route_id) {
  auto id = core_.open_stream(service, cls, route_id);
  if (!id) return tl::unexpected(id.error());
  return std::shared_ptr<Stream>(
      new Stream(shared_from_this(), StreamInfo{*id, service, cls, route_id}));
}

asio::awaitable<std::shared_ptr<Stream>> Session::accept() {
  for (;;) {
    while (!accept_queue_.empty()) {
      const auto id = accept_queue_.front();
      accept_queue_.pop_front();
      auto info = core_.stream_info(id);
      if (!info) continue;  // reset before it was accepted
      co_return std::shared_ptr<Stream>(new Stream(shared_from_this(), *info));
    }
    if (core_.is_closed() || !started_) co_return nullptr;
    co_await wait_signal(state_signal_);
  }
}

void Session::goaway(ErrorCode code, const std::string& reason, bool drain) {
  core_.goaway(code, reason, drain);
}

void Session::close(const std::string& reason) {
  if (core_.is_closed()) return;
  core_.goaway(ErrorCode::kShutdown, reason, false);
}

asio::awaitable<void> Session::wait_closed() {
  while (loops_running_ > 0 || (!core_.is_closed() && started_)) {
    co_await wait_signal(state_signal_);
  }
}

void Session::on_ready() {
  state_signal_.cancel();
}

void Session::on_stream_opened(std::uint32_t id) {
  accept_queue_.push_back(id);
  state_signal_.cancel();
}

void Session::wake_stream(std::uint32_t id) {
  auto it = streams_.find(id);
  if (it != streams_.end()) it->second->wake();
}

void Session::on_readable(std::uint32_t id) {
  wake_stream(id);
}
void Session::on_writable(std::uint32_t id) {
  wake_stream(id);
}

void Session::on_stream_reset(std::uint32_t id, ErrorCode code, const std::string& reason) {
  auto it = streams_.find(id);
  if (it != streams_.end()) {
    it->second->reset_ = Error{std::string(to_string(code)), reason};
    it->second->wake();
  }
}

void Session::on_output() {
  write_signal_.cancel();
}

void Session::on_closed(const Error& why) {
  spdlog::info("fabric session closed peer={} carrier={} reason={} detail=\"{}\"",
               core_.peer().node_id, carrier_ ? carrier_->kind() : "none", why.code, why.message);
  write_signal_.cancel();
  state_signal_.cancel();
  tick_timer_.cancel();
  for (auto& [id, s] : streams_) s->wake();
}

}  // namespace rap::fabric
