// TempDir: a fresh directory under /tmp (mkdtemp), removed recursively on destruction.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "rap/common/result.h"

namespace rap::testing {

class TempDir {
 public:
  // Creates /tmp/<prefix>XXXXXX (mode 0700). `prefix` must not contain '/'.
  static Result<TempDir> create(std::string_view prefix = "rap-test-");
  // Creates <base>/<prefix>XXXXXX (mode 0700).
  static Result<TempDir> create_in(const std::filesystem::path& base, std::string_view prefix);
  // A directory for `bytes` of bulk test data: in /dev/shm (memory) when it has room, since
  // CI machines may have little disk; else under /tmp when that has room; else an error
  // naming both.
  static Result<TempDir> create_for_bytes(std::string_view prefix, std::uintmax_t bytes);
  // Creates /tmp/<prefix><pid>-XXXXXX, so that remove_stale(prefix) can later find it if
  // this process dies without running destructors (crash, SIGKILL from a ctest timeout).
  static Result<TempDir> create_owned(std::string_view prefix);
  // Removes /tmp/<prefix><pid>-* directories whose <pid> is no longer running.
  static void remove_stale(std::string_view prefix);

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();  // removes the whole tree unless release()d; never throws

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

  // Recursively chowns the directory (and everything in it) to `user` (needs root).
  Result<void> chown_to(const std::string& user);

  // Keeps the directory on destruction (for debugging); returns its path.
  std::filesystem::path release();

 private:
  explicit TempDir(std::filesystem::path p) : path_(std::move(p)) {}
  void remove_now() noexcept;
  std::filesystem::path path_;
};

// Writes `data` to `path` (truncating). Small helper for test configs.
Result<void> write_text_file(const std::filesystem::path& path, std::string_view data);
// Reads a whole file; error if it cannot be opened.
Result<std::string> read_text_file(const std::filesystem::path& path);

}  // namespace rap::testing
