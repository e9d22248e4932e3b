#include "rap/testing/redis_fixture.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "rap/testing/netns.h"

namespace rap::testing {

using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<RedisFixture>> RedisFixture::start(const RedisOptions& opts) {
  TempDir::remove_stale("rap-redis-");
  auto dir = TempDir::create_owned("rap-redis-");
  if (!dir) return tl::unexpected(dir.error());
  std::unique_ptr<RedisFixture> rf(new RedisFixture(std::move(*dir)));
  std::vector<std::string> argv = {"redis-server",
                                   "--port",
                                   "0",
                                   "--unixsocket",
                                   rf->socket_path(),
                                   "--unixsocketperm",
                                   "777",
                                   "--dir",
                                   rf->dir_.str(),
                                   "--daemonize",
                                   "no",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no"};
  argv.insert(argv.end(), opts.extra_args.begin(), opts.extra_args.end());
  SubprocessOptions so;
  so.output_file = rf->dir_.path() / "redis.log";
  so.cwd = rf->dir_.path();
  auto sp = Subprocess::spawn(argv, so);
  if (!sp) return fail(sp.error().code, sp.error().message + " (apt-get install redis-server)");
  rf->server_ = std::make_unique<Subprocess>(std::move(*sp));
  const auto deadline = Clock::now() + opts.start_timeout;
  for (;;) {
    if (ping(rf->socket_path(), std::chrono::milliseconds(500))) break;
    if (!rf->server_->running()) {
      return fail("redis_start_failed",
                  "redis-server exited with status " +
                      std::to_string(rf->server_->exit_status().value_or(-1)) + "; log:\n" +
                      rf->server_->output());
    }
    if (Clock::now() >= deadline) {
      return fail("timeout", "redis-server did not answer PING on " + rf->socket_path() +
                                 " within " + std::to_string(opts.start_timeout.count()) +
                                 " ms; log:\n" + rf->server_->output());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return rf;
}

RedisFixture::~RedisFixture() {
  stop();
}

void RedisFixture::stop() {
  if (!server_) return;
  server_->terminate(std::chrono::milliseconds(3000));
  server_.reset();
}

bool RedisFixture::ping(const std::string& socket_path, std::chrono::milliseconds timeout) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return false;
  if (!write_all(fd.get(), "PING\r\n", timeout)) return false;
  auto reply = read_exact(fd.get(), 7, timeout);
  return reply && *reply == "+PONG\r\n";
}

}  // namespace rap::testing
