// Unit tests of rap_cli: table rendering, the config file (mode 0600, atomic), URL parsing,
// request building and the exit codes of local failures. No network.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdlib>
#include <sstream>

#include "rap/cli/command.h"
#include "rap/cli/config.h"
#include "rap/cli/http_client.h"
#include "rap/cli/rapctl.h"
#include "rap/cli/table.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/temp_dir.h"

using namespace rap::cli;
using rap::testing::TempDir;

namespace {

unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777U;
}

struct Streams {
  std::istringstream in;
  std::ostringstream out;
  std::ostringstream err;
  Io io{in, out, err};
};

int run_rapctl(Streams& s, std::vector<const char*> args) {
  args.insert(args.begin(), "rapctl");
  return rapctl_main(static_cast<int>(args.size()), args.data(), s.io);
}

}  // namespace

TEST(CliTable, AlignsColumnsAndPadsAllButTheLast) {
  const json rows = json::parse(R"([
    {"slug": "acme", "name": "Acme Corp", "role": null},
    {"slug": "b", "name": "Bé", "role": "org_admin"}
  ])");
  const std::string t = render_table({{"SLUG", "slug"}, {"NAME", "name"}, {"ROLE", "role"}}, rows);
  EXPECT_EQ(t,
            "SLUG  NAME       ROLE\n"
            "acme  Acme Corp  -\n"
            "b     Bé         org_admin\n");
}

TEST(CliTable, EmptyListPrintsTheHeaderOnly) {
  EXPECT_EQ(render_table({{"ID", "id"}, {"AT", "at"}}, json::array()), "ID  AT\n");
}

TEST(CliTable, CellsFormatValuesAndNeutralizeControlCharacters) {
  const json row = json::parse(R"({"n": 42, "b": true, "list": ["a", "b"], "o": {"x": {"y": 1}},
                                   "evil": "a\u001b[31mred\u0007", "c1": "x\u009by"})");
  EXPECT_EQ(cell_text(row, "n"), "42");
  EXPECT_EQ(cell_text(row, "b"), "yes");
  EXPECT_EQ(cell_text(row, "list"), "a,b");
  EXPECT_EQ(cell_text(row, "o.x.y"), "1");
  EXPECT_EQ(cell_text(row, "o.x"), "{\"y\":1}");
  EXPECT_EQ(cell_text(row, "missing"), "-");
  EXPECT_EQ(cell_text(row, "evil"), "a?[31mred?");
  EXPECT_EQ(cell_text(row, "c1"), "x?y");
}

TEST(CliTable, ObjectsRenderAsAlignedKeyValueLines) {
  const json o = json::parse(R"({"slug": "acme", "id": "u-1", "details": {"role": "org_admin"}})");
  EXPECT_EQ(render_object(o),
            "details.role:  org_admin\n"
            "id:            u-1\n"
            "slug:          acme\n");
}

TEST(CliConfig, SavedWithMode0600AndReadBack) {
  RAP_ASSIGN_OR_FAIL(TempDir dir, TempDir::create("rapctl-config-"));
  const std::string path = (dir / "sub" / "config.json").string();
  auto& env = rap::default_env();
  RAP_ASSIGN_OR_FAIL(Config empty, load_config(env, path));
  EXPECT_FALSE(empty.logged_in());

  Config c;
  c.server = "https://ctl.example.com:8443";
  c.email = "ops@example.com";
  c.token = std::string(64, 'a');
  c.expires_at = "2026-11-24T01:40:00Z";
  c.ca_file = "/etc/rap/ca.pem";
  c.insecure = true;
  RAP_ASSERT_OK(save_config(env, path, c));
  EXPECT_EQ(mode_of(path), 0600U);
  EXPECT_EQ(mode_of((dir / "sub").string()), 0700U);
  EXPECT_FALSE(env.exists(path + ".tmp"));
  RAP_ASSIGN_OR_FAIL(Config back, load_config(env, path));
  EXPECT_EQ(back.server, c.server);
  EXPECT_EQ(back.email, c.email);
  EXPECT_EQ(back.token, c.token);
  EXPECT_EQ(back.expires_at, c.expires_at);
  EXPECT_EQ(back.ca_file, c.ca_file);
  EXPECT_TRUE(back.insecure);
  EXPECT_TRUE(back.logged_in());

  // A file made world-readable by hand is rewritten with 0600.
  ::chmod(path.c_str(), 0644);
  RAP_ASSERT_OK(save_config(env, path, back));
  EXPECT_EQ(mode_of(path), 0600U);
  // An existing parent directory keeps its mode.
  ::chmod((dir / "sub").c_str(), 0755);
  RAP_ASSERT_OK(save_config(env, path, back));
  EXPECT_EQ(mode_of((dir / "sub").string()), 0755U);
}

