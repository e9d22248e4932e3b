#include "rap/fabric/diag_services.h"

#include <string>
#include <vector>

namespace rap::fabric {

asio::awaitable<void> echo_service(std::shared_ptr<Stream> st) {
  std::vector<std::uint8_t> buf(64 * 1024);
  for (;;) {
    auto r = co_await st->read_some(asio::buffer(buf));
    if (!r || *r == 0) break;
    if (!co_await st->write(asio::buffer(buf.data(), *r))) break;
  }
  (void)st->close_write();
}

asio::awaitable<void> discard_service(std::shared_ptr<Stream> st) {
  std::vector<std::uint8_t> buf(256 * 1024);
  std::uint64_t total = 0;
  for (;;) {
    auto r = co_await st->read_some(asio::buffer(buf));
    if (!r) co_return;
    if (*r == 0) break;
    total += *r;
  }
  const std::string reply = std::to_string(total);
  (void)co_await st->write(asio::buffer(reply));
  (void)st->close_write();
}

}  // namespace rap::fabric
