#include "rap/testing/temp_dir.h"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

namespace rap::testing {

namespace fs = std::filesystem;

Result<TempDir> TempDir::create(std::string_view prefix) {
  return create_in("/tmp", prefix);
}

Result<TempDir> TempDir::create_in(const fs::path& base, std::string_view prefix) {
  if (prefix.find('/') != std::string_view::npos) {
    return fail("bad_argument", "TempDir prefix must not contain '/': " + std::string(prefix));
  }
  std::string tmpl = (base / (std::string(prefix) + "XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return fail("io_error", "mkdtemp(" + tmpl + "): " + std::strerror(errno));
  }
  return TempDir(fs::path(buf.data()));
}

Result<TempDir> TempDir::create_for_bytes(std::string_view prefix, std::uintmax_t bytes) {
  // Leave headroom: other tests of a parallel run use the same file systems.
  const std::uintmax_t want = bytes + bytes / 4 + (64u << 20);
  std::string seen;
  for (const char* base : {"/dev/shm", "/tmp"}) {
    std::error_code ec;
    const auto sp = fs::space(base, ec);
    if (ec) {
      seen += std::string(seen.empty() ? "" : ", ") + base + ": " + ec.message();
      continue;
    }
    if (sp.available >= want) return create_in(base, prefix);
    seen += std::string(seen.empty() ? "" : ", ") + base + ": " +
            std::to_string(sp.available >> 20) + " MiB free";
  }
  return fail("no_space",
              "no room for " + std::to_string(want >> 20) + " MiB of test data (" + seen + ")");
}

Result<TempDir> TempDir::create_owned(std::string_view prefix) {
  return create(std::string(prefix) + std::to_string(::getpid()) + "-");
}

void TempDir::remove_stale(std::string_view prefix) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/tmp", ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dash = name.find('-', prefix.size());
    if (dash == std::string::npos || dash == prefix.size()) continue;
    const std::string digits = name.substr(prefix.size(), dash - prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    if (pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code rm_ec;
    fs::remove_all(e.path(), rm_ec);
  }
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    remove_now();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

TempDir::~TempDir() {
  remove_now();
}

void TempDir::remove_now() noexcept {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) {
    // Typically files created by another user with restrictive modes; report, don't throw.
    std::fprintf(stderr, "rap::testing::TempDir: cannot remove %s: %s\n", path_.c_str(),
                 ec.message().c_str());
  }
  path_.clear();
}

fs::path TempDir::release() {
  fs::path p = path_;
  path_.clear();
  return p;
}

Result<void> TempDir::chown_to(const std::string& user) {
  struct passwd pw {};
  struct passwd* res = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || res == nullptr) {
    return fail("no_such_user", "no such user: " + user);
  }
  auto do_chown = [&](const fs::path& p) -> Result<void> {
    if (::lchown(p.c_str(), pw.pw_uid, pw.pw_gid) != 0) {
      return fail("io_error", "chown " + p.string() + " to " + user + ": " + std::strerror(errno));
    }
    return {};
  };
  if (auto r = do_chown(path_); !r) return r;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (auto r = do_chown(it->path()); !r) return r;
  }
  if (ec) return fail("io_error", "walking " + path_.string() + ": " + ec.message());
  return {};
}

Result<void> write_text_file(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return fail("io_error", "cannot open " + path.string() + " for writing");
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) return fail("io_error", "cannot write " + path.string());
  return {};
}

Result<std::string> read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("io_error", "cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace rap::testing
