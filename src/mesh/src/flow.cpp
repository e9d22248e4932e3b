#include "rap/mesh/flow.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <set>

#include "flow_session.h"
#include "rap/common/priority.h"

namespace rap::mesh {

using Json = nlohmann::json;

// ---------------- protocol core ----------------

void encode_flow_header(const FlowFrameHeader& h, std::uint8_t* out) {
  out[0] = static_cast<std::uint8_t>(h.type);
  for (int i = 0; i < 4; ++i) out[1 + i] = static_cast<std::uint8_t>(h.length >> (24 - 8 * i));
  for (int i = 0; i < 8; ++i) out[5 + i] = static_cast<std::uint8_t>(h.offset >> (56 - 8 * i));
}

Result<std::optional<FlowFrameHeader>> decode_flow_header(std::span<const std::uint8_t> in) {
  if (in.size() < kFlowHeaderSize) return std::optional<FlowFrameHeader>();
  FlowFrameHeader h;
  if (in[0] < 1 || in[0] > 4) return rap::fail("flow_bad_frame", "unknown flow frame type");
  h.type = static_cast<FlowFrameType>(in[0]);
  for (int i = 0; i < 4; ++i) h.length = (h.length << 8) | in[1 + i];
  for (int i = 0; i < 8; ++i) h.offset = (h.offset << 8) | in[5 + i];
  if (h.type != FlowFrameType::kData && h.length != 0)
    return rap::fail("flow_bad_frame", "ACK, END and ABORT frames carry no payload");
  if (h.length > kMaxFlowData) return rap::fail("flow_bad_frame", "flow DATA frame too long");
  if (h.length > UINT64_MAX - h.offset) return rap::fail("flow_bad_frame", "flow offset overflows");
  return std::optional<FlowFrameHeader>(h);
}

Result<std::size_t> FlowRx::old_prefix(std::uint64_t offset, std::size_t length) const {
  if (offset > next) return rap::fail("flow_gap", "flow frame starts beyond the next position");
  return static_cast<std::size_t>(std::min<std::uint64_t>(length, next - offset));
}

std::uint64_t FlowTx::push(std::span<const std::uint8_t> data) {
  RAP_ASSERT(!end_);
  const std::uint64_t at = data_end_;
  if (!data.empty()) {
    chunks_.push_back(Chunk{at, std::vector<std::uint8_t>(data.begin(), data.end())});
    data_end_ += data.size();
    kept_ += data.size();
  }
  return at;
}

std::uint64_t FlowTx::push_end() {
  RAP_ASSERT(!end_);
  end_ = true;
  return data_end_;
}

Result<void> FlowTx::ack(std::uint64_t upto) {
  if (upto > next()) return rap::fail("flow_bad_ack", "acknowledgement beyond what was sent");
  if (upto <= acked_) return {};
  acked_ = upto;
  while (!chunks_.empty()) {
    auto& c = chunks_.front();
    const std::uint64_t stop = c.offset + c.bytes.size();
    if (stop > upto) {
      // Partly delivered: the kept count shrinks, the chunk stays until fully acknowledged.
      break;
    }
    kept_ -= c.bytes.size();
    chunks_.pop_front();
  }
  // Bytes of a partly acknowledged head chunk are still counted: they are still held.
  return {};
}

namespace detail {

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadBuffer = 128 * 1024;

}  // namespace

asio::awaitable<void> Notifier::wait(const asio::any_io_executor& ex) {
  auto t = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
  waiters_.push_back(t);
  (void)co_await t->async_wait(kTuple);
}

void Notifier::notify() {
  auto list = std::move(waiters_);
  waiters_.clear();
  for (auto& w : list)
    if (auto t = w.lock()) t->cancel();
}

Flow::Flow(MeshNode& mesh, Side side, std::string id, std::unique_ptr<RouteChannel> ch,
           std::vector<Lease> leases, fabric::TrafficClass cls, Json hello)
    : mesh_(mesh),
      ex_(mesh.ex_),
      side_(side),
      id_(std::move(id)),
      ch_(std::move(ch)),
      leases_(std::move(leases)),
      lease_(ch_->lease()),
      cls_(cls),
      hello_(std::move(hello)),
      rbuf_(kReadBuffer) {}

asio::awaitable<void> Flow::lock() {
  auto self = shared_from_this();
  while (locked_) co_await changed_.wait(ex_);
  locked_ = true;
}

void Flow::unlock() {
  locked_ = false;
  changed_.notify();
}

asio::awaitable<Result<void>> Flow::send_frame(RouteChannel& ch, FlowFrameType type,
                                               std::uint64_t offset,
                                               std::span<const std::uint8_t> data) {
  std::array<std::uint8_t, kFlowHeaderSize> h{};
  encode_flow_header(FlowFrameHeader{type, static_cast<std::uint32_t>(data.size()), offset},
                     h.data());
  auto w = co_await ch.write(asio::buffer(h));
  if (w && !data.empty()) w = co_await ch.write(asio::buffer(data.data(), data.size()));
  co_return w;
}

asio::awaitable<Result<void>> Flow::answer(const Json& reply) {
  auto self = shared_from_this();
  Json r = reply;
  if (reply.contains("error")) {
    refused_ = true;  // the service refused: the route ends after the answer, nothing resumes
  } else {
    r["flow"] = Json{{"id", id_}, {"rx", rx_.next}, {"window", mesh_.options_.flow_resend_limit}};
  }
  auto ch = ch_;
  co_return co_await ch->answer(r);
}

void Flow::fail(const Error& e) {
  if (state_ == State::kFailed) return;
  state_ = State::kFailed;
  error_ = e;
  epoch_++;
  if (ch_) ch_->reset(e.message);
  mesh_.flows_.erase(id_);
  changed_.notify();
}

void Flow::end(const Error& e) {
  if (state_ != State::kAttached || !ch_) {
    fail(e);  // no live route to tell: the other end's grace or resume timeout ends it
    return;
  }
  state_ = State::kFailed;
  error_ = e;
  epoch_++;
  mesh_.flows_.erase(id_);
  changed_.notify();
  // The route lingers 1 s so the ABORT arrives before the stream's reset (which may discard
  // unread data), and is reset then whatever happened (a route without send credit included).
  auto linger = std::make_shared<asio::steady_timer>(ex_, std::chrono::seconds(1));
  linger->async_wait(
      [linger, ch = ch_, msg = e.message](const boost::system::error_code&) { ch->reset(msg); });
  asio::co_spawn(
      ex_,
      [self = shared_from_this(), ch = ch_]() -> asio::awaitable<void> {
        co_await self->lock();
        const bool sent =
            (co_await self->send_frame(*ch, FlowFrameType::kAbort, 0, {})).has_value();
        self->unlock();
        if (sent) self->mesh_.count("flow_aborts_sent");
      },
      asio::detached);
}

void Flow::reset(const std::string& reason) {
  const Error e_{"flow_reset", reason};
  end(e_);
}

void Flow::release() {
  if (state_ == State::kAttached && ((tx_.ended() && eof_) || refused_) && ch_) {
    // Both halves ended: close the route cleanly.
    mesh_.flows_.erase(id_);
    state_ = State::kFailed;
    error_ = Error{"flow_closed", "flow closed"};
    asio::co_spawn(
        ex_,
        [self = shared_from_this()]() -> asio::awaitable<void> {
          co_await self->lock();
          auto ch = self->ch_;
          (void)co_await ch->close_write();
          self->unlock();
          // Linger for the peer's own close, then let the route go (ends the pump).
          asio::steady_timer t(self->ex_, std::chrono::seconds(5));
          (void)co_await t.async_wait(kTuple);
          ch->reset("flow closed");
        },
        asio::detached);
    return;
  }
  const Error e_{"flow_dropped", "the service dropped the flow"};
  end(e_);
}

void Flow::route_failed(std::uint64_t epoch, const Error& why) {
  if (epoch != epoch_ || state_ != State::kAttached) return;
  epoch_++;
  failed_at_ = mesh_.clock_.now();
  failure_reason_ = why.code;
  failure_detail_ = why.message;
  if (ch_) ch_->reset("flow leaves this route: " + why.message);
  mesh_.count("flow_route_failures");
  if (side_ == Side::kEntry) mesh_.note_route_failure(lease_);
  spdlog::info("mesh: flow {} lost route {}: {} {}", id_, lease_.id, why.code, why.message);
  if (side_ == Side::kEntry) {
    state_ = State::kResuming;
    asio::co_spawn(ex_, reattach(why), asio::detached);
  } else {
    state_ = State::kSuspended;
    asio::co_spawn(ex_, grace(epoch_), asio::detached);
  }
  changed_.notify();
}

std::vector<const Lease*> Flow::candidates() const {
  // Routes sharing no intermediate node with the failed one first (in ticket order), then the
  // rest (the failed route last: its hop may come back).
  std::set<std::string> bad;
  for (std::size_t i = 1; i + 1 < lease_.hops.size(); ++i) bad.insert(lease_.hops[i].node);
  std::vector<const Lease*> disjoint;
  std::vector<const Lease*> rest;
  for (const auto& l : leases_) {
    if (l.id == lease_.id) continue;
    bool shares = false;
    for (std::size_t i = 1; i + 1 < l.hops.size(); ++i) shares |= bad.contains(l.hops[i].node);
    (shares ? rest : disjoint).push_back(&l);
  }
  for (const auto& l : leases_)
    if (l.id == lease_.id) rest.push_back(&l);
  disjoint.insert(disjoint.end(), rest.begin(), rest.end());
  return disjoint;
}

asio::awaitable<void> Flow::reattach(Error why) {
  auto self = shared_from_this();
  const auto start = mesh_.clock_.now();
  const auto deadline = start + mesh_.options_.flow_resume_timeout;
  const std::string from = lease_.id;
  Error last = why;
  int round = 0;
  while (state_ == State::kResuming && !mesh_.stopped_) {
    ++round;
    auto cands = candidates();
    std::stable_partition(cands.begin(), cands.end(),
                          [&](const Lease* l) { return !mesh_.recently_failed(*l); });
    for (const Lease* cand : cands) {
      if (!usable_at(*cand, mesh_.trust(), mesh_.wall_now(), /*resume=*/true)) continue;
      const Json resume_hello{{"flow",
                               {{"id", id_},
                                {"resume", true},
                                {"rx", rx_.next},
                                {"window", mesh_.options_.flow_resend_limit}}}};
      auto r = co_await mesh_.open_route(*cand, cls_, resume_hello);
      if (state_ != State::kResuming) co_return;
      if (!r) {
        last = r.error();
        if (round == 1)
          spdlog::info("mesh: flow {} resume on route {} failed: {} {}", id_, cand->id, last.code,
                       last.message);
        if (last.code.rfind("flow_", 0) == 0) {  // the exit no longer has it
          mesh_.count("flow_resume_failed");
          fail(last);
          co_return;
        }
        continue;
      }
      const auto& f = (*r)->hello().find("flow");
      std::uint64_t peer_rx = 0;
      if (f == (*r)->hello().end() || !f->is_object() || !f->contains("rx") ||
          !(*f)["rx"].is_number_unsigned()) {
        (*r)->reset("resume answer without flow position");
        last = Error{"bad_message", "resume answer without flow position"};
        continue;
      }
      peer_rx = (*f)["rx"].get<std::uint64_t>();
      std::shared_ptr<RouteChannel> ch(std::move(*r));
      co_await lock();
      if (state_ != State::kResuming) {
        unlock();
        ch->reset("flow ended during resume");
        co_return;
      }
      auto ok = co_await install(ch, peer_rx, false);
      unlock();
      if (!ok) {
        fail(ok.error());
        co_return;
      }
      const double ms =
          std::chrono::duration<double, std::milli>(mesh_.clock_.now() - failed_at_).count();
      mesh_.flow_switched(id_, from, lease_.id, failure_reason_, failure_detail_, ms);
      spdlog::info("mesh: flow {} moved from route {} to {} in {:.1f} ms ({})", id_, from,
                   lease_.id, ms, failure_reason_);
      co_return;
    }
    if (mesh_.clock_.now() >= deadline) break;
    asio::steady_timer t(ex_, std::chrono::milliseconds(200));
    (void)co_await t.async_wait(kTuple);
  }
  if (state_ == State::kResuming) {
    mesh_.count("flow_resume_failed");
    const Error e_{"route_lost", "no route could take over the flow (last: " + last.code + ": " +
                                     last.message + ")"};
    fail(e_);
  }
}

asio::awaitable<void> Flow::grace(std::uint64_t epoch) {
  auto self = shared_from_this();
  asio::steady_timer t(ex_, mesh_.options_.flow_resume_grace);
  (void)co_await t.async_wait(kTuple);
  if (state_ == State::kSuspended && epoch_ == epoch) {
    mesh_.count("flow_resume_expired");
    const Error e_{"route_lost", "the entry did not resume the flow in time"};
    fail(e_);
  }
}

asio::awaitable<Result<void>> Flow::install(std::shared_ptr<RouteChannel> ch, std::uint64_t peer_rx,
                                            bool answer) {
  if (auto a = tx_.ack(peer_rx); !a) co_return a;
  epoch_++;
  auto old = std::exchange(ch_, ch);
  if (old) old->reset("flow moved to route " + ch->lease().id);
  lease_ = ch->lease();
  // Received but undelivered bytes are dropped: the peer resends from what was delivered.
  rpos_ = rend_ = 0;
  data_left_ = 0;
  rxq_.clear();
  rx_recv_ = rx_.next;
  if (end_at_ && *end_at_ >= rx_.next) end_at_.reset();
  ack_sent_ = rx_.next;
  switches_++;
  if (answer) {
    const Json ok_{
        {"ok", true},
        {"flow", {{"id", id_}, {"rx", rx_.next}, {"window", mesh_.options_.flow_resend_limit}}}};
    if (auto w = co_await ch->answer(ok_); !w) co_return w;
  }
  // Resend what the other side has not received. Copies of the spans first: the buffer may
  // change while a write waits (it cannot: we hold the lock, and acks only shrink it after).
  std::vector<std::pair<std::uint64_t, std::span<const std::uint8_t>>> parts;
  std::optional<std::uint64_t> end_at;
  tx_.resend_from(
      peer_rx,
      [&](std::uint64_t off, std::span<const std::uint8_t> b) { parts.emplace_back(off, b); },
      [&](std::uint64_t off) { end_at = off; });
  const std::uint64_t ep = epoch_;
  state_ = State::kAttached;
  // Read the new route now: the resend below can wait for flow-control credit that only our
  // reading (the other side's resend, its acks) releases.
  start_pump();
  changed_.notify();
  std::uint64_t resent = 0;
  for (const auto& [off, bytes] : parts) {
    for (std::size_t i = 0; i < bytes.size(); i += kMaxFlowData) {
      auto piece = bytes.subspan(i, std::min(kMaxFlowData, bytes.size() - i));
      auto w = co_await send_frame(*ch, FlowFrameType::kData, off + i, piece);
      if (!w || ep != epoch_) {
        if (!w) route_failed(ep, w.error());
        co_return Result<void>{};
      }
      resent += piece.size();
    }
  }
  if (end_at) {
    auto w = co_await send_frame(*ch, FlowFrameType::kEnd, *end_at, {});
    if (!w) route_failed(ep, w.error());
  }
  mesh_.counters_["flow_resent_bytes"] += resent;
  changed_.notify();
  co_return Result<void>{};
}

asio::awaitable<Result<void>> Flow::resume_on(std::unique_ptr<RouteChannel> ch,
                                              std::uint64_t peer_rx) {
  auto self = shared_from_this();
  std::shared_ptr<RouteChannel> sch(std::move(ch));
  if (state_ == State::kFailed) co_return rap::fail("flow_unknown", "the flow has ended");
  if (state_ == State::kAttached) {
    // The entry saw the failure first (the old route may still look alive from here): fence it.
    const Error e_{"resumed_elsewhere", "the entry resumed the flow on another route"};
    route_failed(epoch_, e_);
  }
  co_await lock();
  if (state_ == State::kFailed) {
    unlock();
    co_return rap::fail("flow_unknown", "the flow has ended");
  }
  auto r = co_await install(sch, peer_rx, true);
  unlock();
  if (r) {
    const double ms =
        std::chrono::duration<double, std::milli>(mesh_.clock_.now() - failed_at_).count();
    spdlog::info("mesh: flow {} resumed by the entry on route {} after {:.1f} ms", id_, lease_.id,
                 ms);
    mesh_.count("flow_resumed_here");
  }
  co_return r;
}

void Flow::maybe_ack(bool force) {
  if (rx_.next - ack_sent_ < mesh_.options_.flow_ack_every && !(force && rx_.next > ack_sent_))
    return;
  if (ack_writer_running_) return;
  ack_writer_running_ = true;
  asio::co_spawn(ex_, ack_writer(), asio::detached);
}

asio::awaitable<void> Flow::ack_writer() {
  auto self = shared_from_this();
  while (state_ == State::kAttached && rx_.next > ack_sent_) {
    co_await lock();
    if (state_ != State::kAttached) {
      unlock();
      break;
    }
    const std::uint64_t v = rx_.next;
    const std::uint64_t ep = epoch_;
    auto ch = ch_;
    auto w = co_await send_frame(*ch, FlowFrameType::kAck, v, {});
    unlock();
    if (!w) {
      route_failed(ep, w.error());
      break;
    }
    if (ep == epoch_) ack_sent_ = std::max(ack_sent_, v);
  }
  ack_writer_running_ = false;
}

Result<void> Flow::consume() {
  for (;;) {
    if (data_left_ > 0) {
      const std::size_t avail = std::min<std::uint64_t>(data_left_, rend_ - rpos_);
      if (avail == 0) return {};
      auto old = FlowRx{rx_recv_, 0}.old_prefix(data_seq_, avail);
      if (!old) return tl::unexpected(old.error());
      if (*old > 0) {  // already received (a resend overlap or a late frame): dropped
        rpos_ += *old;
        data_seq_ += *old;
        data_left_ -= *old;
        rx_.stale += *old;
        continue;
      }
      if (end_at_) return rap::fail("flow_bad_frame", "flow DATA after END");
      if (rxq_.size() + avail > rx_limit_)
        return rap::fail("flow_overrun", "the peer sent more than its announced window");
      rxq_.append({rbuf_.data() + rpos_, avail});
      rpos_ += avail;
      data_seq_ += avail;
      data_left_ -= avail;
      rx_recv_ += avail;
      continue;
    }
    auto h = decode_flow_header({rbuf_.data() + rpos_, rend_ - rpos_});
    if (!h) return tl::unexpected(h.error());
    if (!*h) return {};
    rpos_ += kFlowHeaderSize;
    switch ((*h)->type) {
      case FlowFrameType::kData:
        data_left_ = (*h)->length;
        data_seq_ = (*h)->offset;
        break;
      case FlowFrameType::kAck:
        if (auto a = tx_.ack((*h)->offset); !a) return tl::unexpected(a.error());
        break;
      case FlowFrameType::kAbort:
        mesh_.count("flow_aborts_received");
        return rap::fail("flow_aborted", "the other end ended the flow for good");
      case FlowFrameType::kEnd: {
        const std::uint64_t at = (*h)->offset;
        if (at < rx_recv_) break;  // a resent END we already have
        if (at > rx_recv_) return rap::fail("flow_gap", "flow END beyond the next position");
        end_at_ = at;
        rx_recv_ = at + 1;
        break;
      }
    }
  }
}

asio::awaitable<void> Flow::pump(std::uint64_t epoch) {
  // Reads the route continuously, whether or not the service reads: acknowledgements must never
  // wait behind unread data (the service's reading may itself wait on them). What it buffers is
  // bounded by the peer's announced window (its resend limit).
  auto self = shared_from_this();
  auto ch = ch_;
  while (epoch == epoch_ && state_ == State::kAttached) {
    if (rpos_ == rend_) rpos_ = rend_ = 0;
    if (rbuf_.size() - rend_ < kFlowHeaderSize) {
      std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
      rend_ -= rpos_;
      rpos_ = 0;
    }
    auto n = co_await ch->read_some(asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_));
    if (epoch != epoch_) {
      if (n && *n > 0) rx_.stale += *n;  // bytes of a route we left: fenced
      co_return;
    }
    if (!n || *n == 0) {
      // The peer closes the route only once both halves ended (release()); after its END that
      // is the clean end of the flow, not a failure.
      if (end_at_) co_return;
      const Error e_ = n ? Error{"route_closed", "the route ended before the flow did"} : n.error();
      route_failed(epoch, e_);
      co_return;
    }
    rend_ += *n;
    if (auto c = consume(); !c) {
      if (c.error().code != "flow_aborted") mesh_.count("flow_protocol_errors");
      fail(c.error());
      co_return;
    }
    changed_.notify();
    // Stream reads complete without suspending while data is queued: yield after each batch so
    // one busy flow cannot hold this node's thread; a bulk flow's next batch waits until no
    // other work is ready (rap/common/priority.h).
    co_await rap::yield(cls_ == fabric::TrafficClass::kBulk);
  }
}

