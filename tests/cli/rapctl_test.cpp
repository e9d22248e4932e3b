// End-to-end: the real rapctl binary against the real rap-control binary and a fixture
// PostgreSQL (started like tests/control: control_process.h). rapctl trusts the server's
// self-signed certificate with --ca-file DATA_DIR/tls/server.crt, so TLS verification (IP SAN
// 127.0.0.1) is exercised too.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "control_process.h"
#include "rap/common/env.h"
#include "rap/control/totp.h"
#include "rap/crypto/keys.h"
#include "rap/testing/gtest_support.h"
#include "rap/testing/subprocess.h"
#include "rap/testing/temp_dir.h"

using json = nlohmann::json;
using rap::testing::TempDir;
using namespace rap::testing::control;

namespace {

struct CliRun {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  json j() const { return json::parse(out, nullptr, false); }
};

std::ostream& operator<<(std::ostream& o, const CliRun& r) {
  return o << "exit " << r.code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777U;
}

// Runs rapctl with its own HOME and config file; `input` is its stdin.
class Rapctl {
 public:
  explicit Rapctl(const std::filesystem::path& dir) : dir_(dir) {
    std::filesystem::create_directories(dir_ / "home");
  }
  std::filesystem::path config() const { return dir_ / "config.json"; }
  std::filesystem::path home() const { return dir_ / "home"; }
  // Empty: fall back to $HOME/.config/rapctl/config.json.
  void set_config_env(std::string v) { config_env_ = std::move(v); }
  // $RAPCTL_TOKEN for the following runs ("" = unset).
  void set_token_env(std::string v) { token_env_ = std::move(v); }

  CliRun operator()(const std::vector<std::string>& args, const std::string& input = "") const {
    const auto in = dir_ / "stdin";
    const auto err = dir_ / "stderr";
    EXPECT_TRUE(rap::testing::write_text_file(in, input).has_value());
    std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" <\"$T_IN\" 2>\"$T_ERR\"",
                                     RAPCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    rap::testing::RunOptions o;
    o.timeout = std::chrono::seconds(60);
    o.env = {{"RAPCTL_CONFIG", config_env_},
             {"HOME", home().string()},
             {"RAPCTL_TOKEN", token_env_},
             {"T_IN", in.string()},
             {"T_ERR", err.string()}};
    auto res = rap::testing::run_command(argv, o);
    CliRun r;
    r.code = res.exit_code;
    r.out = res.output;
    r.err = rap::testing::read_text_file(err).value_or("");
    return r;
  }

