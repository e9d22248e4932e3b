// Env: all filesystem access of the project goes through this interface (LevelDB style), so
// tests can substitute a fault-injecting implementation.
#pragma once

#include <memory>
#include <string>

#include "rap/common/result.h"

namespace rap {

class Env {
 public:
  virtual ~Env() = default;
  virtual Result<std::string> read_file(const std::string& path) = 0;
  // Atomically replaces `path` (write temp + fsync + rename) and sets its permission bits.
  virtual Result<void> write_file_atomic(const std::string& path, const std::string& data,
                                         unsigned mode) = 0;
  virtual bool exists(const std::string& path) = 0;
  virtual Result<void> make_dirs(const std::string& path, unsigned mode) = 0;
  // Permission bits (st_mode & 07777); error "not_found" if the path does not exist.
  virtual Result<unsigned> file_mode(const std::string& path) = 0;
};

// The real POSIX filesystem.
Env& default_env();

}  // namespace rap
