// The web console's static files (web/dist, built by `make web`), served by rap-control next to
// the API: GET only, a fixed content type per extension, single-page-app fallback to index.html
// for paths without a file extension, and no way out of the web directory (every path segment
// is checked after percent-decoding, and the resolved file must lie inside the directory, so
// "..", encoded slashes, hidden files and symlinks pointing outside are all refused with 404).
// Every response carries a strict Content-Security-Policy (the console's own scripts and styles
// only: no inline script, no eval, no framing), nosniff and X-Frame-Options: DENY.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "api_internal.h"

namespace rap::control::detail {

namespace {

namespace fs = std::filesystem;

constexpr std::uintmax_t kMaxFileBytes = 8 * 1024 * 1024;

std::string content_type_for(const std::string& name) {
  const auto dot = name.rfind('.');
  const std::string ext = dot == std::string::npos ? "" : lower(name.substr(dot + 1));
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "json" || ext == "map") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "woff2") return "font/woff2";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in`; nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// A path segment we are willing to map onto a file name: [A-Za-z0-9._-], not starting with '.'.
bool safe_segment(std::string_view s) {
  if (s.empty() || s.size() > 200 || s.front() == '.') return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void add_security_headers(HttpResponse& r) {
  r.headers.emplace_back("Content-Security-Policy", kConsoleCsp);
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
}

HttpResponse web_error(int status, const std::string& code, const std::string& message) {
  HttpResponse r = error_response(status, code, message);
  add_security_headers(r);
  return r;
}

// Reads a regular file inside `root` (both canonical); nullopt if missing, not a regular file,
// outside root (symlink) or too large.
std::optional<std::string> read_inside(const fs::path& root, const fs::path& file) {
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(file, ec);
  if (ec) return std::nullopt;
  const auto rel = canon.lexically_relative(root);
  if (rel.empty() || rel.native().rfind("..", 0) == 0) return std::nullopt;
  if (!fs::is_regular_file(canon, ec) || ec) return std::nullopt;
  const auto size = fs::file_size(canon, ec);
  if (ec || size > kMaxFileBytes) return std::nullopt;
  std::ifstream in(canon, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

HttpResponse serve_web(const std::string& web_dir, const HttpRequest& req,
                       const std::string& path) {
  if (web_dir.empty()) {
    return web_error(404, "console_not_installed",
                     "the web console is not installed: build it (make web) or start rap-control "
                     "with --web-dir; the API is under /api/v1");
  }
  if (req.method != "GET") {
    HttpResponse r = web_error(405, "method_not_allowed", "the console only serves GET");
    r.allow = "GET";
    return r;
  }
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(fs::path(web_dir), ec);
  if (ec || !fs::is_directory(root, ec)) {
    return web_error(404, "console_not_installed", "the web console directory is missing");
  }
  auto decoded = percent_decode(path);
  if (!decoded) return web_error(404, "not_found", "no such file");
  std::vector<std::string> segs;
  {
    std::size_t start = 0;
    while (start <= decoded->size()) {
      const auto slash = decoded->find('/', start);
      const auto end = slash == std::string::npos ? decoded->size() : slash;
      if (end > start) segs.push_back(decoded->substr(start, end - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
  }
  for (const auto& s : segs) {
    if (!safe_segment(s)) return web_error(404, "not_found", "no such file");
  }
  fs::path file = root;
  for (const auto& s : segs) file /= s;
  if (!segs.empty()) {
    if (auto body = read_inside(root, file)) {
      HttpResponse r;
      r.content_type = content_type_for(segs.back());
      r.body = std::move(*body);
      // Vite names build assets by content hash: they never change under one name.
      if (segs.size() >= 2 && segs[0] == "assets")
        r.cache_control = "public, max-age=31536000, immutable";
      add_security_headers(r);
      return r;
    }
    // A missing file with an extension (or under assets/) is a real 404, not an app route.
    if (segs[0] == "assets" || segs.back().find('.') != std::string::npos)
      return web_error(404, "not_found", "no such file");
  }
  // Single-page app: every other path is a console route rendered by index.html.
  auto index = read_inside(root, root / "index.html");
  if (!index) return web_error(404, "console_not_installed", "the web console has no index.html");
  HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(*index);
  add_security_headers(r);
  return r;
}

}  // namespace rap::control::detail