void Flow::start_pump() {
  asio::co_spawn(ex_, pump(epoch_), asio::detached);
}

asio::awaitable<Result<std::size_t>> Flow::read_some(asio::mutable_buffer buf) {
  auto self = shared_from_this();
  if (buf.size() == 0) co_return std::size_t{0};
  for (;;) {
    if (state_ == State::kFailed) co_return tl::unexpected(error_);
    if (eof_) co_return std::size_t{0};
    if (!rxq_.empty()) {
      const std::size_t n = rxq_.read({static_cast<std::uint8_t*>(buf.data()), buf.size()});
      rx_.next += n;
      bytes_in_ += n;
      maybe_ack(false);
      co_return n;
    }
    if (end_at_ && rx_.next == *end_at_) {
      eof_ = true;
      rx_.next = *end_at_ + 1;
      maybe_ack(true);
      co_return std::size_t{0};
    }
    co_await changed_.wait(ex_);
  }
}

asio::awaitable<Result<void>> Flow::write(asio::const_buffer buf) {
  auto self = shared_from_this();
  const auto* p = static_cast<const std::uint8_t*>(buf.data());
  std::size_t left = buf.size();
  while (left > 0) {
    for (;;) {
      if (state_ == State::kFailed) co_return tl::unexpected(error_);
      if (tx_.ended()) co_return rap::fail("flow_closed", "write after close_write");
      if (tx_.unacked_bytes() < mesh_.options_.flow_resend_limit) break;
      co_await changed_.wait(ex_);
    }
    const std::size_t n = std::min(left, kMaxFlowData);
    co_await lock();
    if (state_ == State::kFailed) {
      unlock();
      co_return tl::unexpected(error_);
    }
    const std::span<const std::uint8_t> piece(p, n);
    const std::uint64_t off = tx_.push(piece);
    bytes_out_ += n;
    p += n;
    left -= n;
    if (state_ == State::kAttached) {
      auto ch = ch_;
      const std::uint64_t ep = epoch_;
      auto w = co_await send_frame(*ch, FlowFrameType::kData, off, piece);
      if (!w) route_failed(ep, w.error());  // kept: the next route resends it
    }
    unlock();
  }
  co_return Result<void>{};
}

