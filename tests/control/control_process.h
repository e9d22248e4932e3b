// Shared by the control plane's end-to-end tests: the real rap-control binary against a fixture
// PostgreSQL, driven over HTTPS by the real curl binary (TLS 1.3, self-signed certificate: -k).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "rap/testing/gtest_support.h"
#include "rap/testing/postgres_fixture.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

namespace rap::testing::control {

using json = nlohmann::json;

inline rap::testing::SubprocessOptions spawn_options(const std::filesystem::path& log) {
  rap::testing::SubprocessOptions o;
  o.output_file = log;
  return o;
}

inline rap::testing::RunOptions run_options(int seconds) {
  rap::testing::RunOptions o;
  o.timeout = std::chrono::seconds(seconds);
  return o;
}

struct Reply {
  int status = 0;
  std::string body;
  json j;  // parsed body (discarded if not JSON)
  std::string error_code() const {
    if (j.is_object() && j.contains("error") && j["error"].contains("code"))
      return j["error"]["code"].get<std::string>();
    return "";
  }
};

inline std::ostream& operator<<(std::ostream& o, const Reply& r) {
  return o << "HTTP " << r.status << " " << r.body;
}

class ControlProcess {
 public:
  static rap::Result<std::unique_ptr<ControlProcess>> spawn(
      const std::string& conninfo, const std::string& name,
      const std::vector<std::string>& extra_args = {}) {
    auto dir = TempDir::create("rap-control-test-" + name);
    if (!dir) return tl::unexpected(dir.error());
    auto p = std::unique_ptr<ControlProcess>(new ControlProcess(std::move(*dir)));
    const auto log = p->dir_.path() / "out.log";
    std::vector<std::string> args = {RAP_CONTROL_BIN,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--database-url",
                                     conninfo,
                                     "--data-dir",
                                     (p->dir_.path() / "data").string()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    // API tests run without the web console (a built web/dist would otherwise be found and
    // serve every non-API path), unless a test asks for one.
    if (std::find(extra_args.begin(), extra_args.end(), "--web-dir") == extra_args.end()) {
      args.emplace_back("--web-dir");
      args.emplace_back("none");
    }
    auto sp = Subprocess::spawn(args, spawn_options(log));
    if (!sp) return tl::unexpected(sp.error());
    p->proc_.emplace(std::move(*sp));
    return p;
  }

  // Spawns rap-control with exactly `args` after the binary (nothing added: pass --listen
  // 127.0.0.1:0 and --data-dir yourself), e.g. embedded mode without --database-url.
  static rap::Result<std::unique_ptr<ControlProcess>> spawn_args(std::vector<std::string> args,
                                                                 const std::string& name) {
    auto dir = TempDir::create("rap-control-test-" + name);
    if (!dir) return tl::unexpected(dir.error());
    auto p = std::unique_ptr<ControlProcess>(new ControlProcess(std::move(*dir)));
    args.insert(args.begin(), RAP_CONTROL_BIN);
    auto sp = Subprocess::spawn(args, spawn_options(p->dir_.path() / "out.log"));
    if (!sp) return tl::unexpected(sp.error());
    p->proc_.emplace(std::move(*sp));
    return p;
  }

  // extra_args: appended to the rap-control command line.
  static rap::Result<std::unique_ptr<ControlProcess>> start(
      const std::string& conninfo, const std::string& name,
      const std::vector<std::string>& extra_args = {}) {
    auto p = spawn(conninfo, name, extra_args);
    if (!p) return p;
    if (auto r = (*p)->wait_ready(); !r) return tl::unexpected(r.error());
    return p;
  }

  rap::Result<void> wait_ready(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    if (auto r = proc_->wait_for_output("rap-control listening on", timeout); !r) return r;
    const std::string out = proc_->output();
    std::smatch m;
    if (!std::regex_search(out, m, std::regex("listening on 127\\.0\\.0\\.1:([0-9]+)")))
      return rap::fail("no_port", out);
    port_ = std::stoi(m[1]);
    if (std::regex_search(out, m, std::regex("RAP SETUP TOKEN: ([0-9a-f]{64})")))
      setup_token_ = m[1];
    return {};
  }

  Reply call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& token = "", std::vector<std::string> extra = {}) const {
    std::vector<std::string> argv = {"curl",           "-sS", "-k",  "--tlsv1.3", "-o", "-", "-w",
                                     "\n%{http_code}", "-X",  method};
    if (!token.empty()) {
      argv.push_back("-H");
      argv.push_back("Authorization: Bearer " + token);
    }
    if (!body.empty()) {
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("https://127.0.0.1:" + std::to_string(port_) + path);
    auto res = rap::testing::run_command(argv, run_options(20));
    Reply r;
    const auto nl = res.output.rfind('\n');
    if (!res.ok() || nl == std::string::npos) {
      r.status = -1;
      r.body = res.output;
      return r;
    }
    r.status = std::atoi(res.output.c_str() + nl + 1);
    r.body = res.output.substr(0, nl);
    r.j = json::parse(r.body, nullptr, false);
    return r;
  }

  const std::optional<std::string>& setup_token() const { return setup_token_; }
  std::string output() const { return proc_->output(); }
  int port() const { return port_; }
  Subprocess& proc() { return *proc_; }

 private:
  explicit ControlProcess(TempDir d) : dir_(std::move(d)) {}
  TempDir dir_;
  std::optional<Subprocess> proc_;
  int port_ = 0;
  std::optional<std::string> setup_token_;
};

inline std::string login_body(const std::string& email, const std::string& pw) {
  return json{{"email", email}, {"password", pw}}.dump();
}

inline std::vector<std::string> slugs(const Reply& r) {
  std::vector<std::string> out;
  for (const auto& o : r.j["orgs"]) out.push_back(o["slug"].get<std::string>());
  return out;
}

inline std::string login(const ControlProcess& c, const std::string& email, const std::string& pw) {
  auto r = c.call("POST", "/api/v1/login", login_body(email, pw));
  EXPECT_EQ(r.status, 200) << r;
  if (r.status != 200) return "";
  EXPECT_TRUE(r.j.contains("expires_at")) << r;
  return r.j["token"].get<std::string>();
}

// Completes first-run setup with the printed token and returns the owner's session token.
inline std::string setup_owner(const ControlProcess& c, const std::string& email,
                               const std::string& pw) {
  if (!c.setup_token()) {
    ADD_FAILURE() << "no setup token printed";
    return "";
  }
  auto r =
      c.call("POST", "/api/v1/setup",
             json{{"setup_token", *c.setup_token()}, {"email", email}, {"password", pw}}.dump());
  EXPECT_EQ(r.status, 201) << r;
  return login(c, email, pw);
}

inline const std::string kOwnerPw = "owner-password-123";
inline const std::string kAdminPw = "admin-password-456";
inline const std::string kMemberPw = "member-password-789";

class ControlApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = PostgresFixture::start();
    ASSERT_TRUE(pg.has_value()) << pg.error().message;
    pg_ = std::move(*pg);
  }
  static void TearDownTestSuite() { pg_.reset(); }
  static std::unique_ptr<PostgresFixture> pg_;
};
inline std::unique_ptr<PostgresFixture> ControlApiTest::pg_;

}  // namespace rap::testing::control
