// RedisFixture: a throwaway redis-server on a unix socket in a TempDir
// (--port 0 --unixsocket DIR/redis.sock --dir DIR --daemonize no --save '').
// Killed (and the dir removed) on destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rap/common/result.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

namespace rap::testing {

struct RedisOptions {
  std::vector<std::string> extra_args;  // e.g. {"--maxmemory", "10mb"}
  std::chrono::milliseconds start_timeout{20000};
};

class RedisFixture {
 public:
  static Result<std::unique_ptr<RedisFixture>> start(const RedisOptions& opts = {});
  ~RedisFixture();
  RedisFixture(const RedisFixture&) = delete;
  RedisFixture& operator=(const RedisFixture&) = delete;

  std::string socket_path() const { return (dir_.path() / "redis.sock").string(); }
  const std::filesystem::path& dir() const { return dir_.path(); }
  pid_t pid() const { return server_ ? server_->pid() : -1; }
  // Sends an inline PING over the socket; true on "+PONG".
  static bool ping(const std::string& socket_path, std::chrono::milliseconds timeout);
  void stop();

 private:
  explicit RedisFixture(TempDir dir) : dir_(std::move(dir)) {}
  TempDir dir_;
  std::unique_ptr<Subprocess> server_;
};

}  // namespace rap::testing