 private:
  std::filesystem::path dir_;
  std::string config_env_;
  std::string token_env_;
};

json read_json(const std::filesystem::path& p) {
  return json::parse(rap::testing::read_text_file(p).value_or(""), nullptr, false);
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

class RapctlTest : public ControlApiTest {
 protected:
  // The server's self-signed certificate: DATA_DIR/tls/server.crt next to the process log.
  static std::string server_cert(ControlProcess& c) {
    return (c.proc().output_file()->parent_path() / "data" / "tls" / "server.crt").string();
  }
  static std::string url(const ControlProcess& c) {
    return "https://127.0.0.1:" + std::to_string(c.port());
  }
};

}  // namespace

TEST_F(RapctlTest, SetupLoginOrgsMembersAudit) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("rapctl_flow"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "rapctl"));
  ASSERT_TRUE(c->setup_token().has_value()) << c->output();
  RAP_ASSIGN_OR_FAIL(TempDir dir, TempDir::create("rapctl-e2e-"));
  Rapctl rapctl(dir.path());
  rapctl.set_config_env(rapctl.config().string());
  const std::string server = url(*c);
  const std::string ca = server_cert(*c);
  const std::string owner_pw = kOwnerPw + "\n";

  // Not logged in yet.
  {
    auto r = rapctl({"orgs", "list"});
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_TRUE(contains(r.err, "not logged in: run rapctl login --server URL --email EMAIL")) << r;
  }

  // First-run setup: a wrong token is refused, the printed one works.
  {
    auto r = rapctl({"setup", "--server", server, "--ca-file", ca, "--setup-token",
                     std::string(64, 'a'), "--email", "owner@example.com", "--password-stdin"},
                    owner_pw);
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_TRUE(contains(r.err, "(invalid_setup_token)")) << r;
  }
  {
    auto r = rapctl({"setup", "--server", server, "--ca-file", ca, "--setup-token",
                     *c->setup_token(), "--email", "Owner@Example.com", "--password-stdin"},
                    owner_pw);
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "platform owner owner@example.com created")) << r;
  }

  // The system trust store does not know the self-signed certificate: exit 3, hint --ca-file.
  {
    auto r =
        rapctl({"login", "--server", server, "--email", "owner@example.com", "--password-stdin"},
               owner_pw);
    EXPECT_EQ(r.code, 3) << r;
    EXPECT_TRUE(contains(r.err, "(tls_verify_failed)")) << r;
    EXPECT_TRUE(contains(r.err, "--ca-file")) << r;
    EXPECT_FALSE(std::filesystem::exists(rapctl.config()));
  }

  // Wrong password.
  {
    auto r = rapctl({"login", "--server", server, "--ca-file", ca, "--email", "owner@example.com",
                     "--password-stdin"},
                    "wrong-password-0\n");
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_TRUE(contains(r.err, "error: invalid email or password (invalid_credentials)")) << r;
    EXPECT_FALSE(std::filesystem::exists(rapctl.config()));
  }

  // Login stores the token in a 0600 file and never prints it.
  std::string token;
  {
    auto r = rapctl({"login", "--server", server, "--ca-file", ca, "--email", "owner@example.com",
                     "--password-stdin"},
                    owner_pw);
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "logged in to " + server + " as owner@example.com")) << r;
    EXPECT_EQ(mode_of(rapctl.config()), 0600U);
    const json cfg = read_json(rapctl.config());
    ASSERT_TRUE(cfg.is_object());
    EXPECT_EQ(cfg["server"], server);
    EXPECT_EQ(cfg["email"], "owner@example.com");
    EXPECT_EQ(cfg["ca_file"], ca);
    token = cfg["token"].get<std::string>();
    EXPECT_EQ(token.size(), 64U);
    EXPECT_FALSE(contains(r.out + r.err, token));
  }
  {
    auto r = rapctl({"whoami"});
    EXPECT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "owner@example.com")) << r;
    EXPECT_TRUE(contains(r.out, server)) << r;
    EXPECT_FALSE(contains(r.out + r.err, token));
  }

  // Creating users is a high-risk action: it needs a stepped-up session.
  {
    auto r = rapctl({"users", "create", "--email", "admin@acme.io", "--password-stdin"},
                    kAdminPw + "\n");
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_TRUE(contains(r.err, "(step_up_required)")) << r;
    EXPECT_TRUE(contains(r.err, "hint: run rapctl step-up")) << r;
    auto bad = rapctl({"step-up", "--password-stdin"}, "wrong-password-0\n");
    EXPECT_EQ(bad.code, 1) << bad;
    EXPECT_TRUE(contains(bad.err, "(invalid_credentials)")) << bad;
    auto up = rapctl({"step-up", "--password-stdin"}, owner_pw);
    ASSERT_EQ(up.code, 0) << up;
    EXPECT_TRUE(contains(up.out, "elevated_until")) << up;
  }

  // Users and organizations.
  {
    auto r = rapctl({"users", "create", "--email", "admin@acme.io", "--password-stdin"},
                    kAdminPw + "\n");
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "admin@acme.io")) << r;
    auto dup = rapctl({"users", "create", "--email", "admin@acme.io", "--password-stdin"},
                      kAdminPw + "\n");
    EXPECT_EQ(dup.code, 1) << dup;
    EXPECT_TRUE(contains(dup.err, "(email_taken)")) << dup;
    auto weak =
        rapctl({"users", "create", "--email", "weak@acme.io", "--password-stdin"}, "short\n");
    EXPECT_EQ(weak.code, 1) << weak;
    EXPECT_TRUE(contains(weak.err, "(invalid_password)")) << weak;
  }
  {
    auto r = rapctl({"orgs", "create", "--slug", "acme", "--name", "Acme Corp"});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "acme")) << r;
    ASSERT_EQ(rapctl({"orgs", "create", "--slug", "globex-eu", "--name", "Globex"}).code, 0);
    auto dup = rapctl({"orgs", "create", "--slug", "acme", "--name", "Again"});
    EXPECT_EQ(dup.code, 1) << dup;
    EXPECT_TRUE(contains(dup.err, "error: an organization with this slug exists (slug_taken)"))
        << dup;
    auto missing = rapctl({"orgs", "create", "--slug", "x1"});
    EXPECT_EQ(missing.code, 2) << missing;
  }
  {
    auto r = rapctl({"orgs", "list"});
    ASSERT_EQ(r.code, 0) << r;
    std::istringstream lines(r.out);
    std::string header;
    std::string row1;
    std::string row2;
    std::getline(lines, header);
    std::getline(lines, row1);
    std::getline(lines, row2);
    EXPECT_EQ(header.rfind("SLUG       NAME       ROLE  CREATED", 0), 0U) << r;
    EXPECT_EQ(row1.rfind("acme       Acme Corp  -     20", 0), 0U) << r;
    EXPECT_EQ(row2.rfind("globex-eu  Globex     -     20", 0), 0U) << r;

    auto j = rapctl({"orgs", "list", "--json"});
    ASSERT_EQ(j.code, 0) << j;
    const json body = j.j();
    ASSERT_TRUE(body.is_object()) << j;
    ASSERT_EQ(body["orgs"].size(), 2U) << j;
    EXPECT_EQ(body["orgs"][0]["slug"], "acme");
    EXPECT_EQ(body["orgs"][1]["name"], "Globex");
    // Global options also work before the subcommand.
    auto j2 = rapctl({"--json", "orgs", "list"});
    EXPECT_EQ(j2.j(), body) << j2;
  }

  // Memberships.
  {
    auto r = rapctl(
        {"orgs", "members", "add", "acme", "--email", "admin@acme.io", "--role", "org_admin"});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "org_admin")) << r;
    auto again = rapctl(
        {"orgs", "members", "add", "acme", "--email", "admin@acme.io", "--role", "org_member"});
    EXPECT_EQ(again.code, 1) << again;
    EXPECT_TRUE(contains(again.err, "(already_member)")) << again;
    auto nouser = rapctl(
        {"orgs", "members", "add", "acme", "--email", "nobody@acme.io", "--role", "org_member"});
    EXPECT_EQ(nouser.code, 1) << nouser;
    EXPECT_TRUE(contains(nouser.err, "(user_not_found)")) << nouser;
    auto badrole =
        rapctl({"orgs", "members", "add", "acme", "--email", "admin@acme.io", "--role", "king"});
    EXPECT_EQ(badrole.code, 2) << badrole;
    auto noorg = rapctl({"orgs", "show", "nope"});
    EXPECT_EQ(noorg.code, 1) << noorg;
    EXPECT_TRUE(contains(noorg.err, "(org_not_found)")) << noorg;
  }
  {
    auto r = rapctl({"orgs", "show", "acme"});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "Acme Corp")) << r;
    EXPECT_TRUE(contains(r.out, "admin@acme.io  org_admin")) << r;
    auto m = rapctl({"orgs", "members", "list", "acme"});
    ASSERT_EQ(m.code, 0) << m;
    EXPECT_EQ(m.out, "EMAIL          ROLE\nadmin@acme.io  org_admin\n") << m;
  }

  // Audit log.
  {
    auto r = rapctl({"audit", "list"});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_EQ(r.out.rfind("ID", 0), 0U) << r;
    EXPECT_TRUE(contains(r.out, "org.member_added")) << r;
    EXPECT_TRUE(contains(r.out, "platform.setup_completed")) << r;
    auto j = rapctl({"audit", "list", "--org", "acme", "--limit", "2", "--json"});
    ASSERT_EQ(j.code, 0) << j;
    const json body = j.j();
    ASSERT_TRUE(body.contains("events")) << j;
    ASSERT_EQ(body["events"].size(), 2U) << j;
    for (const auto& e : body["events"]) EXPECT_EQ(e["org"], "acme");
    auto bad = rapctl({"audit", "list", "--limit", "0"});
    EXPECT_EQ(bad.code, 1) << bad;
    EXPECT_TRUE(contains(bad.err, "(invalid_limit)")) << bad;
  }
  {
    auto r = rapctl({"audit", "verify"});
    EXPECT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "audit chain ok")) << r;
  }

  // A non-owner: logs in with the default config location ($HOME/.config/rapctl).
  {
    Rapctl admin(dir.path() / "admin");
    auto r = admin({"login", "--server", server, "--ca-file", ca, "--email", "admin@acme.io",
                    "--password-stdin"},
                   kAdminPw + "\n");
    ASSERT_EQ(r.code, 0) << r;
    const auto cfg = admin.home() / ".config" / "rapctl" / "config.json";
    EXPECT_EQ(mode_of(cfg), 0600U);
    EXPECT_EQ(mode_of(cfg.parent_path()), 0700U);
    auto l = admin({"orgs", "list"});
    EXPECT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.out, "acme  Acme Corp  org_admin")) << l;
    EXPECT_FALSE(contains(l.out, "globex")) << l;
    auto v = admin({"audit", "verify"});
    EXPECT_EQ(v.code, 1) << v;
    EXPECT_TRUE(contains(v.err, "(forbidden)")) << v;
    auto mk = admin({"orgs", "create", "--slug", "mine", "--name", "Mine"});
    EXPECT_EQ(mk.code, 1) << mk;
    // The stored token is never sent to another server given with --server.
    auto other = admin({"orgs", "list", "--server", "https://127.0.0.2:1"});
    EXPECT_EQ(other.code, 1) << other;
    EXPECT_TRUE(contains(other.err, "not logged in to https://127.0.0.2:1")) << other;
  }

  // --insecure works, with a warning.
  {
    Rapctl insecure(dir.path() / "insecure");
    insecure.set_config_env((dir.path() / "insecure" / "c.json").string());
    auto r = insecure(
        {"login", "--server", server, "--insecure", "--email", "admin@acme.io", "--password-stdin"},
        kAdminPw + "\n");
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.err, "warning: TLS certificate verification is disabled")) << r;
    auto l = insecure({"orgs", "list"});
    EXPECT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.err, "warning: TLS certificate verification is disabled")) << l;
  }

  // A tampered audit row breaks the chain: exit 1.
  RAP_ASSERT_OK(
      pg_->exec("UPDATE audit_events SET target = 'user:tampered' WHERE id = "
                "(SELECT min(id) FROM audit_events WHERE action = 'org.created')",
                "rapctl_flow"));
  {
    auto r = rapctl({"audit", "verify"});
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_TRUE(contains(r.err, "audit chain broken")) << r;
    auto j = rapctl({"audit", "verify", "--json"});
    EXPECT_EQ(j.code, 1) << j;
    EXPECT_EQ(j.j()["ok"], false) << j;
  }

  // Logout revokes the token on the server and forgets it locally.
  {
    auto r = rapctl({"logout"});
    EXPECT_EQ(r.code, 0) << r;
    const json cfg = read_json(rapctl.config());
    EXPECT_FALSE(cfg.contains("token")) << cfg;
    EXPECT_EQ(cfg["server"], server);
    EXPECT_EQ(mode_of(rapctl.config()), 0600U);
    auto api = c->call("GET", "/api/v1/orgs", "", token);
    EXPECT_EQ(api.status, 401) << api;
    auto l = rapctl({"orgs", "list"});
    EXPECT_EQ(l.code, 1) << l;
    EXPECT_TRUE(contains(l.err, "not logged in")) << l;
  }

  // A revoked token in the config file: the API error plus a hint to log in again.
  {
    json cfg = read_json(rapctl.config());
    cfg["token"] = token;
    RAP_ASSERT_OK(rap::default_env().write_file_atomic(rapctl.config().string(), cfg.dump(), 0600));
    auto r = rapctl({"orgs", "list"});
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_TRUE(contains(r.err, "(invalid_token)")) << r;
    EXPECT_TRUE(contains(r.err, "hint: the session expired or was revoked: run rapctl login")) << r;
  }

  // Server down: exit 3 naming the server.
  ASSERT_EQ(rapctl({"login", "--email", "owner@example.com", "--password-stdin"}, owner_pw).code,
            0);
  c->proc().terminate();
  {
    auto r = rapctl({"orgs", "list"});
    EXPECT_EQ(r.code, 3) << r;
    EXPECT_TRUE(contains(r.err, "cannot connect to " + server)) << r;
    EXPECT_TRUE(contains(r.err, "(connect_failed)")) << r;
  }
}

