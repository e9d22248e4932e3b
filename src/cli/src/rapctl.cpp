// rapctl's command line: global options, the hand-written session commands (login, logout,
// whoami, setup) and the wiring of the generic commands of api_commands() into CLI11.
#include "rap/cli/rapctl.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <istream>
#include <memory>
#include <ostream>

#include "rap/cli/connect.h"

namespace rap::cli {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

Result<Config> load(const Globals& g) {
  auto c = load_config(default_env(), g.config_path);
  if (!c) return fail("invalid_config", c.error().message);
  return c;
}

int save(Io& io, const Globals& g, const Config& c) {
  if (auto r = save_config(default_env(), g.config_path, c); !r)
    return report(io, Error{"config_write_failed", r.error().message});
  return kExitOk;
}

void print_json(Io& io, const json& j) {
  io.out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

struct LoginArgs {
  std::string email;
  bool password_stdin = false;
  std::string totp;
};

// POST /api/v1/login, then store server, email, token and TLS settings in the config file.
int cmd_login(const Globals& g, const LoginArgs& a, Io& io) {
  auto cfg = load(g);
  if (!cfg) {
    io.err << "warning: " << cfg.error().message << "; it will be replaced\n";
    cfg = Config{};
  }
  if (g.server.empty() && cfg->server.empty())
    return report(io, Error{"usage", "--server https://HOST:PORT is required for the first login"});
  auto opts = client_options(io, g, *cfg, false);
  if (!opts) return report(io, opts.error());
  opts->token.clear();
  const std::string email = lower(a.email);
  auto password = read_secret(io, a.password_stdin, "Password for " + email + ": ", false);
  if (!password) return report(io, password.error());
  json body{{"email", email}, {"password", *password}};
  if (!a.totp.empty()) body["totp_code"] = a.totp;
  const HttpClient client(*opts);
  auto r = client.request("POST", "/api/v1/login", body);
  if (!r) return report(io, r.error());
  if (r->status >= 400) return report_http(io, *r);
  if (!r->j.is_object() || !r->j.contains("token") || !r->j["token"].is_string())
    return report(io, Error{"bad_response", "the server's login response has no token"});
  Config next;
  next.server = opts->server;
  next.email = email;
  next.token = r->j["token"].get<std::string>();
  next.expires_at = r->j.value("expires_at", "");
  next.ca_file = opts->ca_file;
  next.insecure = opts->insecure;
  if (int rc = save(io, g, next); rc != kExitOk) return rc;
  if (g.json) {
    print_json(io, {{"server", next.server}, {"email", email}, {"expires_at", next.expires_at}});
  } else {
    io.out << "logged in to " << next.server << " as " << email;
    if (!next.expires_at.empty()) io.out << " (session expires " << next.expires_at << ")";
    io.out << "\n";
  }
  return kExitOk;
}

// POST /api/v1/logout with the stored token, then forget it locally in any case.
int cmd_logout(const Globals& g, Io& io) {
  auto cfg = load(g);
  if (!cfg) return report(io, cfg.error());
  if (!cfg->logged_in()) {
    io.err << "not logged in\n";
    return kExitOk;
  }
  Globals stored = g;
  stored.server = cfg->server;  // revoke where the token came from
  auto opts = client_options(io, stored, *cfg, false);
  if (!opts) return report(io, opts.error());
  opts->token = cfg->token;  // only the stored token, never $RAPCTL_TOKEN
  const HttpClient client(*opts);
  auto r = client.request("POST", "/api/v1/logout");
  const std::string server = cfg->server;
  cfg->token.clear();
  cfg->expires_at.clear();
  if (int rc = save(io, g, *cfg); rc != kExitOk) return rc;
  if (!r) {
    const int rc = report(io, r.error());
    io.err << "hint: the token was removed from this machine but stays valid on the server "
              "until it expires\n";
    return rc;
  }
  if (r->status >= 400 && r->status != 401) return report_http(io, *r);
  if (!g.json) io.out << "logged out of " << server << "\n";
  return kExitOk;
}

// GET /api/v1/me when the server has it; otherwise what the config file says.
int cmd_whoami(const Globals& g, Io& io) {
  auto cfg = load(g);
  if (!cfg) return report(io, cfg.error());
  auto opts = client_options(io, g, *cfg, true);
  if (!opts) return report(io, opts.error());
  const HttpClient client(*opts);
  auto r = client.request("GET", "/api/v1/me");
  if (!r) return report(io, r.error());
  json info;
  if (r->status == 404 && api_error(*r).code == "not_found") {
    info = {{"server", opts->server}, {"email", cfg->email}};
    if (!cfg->expires_at.empty()) info["expires_at"] = cfg->expires_at;
  } else if (r->status >= 400) {
    return report_http(io, *r);
  } else {
    info = r->j.is_object() ? r->j : json::object();
    if (g.json) {
      print_json(io, info);
      return kExitOk;
    }
    if (info.contains("user") && info["user"].is_object()) {
      json flat = info["user"];
      for (const auto& [k, v] : info.items())
        if (k != "user") flat[k] = v;
      info = flat;
    }
    info["server"] = opts->server;
  }
  if (g.json) {
    print_json(io, info);
  } else {
    io.out << render_object(info);
  }
  return kExitOk;
}

struct SetupArgs {
  std::string setup_token;
  std::string email;
  bool password_stdin = false;
};

// POST /api/v1/setup: creates the platform owner with the one-time setup token.
int cmd_setup(const Globals& g, const SetupArgs& a, Io& io) {
  auto cfg = load(g);
  if (!cfg) cfg = Config{};
  if (g.server.empty() && cfg->server.empty())
    return report(io, Error{"usage", "--server https://HOST:PORT is required"});
  auto opts = client_options(io, g, *cfg, false);
  if (!opts) return report(io, opts.error());
  opts->token.clear();
  const std::string email = lower(a.email);
  auto password =
      read_secret(io, a.password_stdin, "Password for the platform owner " + email + ": ", true);
  if (!password) return report(io, password.error());
  const HttpClient client(*opts);
  auto r = client.request(
      "POST", "/api/v1/setup",
      json{{"setup_token", a.setup_token}, {"email", email}, {"password", *password}});
  if (!r) return report(io, r.error());
  if (r->status >= 400) return report_http(io, *r);
  if (g.json) {
    print_json(io, r->j);
  } else {
    io.out << "platform owner " << email << " created on " << opts->server << "\n"
           << "next: rapctl login --server " << opts->server << " --email " << email << "\n";
  }
  return kExitOk;
}

// A generic command bound to CLI11: the spec, its subcommand and the values CLI11 fills in.
struct Bound {
  const CommandSpec* spec = nullptr;
  CLI::App* app = nullptr;
  ParamValues values;
  std::vector<std::pair<std::string, CLI::Option*>> options;  // Param::key -> option
};

const char* group_help(const std::string& path) {
  static const std::map<std::string, const char*> kHelp = {
      {"users", "user accounts"},
      {"orgs", "organizations"},
      {"orgs members", "organization memberships"},
      {"audit", "the audit log"},
      {"clusters", "clusters and their certificate authorities (platform owner)"},
      {"join-tokens", "join tokens for new nodes"},
      {"join-requests", "pending node join requests"},
      {"nodes", "enrolled nodes"},
      {"tokens", "API tokens"},
      {"resources", "published resources"},
      {"groups", "user groups"},
      {"groups members", "group memberships"},
      {"policies", "access policies"},
      {"totp", "two-factor authentication (TOTP)"},
  };
  auto it = kHelp.find(path);
  return it == kHelp.end() ? "" : it->second;
}

void bind_spec(CLI::App& root, std::map<std::string, CLI::App*>& groups, Bound& b) {
  const CommandSpec& spec = *b.spec;
  CLI::App* parent = &root;
  std::string path;
  for (std::size_t i = 0; i + 1 < spec.words.size(); ++i) {
    path += (path.empty() ? "" : " ") + spec.words[i];
    auto it = groups.find(path);
    if (it == groups.end()) {
      CLI::App* g = parent->add_subcommand(spec.words[i], group_help(path));
      g->require_subcommand(1);
      it = groups.emplace(path, g).first;
    }
    parent = it->second;
  }
  b.app = parent->add_subcommand(spec.words.back(), spec.help);
  for (const auto& p : spec.params) {
    CLI::Option* opt = nullptr;
    if (p.kind == Kind::kSecret || p.kind == Kind::kNewSecret) {
      opt = b.app->add_flag(p.flag, b.values.secret_from_stdin[p.key], p.help);
    } else if (p.kind == Kind::kList) {
      opt = b.app->add_option(p.flag, b.values.lists[p.key], p.help)->delimiter(',');
    } else if (p.kind == Kind::kMap) {
      opt = b.app->add_option(p.flag, b.values.lists[p.key], p.help);
    } else {
      opt = b.app->add_option(p.flag, b.values.strings[p.key], p.help);
      if (p.kind == Kind::kBool) opt->check(CLI::IsMember({"true", "false"}));
      if (p.kind == Kind::kInt) opt->check(CLI::Number);
    }
    if (p.required) opt->required();
    if (!p.default_value.empty()) opt->default_str(p.default_value);
    if (!p.choices.empty()) opt->check(CLI::IsMember(p.choices));
    b.options.emplace_back(p.key, opt);
  }
}

int run(int argc, const char* const* argv, Io& io) {
  CLI::App app{"rapctl: command-line client of the RAP control plane API", "rapctl"};
  app.set_version_flag("--version", "rapctl 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  Globals g;
  app.add_option("--server", g.server,
                 "control plane URL https://HOST:PORT (default: the logged-in server)");
  auto* ca = app.add_option("--ca-file", g.ca_file,
                            "trust this PEM CA certificate (default: the system trust store)");
  auto* insecure =
      app.add_flag("--insecure", g.insecure, "skip TLS certificate verification (testing only)");
  ca->excludes(insecure);
  app.add_flag("--json", g.json, "print the server's JSON response unchanged");
  app.add_option("--timeout", g.timeout_s, "seconds allowed per network operation")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  LoginArgs la;
  auto* login = app.add_subcommand("login", "log in; stores a session token in the config file");
  login->add_option("--email", la.email, "your email address")->required();
  login->add_flag("--password-stdin", la.password_stdin,
                  "read the password from stdin (default: prompt with echo off)");
  login->add_option("--totp", la.totp, "current TOTP code, if two-factor login is enabled");
  auto* logout = app.add_subcommand("logout", "revoke the session token and forget it");
  auto* whoami = app.add_subcommand("whoami", "show who you are logged in as, and where");
  SetupArgs sa;
  auto* setup = app.add_subcommand("setup", "first run: create the platform owner");
  setup->add_option("--setup-token", sa.setup_token, "the token rap-control printed at start")
      ->required();
  setup->add_option("--email", sa.email, "email of the platform owner")->required();
  setup->add_flag("--password-stdin", sa.password_stdin,
                  "read the password from stdin (default: prompt twice, echo off)");

  ConnectArgs ca_args;
  auto* connect = app.add_subcommand(
      "connect", "forward a local port to a TCP resource through the mesh (rapctl connect NAME)");
  connect->add_option("resource", ca_args.resource, "resource name or id")->required();
  connect->add_option("--org", ca_args.org, "organization slug")->required();
  connect->add_option("--listen", ca_args.listen, "local IP:PORT to listen on (port 0 = any)")
      ->capture_default_str();
  connect->add_option("--class", ca_args.traffic_class, "traffic class: interactive or bulk")
      ->capture_default_str();
  connect->add_flag("--once", ca_args.once, "exit after the first connection ends");
  connect->add_option("--ttl", ca_args.ttl_seconds, "ticket lifetime in seconds (60..3600)");
  connect->add_flag("--local-entry", ca_args.local_entry,
                    "on an entry node's host: the node agent listens (entry-node listener)");
  connect->add_option("--user-socket", ca_args.user_socket,
                      "the node agent's user socket (default: the one in /run/rap-node-agent)");

  const std::vector<CommandSpec> specs = api_commands();
  std::map<std::string, CLI::App*> groups;
  std::vector<std::unique_ptr<Bound>> bound;
  for (const auto& spec : specs) {
    auto b = std::make_unique<Bound>();
    b->spec = &spec;
    bind_spec(app, groups, *b);
    bound.push_back(std::move(b));
  }

  // Set last: subcommands created before do not inherit it.
  app.footer(
      "Exit codes: 0 ok, 1 refused by the API (4xx) or not logged in, 2 usage error,\n"
      "3 connection/TLS error, 4 server error (5xx).\n"
      "Credentials: $RAPCTL_CONFIG or ~/.config/rapctl/config.json (mode 0600);\n"
      "$RAPCTL_TOKEN overrides the stored token (API tokens for scripts).");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e, io.out, io.err);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  auto path = default_config_path();
  if (!path) return report(io, Error{"usage", path.error().message});
  g.config_path = *path;

  if (login->parsed()) return cmd_login(g, la, io);
  if (logout->parsed()) return cmd_logout(g, io);
  if (whoami->parsed()) return cmd_whoami(g, io);
  if (setup->parsed()) return cmd_setup(g, sa, io);
  if (connect->parsed()) {
    auto cfg = load(g);
    if (!cfg) return report(io, cfg.error());
    return cmd_connect(g, ca_args, io, *cfg);
  }
  for (auto& b : bound) {
    if (!b->app->parsed()) continue;
    for (const auto& [key, opt] : b->options) b->values.given[key] = opt->count() > 0;
    return run_spec(*b->spec, b->values, g, io);
  }
  io.err << app.help();
  return kExitUsage;
}

}  // namespace

int rapctl_main(int argc, const char* const* argv, Io& io) {
  try {
    return run(argc, argv, io);
  } catch (const std::exception& e) {
    io.err << "error: " << e.what() << " (internal)\n";
  } catch (...) {
    io.err << "error: unexpected failure (internal)\n";
  }
  return kExitApiError;
}

}  // namespace rap::cli