TEST(CliConfig, MalformedFilesAreErrorsNamingThePath) {
  RAP_ASSIGN_OR_FAIL(TempDir dir, TempDir::create("rapctl-config-"));
  const std::string path = (dir / "config.json").string();
  auto& env = rap::default_env();
  for (const char* text : {"not json", "[1]", R"({"token": 5})", R"({"insecure": "yes"})"}) {
    RAP_ASSERT_OK(env.write_file_atomic(path, text, 0600));
    auto c = load_config(env, path);
    ASSERT_FALSE(c.has_value()) << text;
    EXPECT_EQ(c.error().code, "invalid_config");
    EXPECT_NE(c.error().message.find(path), std::string::npos);
  }
}

TEST(CliConfig, DefaultPathFromEnvironment) {
  ::setenv("RAPCTL_CONFIG", "/x/y.json", 1);
  EXPECT_EQ(default_config_path().value_or(""), "/x/y.json");
  ::setenv("RAPCTL_CONFIG", "", 1);
  ::setenv("HOME", "/home/op", 1);
  EXPECT_EQ(default_config_path().value_or(""), "/home/op/.config/rapctl/config.json");
}

TEST(CliUrl, ParsesHttpsUrls) {
  auto u = parse_server_url("https://ctl.example.com:8443/");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "ctl.example.com");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->prefix, "");
  EXPECT_EQ(u->str(), "https://ctl.example.com:8443");

  u = parse_server_url("https://[::1]:9000/rap");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->prefix, "/rap");
  EXPECT_EQ(u->str(), "https://[::1]:9000/rap");

  u = parse_server_url("https://example.com");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->port, 443);

  for (const char* bad : {"http://example.com", "example.com:8443", "https://", "https://:80",
                          "https://h:0", "https://h:70000", "https://h:x", "https://::1:80",
                          "https://[::1", "https://u@h:1", "https://h:1/?q"}) {
    auto r = parse_server_url(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, "invalid_url");
    EXPECT_EQ(exit_code_for(r.error()), kExitUsage);
  }
}

TEST(CliUrl, EncodesPathSegments) {
  EXPECT_EQ(url_encode("acme-1_x.y~"), "acme-1_x.y~");
  EXPECT_EQ(url_encode("a/b c?&"), "a%2Fb%20c%3F%26");
}

TEST(CliErrors, ExitCodesAndApiErrorShape) {
  EXPECT_EQ(exit_code_for({"connect_failed", ""}), kExitConnection);
  EXPECT_EQ(exit_code_for({"tls_verify_failed", ""}), kExitConnection);
  EXPECT_EQ(exit_code_for({"timeout", ""}), kExitConnection);
  EXPECT_EQ(exit_code_for({"usage", ""}), kExitUsage);
  EXPECT_EQ(exit_code_for({"not_logged_in", ""}), kExitApiError);

  HttpReply r;
  r.status = 409;
  r.j = json::parse(R"({"error": {"code": "slug_taken", "message": "taken"}})");
  EXPECT_EQ(api_error(r).code, "slug_taken");
  Streams s;
  EXPECT_EQ(report_http(s.io, r), kExitApiError);
  EXPECT_EQ(s.err.str(), "error: taken (slug_taken)\n");
  r.status = 502;
  r.j = nullptr;
  EXPECT_EQ(api_error(r).code, "http_502");
  EXPECT_EQ(report_http(s.io, r), kExitServerError);
}