TEST_F(RapctlTest, TokensClustersAndTenancy) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("rapctl_more"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "rapctl-more"));
  ASSERT_TRUE(c->setup_token().has_value()) << c->output();
  RAP_ASSIGN_OR_FAIL(TempDir dir, TempDir::create("rapctl-e2e-"));
  Rapctl rapctl(dir.path());
  rapctl.set_config_env(rapctl.config().string());
  const std::string server = url(*c);
  const std::string owner_pw = kOwnerPw + "\n";
  ASSERT_EQ(rapctl({"setup", "--server", server, "--ca-file", server_cert(*c), "--setup-token",
                    *c->setup_token(), "--email", "owner@example.com", "--password-stdin"},
                   owner_pw)
                .code,
            0);
  ASSERT_EQ(rapctl({"login", "--server", server, "--ca-file", server_cert(*c), "--email",
                    "owner@example.com", "--password-stdin"},
                   owner_pw)
                .code,
            0);
  ASSERT_EQ(rapctl({"step-up", "--password-stdin"}, owner_pw).code, 0);
  {
    auto me = rapctl({"whoami", "--json"});
    ASSERT_EQ(me.code, 0) << me;
    EXPECT_EQ(me.j()["user"]["email"], "owner@example.com") << me;
    EXPECT_EQ(me.j()["token"]["elevated"], true) << me;
  }
  const std::regex hex64("token: ([0-9a-f]{64})");
  std::smatch m;

  // API tokens: shown once, usable through $RAPCTL_TOKEN, listed without the secret, revocable.
  std::string api_token;
  {
    auto r = rapctl({"tokens", "create", "--name", "ci", "--scope", "read", "--ttl-days", "2"});
    ASSERT_EQ(r.code, 0) << r;
    ASSERT_TRUE(std::regex_search(r.out, m, hex64)) << r;
    api_token = m[1];
    EXPECT_TRUE(contains(r.err, "the token is shown only once")) << r;
    auto l = rapctl({"tokens", "list"});
    ASSERT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.out, "ci    read")) << l;
    EXPECT_FALSE(contains(l.out, api_token)) << l;
    auto bad = rapctl({"tokens", "create", "--name", "x", "--scope", "root"});
    EXPECT_EQ(bad.code, 2) << bad;
  }
  rapctl.set_token_env(api_token);
  {
    auto me = rapctl({"whoami", "--json"});
    ASSERT_EQ(me.code, 0) << me;
    EXPECT_EQ(me.j()["token"]["kind"], "api") << me;
    auto mk = rapctl({"orgs", "create", "--slug", "nope", "--name", "read-only"});
    EXPECT_EQ(mk.code, 1) << mk;
  }
  rapctl.set_token_env("");
  {
    auto l = rapctl({"tokens", "list", "--json"});
    ASSERT_EQ(l.code, 0) << l;
    const std::string id = l.j()["tokens"][0]["id"].dump();
    auto r = rapctl({"tokens", "revoke", id});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "revoked_at")) << r;
    rapctl.set_token_env(api_token);
    auto after = rapctl({"orgs", "list"});
    EXPECT_EQ(after.code, 1) << after;
    EXPECT_TRUE(contains(after.err, "(invalid_token)")) << after;
    rapctl.set_token_env("");
  }

  // Clusters and join tokens.
  {
    auto r = rapctl({"clusters", "create", "--slug", "edge", "--name", "Edge"});
    ASSERT_EQ(r.code, 0) << r;
    EXPECT_TRUE(contains(r.out, "edge")) << r;
    EXPECT_FALSE(contains(r.out, "BEGIN CERTIFICATE")) << r;
    auto l = rapctl({"clusters", "list"});
    ASSERT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.out, "SLUG  NAME  NODES  PENDING  CREATED")) << l;
    EXPECT_TRUE(contains(l.out, "edge  Edge  0      0")) << l;
    auto ca = rapctl({"clusters", "ca", "edge"});
    ASSERT_EQ(ca.code, 0) << ca;
    EXPECT_EQ(ca.out.rfind("-----BEGIN CERTIFICATE-----\n", 0), 0U) << ca;
    auto missing = rapctl({"clusters", "show", "nope"});
    EXPECT_EQ(missing.code, 1) << missing;
  }
  {
    auto r = rapctl({"join-tokens", "create", "edge", "--description", "rack 1", "--label",
                     "site=fra", "--max-uses", "3"});
    ASSERT_EQ(r.code, 0) << r;
    ASSERT_TRUE(std::regex_search(r.out, m, hex64)) << r;
    EXPECT_TRUE(contains(r.err, "shown only once")) << r;
    auto l = rapctl({"join-tokens", "list", "edge", "--json"});
    ASSERT_EQ(l.code, 0) << l;
    const json t = l.j()["join_tokens"][0];
    EXPECT_EQ(t["max_uses"], 3) << l;
    EXPECT_EQ(t["description"], "rack 1") << l;
    EXPECT_EQ(t["state"], "active") << l;
    const std::string id = t["id"].is_string() ? t["id"].get<std::string>() : t["id"].dump();
    auto rv = rapctl({"join-tokens", "revoke", "edge", id});
    ASSERT_EQ(rv.code, 0) << rv;
    EXPECT_TRUE(contains(rv.out, "revoked")) << rv;
    auto table = rapctl({"join-tokens", "list", "edge"});
    EXPECT_TRUE(contains(table.out, "revoked")) << table;
    auto badlabel = rapctl({"join-tokens", "create", "edge", "--label", "nolabel"});
    EXPECT_EQ(badlabel.code, 2) << badlabel;
    auto reqs = rapctl({"join-requests", "list", "edge", "--status", "pending"});
    EXPECT_EQ(reqs.code, 0) << reqs;
    EXPECT_EQ(reqs.out.rfind("ID  STATUS", 0), 0U) << reqs;
    auto nodes = rapctl({"nodes", "list", "edge"});
    EXPECT_EQ(nodes.code, 0) << nodes;
    EXPECT_EQ(nodes.out.rfind("ID  NAME  STATUS", 0), 0U) << nodes;
  }

  // Groups, resources and policies of an organization.
  ASSERT_EQ(rapctl({"orgs", "create", "--slug", "acme", "--name", "Acme"}).code, 0);
  ASSERT_EQ(
      rapctl({"users", "create", "--email", "dev@acme.io", "--password-stdin"}, kMemberPw + "\n")
          .code,
      0);
  ASSERT_EQ(
      rapctl({"orgs", "members", "add", "acme", "--email", "dev@acme.io", "--role", "org_member"})
          .code,
      0);
  std::string group_id;
  std::string resource_id;
  {
    auto g = rapctl({"groups", "create", "acme", "--name", "ops", "--json"});
    ASSERT_EQ(g.code, 0) << g;
    group_id = g.j()["group"]["id"].get<std::string>();
    auto add = rapctl({"groups", "members", "add", "acme", group_id, "--email", "dev@acme.io"});
    ASSERT_EQ(add.code, 0) << add;
    auto l = rapctl({"groups", "list", "acme"});
    ASSERT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.out, group_id + "  ops   dev@acme.io")) << l;
    auto show = rapctl({"groups", "show", "acme", group_id});
    EXPECT_TRUE(contains(show.out, "members:\nEMAIL\ndev@acme.io\n")) << show;
  }
  {
    auto r = rapctl({"resources", "create", "acme", "--name", "db", "--protocol", "ssh",
                     "--address", "db.internal:22", "--json"});
    ASSERT_EQ(r.code, 0) << r;
    resource_id = r.j()["resource"]["id"].get<std::string>();
    auto up = rapctl({"resources", "update", "acme", resource_id, "--address", "db2.internal:22"});
    ASSERT_EQ(up.code, 0) << up;
    EXPECT_TRUE(contains(up.out, "db2.internal:22")) << up;
    auto bad = rapctl(
        {"resources", "create", "acme", "--name", "x", "--protocol", "ftp", "--address", "x:1"});
    EXPECT_EQ(bad.code, 2) << bad;
    auto l = rapctl({"resources", "list", "acme"});
    EXPECT_TRUE(contains(l.out, "db    ssh       db2.internal:22")) << l;
  }
  {
    auto p = rapctl({"policies", "create", "acme", "--name", "ops-ssh", "--service", "ssh",
                     "--group", group_id, "--resource", resource_id});
    ASSERT_EQ(p.code, 0) << p;
    auto l = rapctl({"policies", "list", "acme"});
    ASSERT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.out, "ops-ssh  ssh      -      ops     db")) << l;
  }
  // The member sees the resource through the policy, but no clusters at all.
  {
    Rapctl dev(dir.path() / "dev");
    dev.set_config_env((dir.path() / "dev" / "config.json").string());
    ASSERT_EQ(dev({"login", "--server", server, "--ca-file", server_cert(*c), "--email",
                   "dev@acme.io", "--password-stdin"},
                  kMemberPw + "\n")
                  .code,
              0);
    auto mine = dev({"resources", "mine", "acme"});
    ASSERT_EQ(mine.code, 0) << mine;
    EXPECT_TRUE(contains(mine.out, resource_id + "  db    ssh")) << mine;
    auto all = dev({"resources", "list", "acme"});
    EXPECT_EQ(all.code, 1) << all;
    EXPECT_TRUE(contains(all.err, "(forbidden)")) << all;
    auto cl = dev({"clusters", "list"});
    EXPECT_EQ(cl.code, 1) << cl;
    EXPECT_TRUE(contains(cl.err, "(not_found)")) << cl;
  }
  {
    auto d = rapctl({"policies", "list", "acme", "--json"});
    const std::string pid = d.j()["policies"][0]["id"].get<std::string>();
    EXPECT_EQ(rapctl({"policies", "delete", "acme", pid}).code, 0);
    EXPECT_EQ(rapctl({"resources", "delete", "acme", resource_id}).code, 0);
    EXPECT_EQ(
        rapctl({"groups", "members", "remove", "acme", group_id, "--email", "dev@acme.io"}).code,
        0);
    EXPECT_EQ(rapctl({"groups", "delete", "acme", group_id}).code, 0);
    auto gone = rapctl({"groups", "show", "acme", group_id});
    EXPECT_EQ(gone.code, 1) << gone;
    EXPECT_TRUE(contains(gone.err, "(group_not_found)")) << gone;
  }
}

