#include "rap/cli/command.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <istream>
#include <ostream>
#include <set>

namespace rap::cli {

namespace {

const std::set<std::string>& connection_codes() {
  static const std::set<std::string> codes = {
      "resolve_failed", "connect_failed", "tls_verify_failed", "tls_error", "timeout", "io_error"};
  return codes;
}

const std::set<std::string>& usage_codes() {
  static const std::set<std::string> codes = {"usage", "invalid_url", "invalid_input",
                                              "ca_file_error"};
  return codes;
}

tl::unexpected<Error> not_logged_in(const std::string& server) {
  std::string msg = server.empty() ? "not logged in" : "not logged in to " + server;
  return fail("not_logged_in", msg + ": run rapctl login --server URL --email EMAIL");
}

std::string canonical_server(const std::string& s) {
  auto u = parse_server_url(s);
  return u ? u->str() : s;
}

// Reads one line from the terminal `fd` with echo switched off.
std::string prompt_line(int fd, const std::string& prompt) {
  (void)!::write(fd, prompt.data(), prompt.size());
  termios saved{};
  const bool have_termios = ::tcgetattr(fd, &saved) == 0;
  if (have_termios) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  if (have_termios) ::tcsetattr(fd, TCSAFLUSH, &saved);
  (void)!::write(fd, "\n", 1);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int exit_code_for(const Error& e) {
  if (connection_codes().contains(e.code)) return kExitConnection;
  if (usage_codes().contains(e.code)) return kExitUsage;
  return kExitApiError;
}

int report(Io& io, const Error& e) {
  io.err << "error: " << e.message << " (" << e.code << ")\n";
  return exit_code_for(e);
}

int report_http(Io& io, const HttpReply& r) {
  const Error e = api_error(r);
  io.err << "error: " << e.message << " (" << e.code << ")\n";
  if (r.status == 401 && e.code == "invalid_token")
    io.err << "hint: the session expired or was revoked: run rapctl login\n";
  if (e.code == "step_up_required")
    io.err << "hint: run rapctl step-up (re-enter your password), then retry within 10 minutes\n";
  if (e.code == "totp_required")
    io.err << "hint: pass --totp CODE with the current code of your authenticator app\n";
  return r.status >= 500 ? kExitServerError : kExitApiError;
}

Result<ClientOptions> client_options(Io& io, const Globals& g, const Config& cfg, bool need_token) {
  const std::string server = g.server.empty() ? cfg.server : g.server;
  if (server.empty()) {
    if (need_token) return not_logged_in("");
    return fail("usage", "no server given: pass --server https://HOST:PORT");
  }
  auto url = parse_server_url(server);
  if (!url) return tl::unexpected(url.error());
  ClientOptions o;
  o.server = url->str();
  o.timeout = std::chrono::milliseconds(
      std::max<std::int64_t>(1, static_cast<std::int64_t>(g.timeout_s * 1000.0)));
  // Stored credentials and TLS settings belong to the stored server only.
  const bool same = !cfg.server.empty() && canonical_server(cfg.server) == o.server;
  if (const char* t = std::getenv("RAPCTL_TOKEN"); t != nullptr && *t != '\0') {
    o.token = t;
  } else if (same) {
    o.token = cfg.token;
  }
  if (need_token && o.token.empty()) return not_logged_in(o.server);
  if (!g.ca_file.empty()) {
    std::error_code ec;
    const auto abs = std::filesystem::absolute(g.ca_file, ec);
    o.ca_file = ec ? g.ca_file : abs.string();
  } else if (same) {
    o.ca_file = cfg.ca_file;
  }
  o.insecure = g.insecure || (same && cfg.insecure && g.ca_file.empty());
  if (o.insecure) {
    io.err << "warning: TLS certificate verification is disabled (--insecure); "
              "the connection can be intercepted\n";
  }
  return o;
}

Result<std::string> read_secret(Io& io, bool from_stdin, const std::string& prompt, bool confirm) {
  if (from_stdin) {
    std::string line;
    if (!std::getline(io.in, line)) return fail("usage", "no password on stdin");
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) return fail("usage", "empty password on stdin");
    return line;
  }
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail("usage", "no terminal to ask for the password: pass --password-stdin");
  std::string first = prompt_line(fd, prompt);
  std::string second = confirm ? prompt_line(fd, "Repeat: ") : first;
  ::close(fd);
  if (first.empty()) return fail("usage", "empty password");
  if (first != second) return fail("usage", "the passwords do not match");
  return first;
}

Result<std::pair<std::string, std::optional<json>>> build_request(const CommandSpec& spec,
                                                                  const ParamValues& values,
                                                                  Io& io) {
  auto given = [&](const std::string& key) {
    auto it = values.given.find(key);
    return it != values.given.end() && it->second;
  };
  auto str = [&](const Param& p) {
    auto it = values.strings.find(p.key);
    if (given(p.key) && it != values.strings.end()) return it->second;
    return p.default_value;
  };
  std::string path = spec.route;
  std::string query;
  std::optional<json> body;
  for (const auto& p : spec.params) {
    if (p.where == Where::kBody) body = json::object();
  }
  for (const auto& p : spec.params) {
    const bool secret = p.kind == Kind::kSecret || p.kind == Kind::kNewSecret;
    if (!secret && !given(p.key) && p.default_value.empty()) {
      if (p.required) return fail("usage", p.flag + " is required");
      continue;
    }
    switch (p.where) {
      case Where::kPath: {
        const std::string placeholder = "{" + p.key + "}";
        const auto pos = path.find(placeholder);
        RAP_ASSERT(pos != std::string::npos);
        const std::string v = str(p);
        if (v.empty()) return fail("usage", p.flag + " must not be empty");
        path.replace(pos, placeholder.size(), url_encode(v));
        break;
      }
      case Where::kQuery:
        query += (query.empty() ? "?" : "&") + url_encode(p.key) + "=" + url_encode(str(p));
        break;
      case Where::kBody: {
        json& b = *body;
        switch (p.kind) {
          case Kind::kString:
            b[p.key] = str(p);
            break;
          case Kind::kInt: {
            const std::string v = str(p);
            std::int64_t n = 0;
            auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || ptr != v.data() + v.size())
              return fail("usage", p.flag + " must be an integer");
            b[p.key] = n;
            break;
          }
          case Kind::kBool: {
            const std::string v = str(p);
            if (v != "true" && v != "false")
              return fail("usage", p.flag + " must be true or false");
            b[p.key] = v == "true";
            break;
          }
          case Kind::kList: {
            std::vector<std::string> items;
            if (auto it = values.lists.find(p.key); it != values.lists.end()) items = it->second;
            if (p.convert) {
              auto converted = p.convert(items);
              if (!converted) return tl::unexpected(converted.error());
              b[p.key] = *converted;
            } else {
              b[p.key] = items;
            }
            break;
          }
          case Kind::kMap: {
            json obj = json::object();
            if (auto it = values.lists.find(p.key); it != values.lists.end()) {
              for (const auto& kv : it->second) {
                const auto eq = kv.find('=');
                if (eq == std::string::npos || eq == 0)
                  return fail("usage", p.flag + " takes KEY=VALUE (got '" + kv + "')");
                obj[kv.substr(0, eq)] = kv.substr(eq + 1);
              }
            }
            b[p.key] = obj;
            break;
          }
          case Kind::kJson: {
            json doc = json::parse(str(p), nullptr, false);
            if (doc.is_discarded()) return fail("usage", p.flag + " must be valid JSON");
            b[p.key] = doc;
            break;
          }
          case Kind::kSecret:
          case Kind::kNewSecret: {
            auto it = values.secret_from_stdin.find(p.key);
            const bool from_stdin = it != values.secret_from_stdin.end() && it->second;
            std::string label = p.key;
            if (!label.empty()) label[0] = static_cast<char>(std::toupper(label[0]));
            auto s = read_secret(io, from_stdin, label + ": ", p.kind == Kind::kNewSecret);
            if (!s) return tl::unexpected(s.error());
            b[p.key] = *s;
            break;
          }
        }
        break;
      }
    }
  }
  return std::make_pair(path + query, body);
}

void print_result(const CommandSpec& spec, const json& body, const Globals& g, Io& io) {
  if (g.json) {
    if (!body.is_null()) io.out << body.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return;
  }
  if (spec.render) {
    spec.render(body, io);
    return;
  }
  const json* sel = &body;
  if (!spec.result.empty()) {
    if (!body.is_object() || !body.contains(spec.result)) return;
    sel = &body[spec.result];
  }
  if (sel->is_array()) {
    io.out << render_table(spec.columns, *sel);
  } else if (sel->is_object()) {
    io.out << render_object(*sel);
  } else if (!sel->is_null()) {
    io.out << cell_text(json{{"v", *sel}}, "v") << "\n";
  }
}

int run_spec(const CommandSpec& spec, const ParamValues& values, const Globals& g, Io& io) {
  auto cfg = load_config(default_env(), g.config_path);
  if (!cfg) return report(io, Error{"invalid_config", cfg.error().message});
  auto opts = client_options(io, g, *cfg, spec.auth);
  if (!opts) return report(io, opts.error());
  if (!spec.auth) opts->token.clear();
  auto req = build_request(spec, values, io);
  if (!req) return report(io, req.error());
  const HttpClient client(*opts);
  auto r = client.request(spec.method, req->first, req->second);
  if (!r) return report(io, r.error());
  if (r->status >= 400) return report_http(io, *r);
  if (g.json && r->j.is_null() && !r->body.empty()) {
    io.out << r->body << "\n";
  } else {
    print_result(spec, r->j, g, io);
  }
  if (!spec.secret_notice.empty()) io.err << "note: " << spec.secret_notice << "\n";
  return spec.outcome ? spec.outcome(r->j) : kExitOk;
}

}  // namespace rap::cli