asio::awaitable<Result<void>> Flow::close_write() {
  auto self = shared_from_this();
  if (state_ == State::kFailed) co_return tl::unexpected(error_);
  if (tx_.ended() || refused_) co_return Result<void>{};
  co_await lock();
  const std::uint64_t at = tx_.push_end();
  if (state_ == State::kAttached) {
    auto ch = ch_;
    const std::uint64_t ep = epoch_;
    auto w = co_await send_frame(*ch, FlowFrameType::kEnd, at, {});
    if (!w) route_failed(ep, w.error());
  }
  unlock();
  co_return Result<void>{};
}

Json Flow::status() const {
  static constexpr const char* kStates[] = {"attached", "resuming", "suspended", "failed"};
  Json hops = Json::array();
  for (const auto& h : lease_.hops) hops.push_back(h.node);
  return Json{{"id", id_},
              {"hops", hops},
              {"side", side_ == Side::kEntry ? "entry" : "exit"},
              {"route", lease_.id},
              {"route_role", lease_.role},
              {"state", kStates[static_cast<int>(state_)]},
              {"switches", switches_},
              {"bytes_in", bytes_in_},
              {"bytes_out", bytes_out_},
              {"resend_bytes", tx_.unacked_bytes()},
              {"stale_bytes_dropped", rx_.stale}};
}

}  // namespace detail
}  // namespace rap::mesh