TEST(CliCommand, BuildsPathQueryAndTypedBody) {
  CommandSpec spec{
      .words = {"x"},
      .method = "POST",
      .route = "/api/v1/orgs/{slug}/things",
      .params = {{.flag = "SLUG", .key = "slug", .where = Where::kPath},
                 {.flag = "--org", .key = "org", .where = Where::kQuery},
                 {.flag = "--name", .key = "name"},
                 {.flag = "--port", .key = "port", .kind = Kind::kInt},
                 {.flag = "--on", .key = "enabled", .kind = Kind::kBool},
                 {.flag = "--tag", .key = "tags", .kind = Kind::kList},
                 {.flag = "--unset", .key = "unset"},
                 {.flag = "--password-stdin", .key = "password", .kind = Kind::kSecret}}};
  ParamValues v;
  v.strings = {{"slug", "a b"}, {"org", "x&y"}, {"name", "N"}, {"port", "22"}, {"enabled", "true"}};
  v.lists = {{"tags", {"t1", "t2"}}};
  v.secret_from_stdin = {{"password", true}};
  for (const char* k : {"slug", "org", "name", "port", "enabled", "tags"}) v.given[k] = true;
  Streams s;
  s.in.str("hunter2-hunter2\n");
  auto r = build_request(spec, v, s.io);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->first, "/api/v1/orgs/a%20b/things?org=x%26y");
  ASSERT_TRUE(r->second.has_value());
  EXPECT_EQ(*r->second, json::parse(R"({"name": "N", "port": 22, "enabled": true,
                                        "tags": ["t1", "t2"], "password": "hunter2-hunter2"})"));

  v.strings["port"] = "22x";
  s.in.clear();
  s.in.str("pw\n");
  auto bad = build_request(spec, v, s.io);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "usage");

  // No password on stdin.
  v.strings["port"] = "22";
  s.in.clear();
  s.in.str("");
  auto nopw = build_request(spec, v, s.io);
  ASSERT_FALSE(nopw.has_value());
  EXPECT_EQ(exit_code_for(nopw.error()), kExitUsage);
}

TEST(CliMain, UsageErrorsHelpAndNotLoggedIn) {
  RAP_ASSIGN_OR_FAIL(TempDir dir, TempDir::create("rapctl-main-"));
  ::setenv("RAPCTL_CONFIG", (dir / "config.json").c_str(), 1);
  ::unsetenv("RAPCTL_TOKEN");
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"--help"}), kExitOk);
    EXPECT_NE(s.out.str().find("orgs"), std::string::npos);
  }
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"orgs", "frobnicate"}), kExitUsage);
  }
  {
    Streams s;
    EXPECT_EQ(
        run_rapctl(s, {"orgs", "members", "add", "acme", "--email", "a@b.cc", "--role", "king"}),
        kExitUsage);
  }
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"orgs", "list", "--ca-file", "x.pem", "--insecure"}), kExitUsage);
  }
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"orgs", "list"}), kExitApiError);
    EXPECT_EQ(s.err.str(),
              "error: not logged in: run rapctl login --server URL --email EMAIL "
              "(not_logged_in)\n");
  }
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"whoami"}), kExitApiError);
    EXPECT_NE(s.err.str().find("not logged in"), std::string::npos);
  }
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"login", "--email", "a@b.cc", "--password-stdin"}), kExitUsage);
    EXPECT_NE(s.err.str().find("--server"), std::string::npos);
  }
  {  // connect --local-entry: usage checked before anything else
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"connect", "web", "--org", "acme", "--local-entry", "--once"}),
              kExitUsage);
    EXPECT_NE(s.err.str().find("--once needs the forwarder"), std::string::npos) << s.err.str();
  }
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"connect", "web", "--org", "acme", "--user-socket", "/x.sock"}),
              kExitUsage);
    EXPECT_NE(s.err.str().find("--user-socket goes with --local-entry"), std::string::npos);
  }
  {
    Streams s;
    EXPECT_EQ(run_rapctl(s, {"logout"}), kExitOk);
  }
  EXPECT_FALSE(rap::default_env().exists((dir / "config.json").string()));
}

TEST(CliHttp, TransportFailuresMapToExitCode3) {
  namespace asio = boost::asio;
  asio::io_context io;
  // A listener that never answers: the TCP handshake completes (backlog), TLS never starts.
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto silent_port = silent.local_endpoint().port();
  // A port with nobody listening.
  std::uint16_t closed_port = 0;
  {
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = a.local_endpoint().port();
  }

  ClientOptions o;
  o.insecure = true;
  o.timeout = std::chrono::milliseconds(300);
  o.server = "https://127.0.0.1:" + std::to_string(silent_port);
  auto r = HttpClient(o).request("GET", "/healthz");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "timeout") << r.error().message;
  EXPECT_NE(r.error().message.find(o.server), std::string::npos);
  EXPECT_EQ(exit_code_for(r.error()), kExitConnection);

  o.server = "https://127.0.0.1:" + std::to_string(closed_port);
  r = HttpClient(o).request("GET", "/healthz");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "connect_failed") << r.error().message;
  EXPECT_NE(r.error().message.find("cannot connect to " + o.server), std::string::npos);
  EXPECT_EQ(exit_code_for(r.error()), kExitConnection);

  o.insecure = false;
  o.ca_file = "/nonexistent/ca.pem";
  r = HttpClient(o).request("GET", "/healthz");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "ca_file_error");
  EXPECT_EQ(exit_code_for(r.error()), kExitUsage);
}