namespace {

std::string hex(std::span<const std::uint8_t> b) {
  static constexpr char kD[] = "0123456789abcdef";
  std::string out;
  for (const auto c : b) {
    out.push_back(kD[c >> 4U]);
    out.push_back(kD[c & 15U]);
  }
  return out;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// POST /api/v1/enroll as a node would (fresh Ed25519 key); returns the join request id.
std::string enroll(const ControlProcess& c, const std::string& cluster, const std::string& token,
                   const std::string& hostname) {
  auto key = rap::crypto::Ed25519Key::generate();
  EXPECT_TRUE(key.has_value());
  if (!key) return "";
  const json body{{"cluster", cluster},
                  {"join_token", token},
                  {"public_key", hex(key->public_key())},
                  {"facts", {{"hostname", hostname}, {"os", "linux"}, {"arch", "x86_64"}}},
                  {"capabilities", {"can_route_mesh"}}};
  auto r = c.call("POST", "/api/v1/enroll", body.dump());
  EXPECT_EQ(r.status, 202) << r;
  return r.j.value("request_id", "");
}

}  // namespace

TEST_F(RapctlTest, EnrollmentNodesAndTotp) {
  RAP_ASSIGN_OR_FAIL(std::string db, pg_->create_database("rapctl_nodes"));
  RAP_ASSIGN_OR_FAIL(auto c, ControlProcess::start(db, "rapctl-nodes"));
  ASSERT_TRUE(c->setup_token().has_value()) << c->output();
  RAP_ASSIGN_OR_FAIL(TempDir dir, TempDir::create("rapctl-e2e-"));
  Rapctl rapctl(dir.path());
  rapctl.set_config_env(rapctl.config().string());
  const std::string server = url(*c);
  const std::string owner_pw = kOwnerPw + "\n";
  const std::vector<std::string> login = {"login",   "--server",          server,
                                          "--email", "owner@example.com", "--password-stdin"};
  ASSERT_EQ(rapctl({"setup", "--server", server, "--ca-file", server_cert(*c), "--setup-token",
                    *c->setup_token(), "--email", "owner@example.com", "--password-stdin"},
                   owner_pw)
                .code,
            0);
  ASSERT_EQ(rapctl({"login", "--server", server, "--ca-file", server_cert(*c), "--email",
                    "owner@example.com", "--password-stdin"},
                   owner_pw)
                .code,
            0);
  ASSERT_EQ(rapctl({"step-up", "--password-stdin"}, owner_pw).code, 0);
  ASSERT_EQ(rapctl({"clusters", "create", "--slug", "edge", "--name", "Edge"}).code, 0);
  std::smatch m;
  std::string token;
  {
    auto r = rapctl({"join-tokens", "create", "edge", "--max-uses", "2"});
    ASSERT_EQ(r.code, 0) << r;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("token: ([0-9a-f]{64})"))) << r;
    token = m[1];
  }

  // Approve one join request, reject another.
  const std::string rid1 = enroll(*c, "edge", token, "edge-fra-1");
  const std::string rid2 = enroll(*c, "edge", token, "edge-fra-2");
  ASSERT_FALSE(rid1.empty());
  ASSERT_FALSE(rid2.empty());
  {
    auto l = rapctl({"join-requests", "list", "edge", "--status", "pending"});
    ASSERT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.out, rid1 + "  pending  edge-fra-1  can_route_mesh")) << l;
    EXPECT_TRUE(contains(l.out, rid2)) << l;
  }
  std::string node_id;
  {
    auto a = rapctl({"join-requests", "approve", "edge", rid1, "--name", "fra-1"});
    ASSERT_EQ(a.code, 0) << a;
    ASSERT_TRUE(std::regex_search(a.out, m,
                                  std::regex("approved join request " + rid1 +
                                             ": node fra-1 \\(([0-9a-f-]{36})\\), "
                                             "certificate serial [0-9]+")))
        << a;
    node_id = m[1];
    auto again = rapctl({"join-requests", "approve", "edge", rid1});
    EXPECT_EQ(again.code, 1) << again;
    EXPECT_TRUE(contains(again.err, "(join_request_not_pending)")) << again;
    auto rj = rapctl({"join-requests", "reject", "edge", rid2, "--reason", "unknown host"});
    ASSERT_EQ(rj.code, 0) << rj;
    EXPECT_TRUE(contains(rj.out, "rejected")) << rj;
  }
  {
    auto l = rapctl({"nodes", "list", "edge"});
    ASSERT_EQ(l.code, 0) << l;
    EXPECT_TRUE(contains(l.out, node_id + "  fra-1  active  offline  platform")) << l;
    auto roles = rapctl(
        {"nodes", "set-roles", "edge", node_id, "--role", "relay-node", "--role", "entry-node"});
    ASSERT_EQ(roles.code, 0) << roles;
    EXPECT_TRUE(contains(roles.out, "desired_state_version")) << roles;
    auto badrole = rapctl({"nodes", "set-roles", "edge", node_id, "--role", "wizard"});
    EXPECT_EQ(badrole.code, 1) << badrole;
    EXPECT_TRUE(contains(badrole.err, "(unknown_role)")) << badrole;
    auto wl = rapctl({"nodes", "set-workloads", "edge", node_id, "--workloads",
                      R"([{"name": "relay", "kind": "native"}])"});
    ASSERT_EQ(wl.code, 0) << wl;
    auto badjson = rapctl({"nodes", "set-workloads", "edge", node_id, "--workloads", "[{"});
    EXPECT_EQ(badjson.code, 2) << badjson;
    auto show = rapctl({"nodes", "show", "edge", node_id});
    ASSERT_EQ(show.code, 0) << show;
    EXPECT_TRUE(contains(show.out, "name:")) << show;
    EXPECT_TRUE(contains(show.out, "relay-node")) << show;
    EXPECT_TRUE(contains(show.out, "certificates:\nSERIAL")) << show;
    auto hb = rapctl({"nodes", "heartbeats", "edge", node_id});
    ASSERT_EQ(hb.code, 0) << hb;
    EXPECT_EQ(hb.out, "AT  STATE\n") << hb;
    // Signed configuration: compile (creates the signing key), list keys and artifacts, rotate.
    auto comp = rapctl({"config", "compile", "edge", "--json"});
    ASSERT_EQ(comp.code, 0) << comp;
    EXPECT_TRUE(contains(comp.out, "\"nodes\": 1")) << comp;
    auto keys = rapctl({"config", "keys", "edge"});
    ASSERT_EQ(keys.code, 0) << keys;
    EXPECT_TRUE(contains(keys.out, "KEY ID")) << keys;
    EXPECT_TRUE(contains(keys.out, "active")) << keys;
    auto arts = rapctl({"config", "artifacts", "edge"});
    ASSERT_EQ(arts.code, 0) << arts;
    EXPECT_TRUE(contains(arts.out, "peer_directory")) << arts;
    auto rot = rapctl({"config", "rotate-key", "edge", "--overlap", "3600"});
    ASSERT_EQ(rot.code, 0) << rot;
    EXPECT_TRUE(contains(rot.out, "key_id:")) << rot;
    auto badrot = rapctl({"config", "rotate-key", "edge", "--overlap", "5"});
    EXPECT_EQ(badrot.code, 1) << badrot;
    EXPECT_TRUE(contains(badrot.err, "(invalid_request)")) << badrot;
    auto keys2 = rapctl({"config", "keys", "edge"});
    EXPECT_TRUE(contains(keys2.out, "retired")) << keys2;
    auto rv = rapctl({"nodes", "revoke", "edge", node_id, "--reason", "decommissioned"});
    ASSERT_EQ(rv.code, 0) << rv;
    EXPECT_TRUE(contains(rv.out, "node.status:")) << rv;
    EXPECT_TRUE(contains(rv.out, "revoked")) << rv;
    auto twice = rapctl({"nodes", "revoke", "edge", node_id});
    EXPECT_EQ(twice.code, 1) << twice;
    EXPECT_TRUE(contains(twice.err, "(node_already_revoked)")) << twice;
  }

  // TOTP: enroll (secret shown once), confirm, then login needs --totp.
  std::string secret;
  {
    auto e = rapctl({"totp", "enroll"});
    ASSERT_EQ(e.code, 0) << e;
    ASSERT_TRUE(std::regex_search(e.out, m, std::regex("secret_base32: +([A-Z2-7]+)"))) << e;
    secret = m[1];
    EXPECT_TRUE(contains(e.err, "shown only once")) << e;
    auto raw = rap::control::totp::base32_decode(secret);
    ASSERT_TRUE(raw.has_value());
    auto bad = rapctl({"totp", "confirm", "--code", "000000"});
    EXPECT_EQ(bad.code, 1) << bad;
    const std::string code = rap::control::totp::code_at(*raw, unix_now());
    auto ok = rapctl({"totp", "confirm", "--code", code});
    ASSERT_EQ(ok.code, 0) << ok;
    EXPECT_TRUE(contains(ok.out, "yes")) << ok;

    ASSERT_EQ(rapctl({"logout"}).code, 0);
    auto no_code = rapctl(login, owner_pw);
    EXPECT_EQ(no_code.code, 1) << no_code;
    EXPECT_TRUE(contains(no_code.err, "(totp_required)")) << no_code;
    EXPECT_TRUE(contains(no_code.err, "hint: pass --totp CODE")) << no_code;
    // The next time step: the current one was used by the confirmation (no replays).
    std::vector<std::string> with_code = login;
    with_code.insert(with_code.end(),
                     {"--totp", rap::control::totp::code_at(*raw, unix_now() + 30)});
    auto in = rapctl(with_code, owner_pw);
    ASSERT_EQ(in.code, 0) << in;
    auto me = rapctl({"whoami"});
    EXPECT_EQ(me.code, 0) << me;
    EXPECT_TRUE(contains(me.out, "totp_enabled:")) << me;
  }
}
