#include "rap/common/env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rap {
namespace {

class PosixEnv final : public Env {
 public:
  Result<std::string> read_file(const std::string& path) override {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail("io_error", "cannot open " + path + ": " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  Result<void> write_file_atomic(const std::string& path, const std::string& data,
                                 unsigned mode) override {
    const std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return fail("io_error", "cannot create " + tmp + ": " + std::strerror(errno));
    ::fchmod(fd, mode);
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return fail("io_error", "write " + tmp + ": " + std::strerror(e));
      }
      off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      ::unlink(tmp.c_str());
      return fail("io_error", "fsync/close " + tmp + ": " + std::strerror(errno));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      ::unlink(tmp.c_str());
      return fail("io_error", "rename " + tmp + ": " + std::strerror(errno));
    }
    return {};
  }

  bool exists(const std::string& path) override { return std::filesystem::exists(path); }

  Result<void> make_dirs(const std::string& path, unsigned mode) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return fail("io_error", "mkdir " + path + ": " + ec.message());
    ::chmod(path.c_str(), mode);
    return {};
  }
  Result<unsigned> file_mode(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return fail("not_found", path + " does not exist");
      return fail("io_error", "stat " + path + ": " + std::strerror(errno));
    }
    return static_cast<unsigned>(st.st_mode & 07777);
  }
};

}  // namespace

Env& default_env() {
  static PosixEnv env;
  return env;
}

}  // namespace rap
