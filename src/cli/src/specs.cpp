// The table of generic rapctl commands: one CommandSpec per API route (docs/API.md).
#include <functional>
#include <ostream>

#include "rap/cli/rapctl.h"

namespace rap::cli {

namespace {

Param positional(std::string name, std::string key, std::string help) {
  return Param{.flag = std::move(name),
               .key = std::move(key),
               .where = Where::kPath,
               .required = true,
               .help = std::move(help)};
}

Param body(std::string flag, std::string key, std::string help, bool required = true) {
  return Param{.flag = std::move(flag),
               .key = std::move(key),
               .where = Where::kBody,
               .required = required,
               .help = std::move(help)};
}

Param query(std::string flag, std::string key, std::string help) {
  return Param{.flag = std::move(flag),
               .key = std::move(key),
               .where = Where::kQuery,
               .help = std::move(help)};
}

Param new_password() {
  return Param{.flag = "--password-stdin",
               .key = "password",
               .where = Where::kBody,
               .kind = Kind::kNewSecret,
               .help = "read the password from stdin (default: prompt twice, echo off)"};
}

const json& member(const json& j, const char* key) {
  static const json kNull;
  return j.is_object() && j.contains(key) ? j[key] : kNull;
}

// `orgs show`: the organization, the caller's role, and the member list when visible.
void render_org(const json& b, Io& io) {
  json o = member(b, "org").is_object() ? member(b, "org") : json::object();
  if (member(b, "role").is_string()) o["your_role"] = member(b, "role");
  io.out << render_object(o);
  if (member(b, "members").is_array()) {
    io.out << "\nmembers:\n" << render_table({{"EMAIL", "email"}, {"ROLE", "role"}}, b["members"]);
  }
}

void render_audit_verify(const json& b, Io& io) {
  const json& events = member(b, "events");
  const std::string count = events.is_number() ? events.dump() : "?";
  if (member(b, "ok").is_boolean() && b["ok"].get<bool>()) {
    io.out << "audit chain ok: " << count << " events, head " << cell_text(b, "head_hash") << "\n";
  } else {
    io.err << "error: audit chain broken at event " << cell_text(b, "first_bad_id") << ": "
           << cell_text(b, "problem") << " (audit_chain_broken)\n";
  }
}

int audit_verify_outcome(const json& b) {
  return member(b, "ok").is_boolean() && b["ok"].get<bool>() ? kExitOk : kExitApiError;
}

Param opt_body(std::string flag, std::string key, std::string help) {
  return body(std::move(flag), std::move(key), std::move(help), false);
}

Param int_body(std::string flag, std::string key, std::string help, std::string dflt) {
  Param p = body(std::move(flag), std::move(key), std::move(help), false);
  p.kind = Kind::kInt;
  p.default_value = std::move(dflt);
  return p;
}

Param list_body(std::string flag, std::string key, std::string help) {
  Param p = body(std::move(flag), std::move(key), std::move(help), false);
  p.kind = Kind::kList;
  return p;
}

Param choice_body(std::string flag, std::string key, std::string help,
                  std::vector<std::string> choices, bool required = true) {
  Param p = body(std::move(flag), std::move(key), std::move(help), required);
  p.choices = std::move(choices);
  return p;
}

const std::vector<std::string> kProtocols = {"rdp", "ssh", "vnc", "tcp"};

// The object at `key` of the response without the members in `omit`; then each member named in
// `tables` as a table of its columns.
std::function<void(const json&, Io&)> object_view(
    std::string key, std::vector<std::string> omit,
    std::vector<std::pair<std::string, std::vector<Column>>> tables = {}) {
  return [key = std::move(key), omit = std::move(omit), tables = std::move(tables)](const json& b,
                                                                                    Io& io) {
    const json& obj = key.empty() ? b : member(b, key.c_str());
    json shown = obj.is_object() ? obj : json::object();
    for (const auto& k : omit) shown.erase(k);
    for (const auto& t : tables) shown.erase(t.first);
    io.out << render_object(shown);
    for (const auto& [name, columns] : tables) {
      if (member(obj, name.c_str()).is_array())
        io.out << "\n" << name << ":\n" << render_table(columns, obj[name]);
    }
  };
}

// A created object plus the secret that comes with it, printed last and only this once.
std::function<void(const json&, Io&)> with_secret(std::string key, std::string secret) {
  return [key = std::move(key), secret = std::move(secret)](const json& b, Io& io) {
    io.out << render_object(member(b, key.c_str())) << "\n"
           << secret << ": " << cell_text(b, secret) << "\n";
  };
}

// PEM text as is (printable ASCII and newlines only), e.g. to redirect into a --ca-file.
void render_cluster_ca(const json& b, Io& io) {
  const json& c = member(b, "cluster");
  const json& pem = member(c, "ca_pem");
  if (!pem.is_string()) return;
  std::string out;
  for (const char ch : pem.get<std::string>()) {
    if (ch == '\n' || (ch >= 0x20 && ch < 0x7f)) out.push_back(ch);
  }
  io.out << out;
  if (!out.empty() && out.back() != '\n') io.out << "\n";
}

void render_approved(const json& b, Io& io) {
  io.out << "approved join request " << cell_text(b, "join_request.id") << ": node "
         << cell_text(b, "node.name") << " (" << cell_text(b, "node.id") << "), certificate serial "
         << cell_text(b, "certificate.serial") << "\n";
}

// --role ROLE or ROLE@ORG → [{"role": ROLE, "org": ORG}].
Result<json> roles_body(const std::vector<std::string>& items) {
  json out = json::array();
  for (const auto& item : items) {
    const auto at = item.find('@');
    json r{{"role", item.substr(0, at)}};
    if (at != std::string::npos) r["org"] = item.substr(at + 1);
    if (r["role"].get<std::string>().empty()) return fail("usage", "--role takes ROLE[@ORG]");
    out.push_back(std::move(r));
  }
  return out;
}

// --group ID / --parent ID, or "none" → the id, or null (one value).
Result<json> id_or_none(const std::vector<std::string>& items) {
  if (items.size() != 1 || items[0].empty()) return fail("usage", "give one ID or 'none'");
  if (items[0] == "none") return json(nullptr);
  return json(items[0]);
}

// --node CLUSTER/NODE_ID (repeatable) → [{"cluster": CLUSTER, "node": NODE_ID}].
Result<json> pool_nodes_body(const std::vector<std::string>& items) {
  json out = json::array();
  for (const auto& item : items) {
    const auto slash = item.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == item.size())
      return fail("usage", "--node takes CLUSTER/NODE_ID");
    out.push_back({{"cluster", item.substr(0, slash)}, {"node", item.substr(slash + 1)}});
  }
  return out;
}

}  // namespace

std::vector<CommandSpec> api_commands() {
  std::vector<CommandSpec> s;

  // ---- users ----
  s.push_back({.words = {"users", "create"},
               .help = "create a user (platform owner only)",
               .method = "POST",
               .route = "/api/v1/users",
               .params = {body("--email", "email", "email address"), new_password()},
               .result = "user"});
  {
    Param enabled = body("--enabled", "enabled", "true to grant, false to revoke");
    enabled.kind = Kind::kBool;
    s.push_back({.words = {"users", "platform-admin"},
                 .help = "grant or revoke the platform_admin role (platform owner, step-up)",
                 .method = "POST",
                 .route = "/api/v1/users/{email}/platform-admin",
                 .params = {positional("EMAIL", "email", "email of the user"), enabled},
                 .result = "user"});
  }

  // ---- organizations ----
  s.push_back(
      {.words = {"orgs", "list"},
       .help = "list the organizations you can see",
       .method = "GET",
       .route = "/api/v1/orgs",
       .result = "orgs",
       .columns = {
           {"SLUG", "slug"}, {"NAME", "name"}, {"ROLE", "role"}, {"CREATED", "created_at"}}});
  s.push_back({.words = {"orgs", "create"},
               .help = "create an organization (platform owner only)",
               .method = "POST",
               .route = "/api/v1/orgs",
               .params = {body("--slug", "slug", "short name [a-z0-9-]{2,63}"),
                          body("--name", "name", "display name")},
               .result = "org"});
  s.push_back({.words = {"orgs", "show"},
               .help = "show an organization and its members",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}",
               .params = {positional("SLUG", "slug", "organization slug")},
               .render = render_org});
  s.push_back({.words = {"orgs", "members", "list"},
               .help = "list the members of an organization (org admins and the owner)",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}",
               .params = {positional("SLUG", "slug", "organization slug")},
               .result = "members",
               .columns = {{"EMAIL", "email"}, {"ROLE", "role"}}});
  {
    Param role = body("--role", "role", "org_admin or org_member");
    role.choices = {"org_admin", "org_member"};
    s.push_back({.words = {"orgs", "members", "add"},
                 .help = "add an existing user to an organization",
                 .method = "POST",
                 .route = "/api/v1/orgs/{slug}/members",
                 .params = {positional("SLUG", "slug", "organization slug"),
                            body("--email", "email", "email of the user"), role},
                 .result = "membership"});
  }

  // ---- audit log ----
  s.push_back({.words = {"audit", "list"},
               .help = "list audit events, newest first",
               .method = "GET",
               .route = "/api/v1/audit",
               .params = {query("--org", "org", "only this organization's events"),
                          query("--limit", "limit", "at most this many events (1..1000)")},
               .result = "events",
               .columns = {{"ID", "id"},
                           {"AT", "at"},
                           {"ACTOR", "actor"},
                           {"ORG", "org"},
                           {"ACTION", "action"},
                           {"TARGET", "target"}}});
  s.push_back({.words = {"audit", "verify"},
               .help = "verify the audit hash chain (exit 1 when broken; platform owner only)",
               .method = "GET",
               .route = "/api/v1/audit/verify",
               .render = render_audit_verify,
               .outcome = audit_verify_outcome});

  // ---- the caller's account: step-up, TOTP, API tokens ----
  s.push_back({.words = {"step-up"},
               .help = "re-enter your password to elevate this session for 10 minutes",
               .method = "POST",
               .route = "/api/v1/auth/step-up",
               .params = {{.flag = "--password-stdin",
                           .key = "password",
                           .kind = Kind::kSecret,
                           .help = "read the password from stdin (default: prompt, echo off)"},
                          opt_body("--totp", "totp_code", "current TOTP code, if enabled")}});
  s.push_back({.words = {"totp", "enroll"},
               .help = "start TOTP enrollment (needs step-up); shows the secret once",
               .method = "POST",
               .route = "/api/v1/me/totp/enroll",
               .secret_notice = "the TOTP secret is shown only once: add it to your "
                                "authenticator app, then run rapctl totp confirm --code CODE"});
  s.push_back({.words = {"totp", "confirm"},
               .help = "finish TOTP enrollment with a current code",
               .method = "POST",
               .route = "/api/v1/me/totp/confirm",
               .params = {body("--code", "code", "current code of the authenticator app")}});
  s.push_back({.words = {"tokens", "list"},
               .help = "list your API tokens",
               .method = "GET",
               .route = "/api/v1/me/tokens",
               .result = "tokens",
               .columns = {{"ID", "id"},
                           {"NAME", "name"},
                           {"SCOPE", "scope"},
                           {"CREATED", "created_at"},
                           {"EXPIRES", "expires_at"},
                           {"LAST USED", "last_used_at"},
                           {"REVOKED", "revoked_at"}}});
  s.push_back(
      {.words = {"tokens", "create"},
       .help = "create an API token (needs step-up); prints it once",
       .method = "POST",
       .route = "/api/v1/me/tokens",
       .params = {body("--name", "name", "what the token is for"),
                  choice_body("--scope", "scope", "read (GET only) or admin", {"read", "admin"}),
                  int_body("--ttl-days", "ttl_days", "lifetime in days (1..365)", "30")},
       .render = with_secret("api_token", "token"),
       .secret_notice = "the token is shown only once: store it now (rapctl reads it "
                        "from $RAPCTL_TOKEN)"});
  s.push_back({.words = {"tokens", "revoke"},
               .help = "revoke one of your API tokens",
               .method = "DELETE",
               .route = "/api/v1/me/tokens/{id}",
               .params = {positional("ID", "id", "token id (tokens list)")},
               .result = "api_token"});

  // ---- clusters, join tokens, join requests, nodes (platform owner) ----
  const std::vector<Column> cluster_cols = {{"SLUG", "slug"},
                                            {"NAME", "name"},
                                            {"NODES", "active_nodes"},
                                            {"PENDING", "pending_join_requests"},
                                            {"CREATED", "created_at"}};
  const Param cluster = positional("CLUSTER", "cluster", "cluster slug");
  s.push_back({.words = {"clusters", "list"},
               .help = "list clusters",
               .method = "GET",
               .route = "/api/v1/clusters",
               .result = "clusters",
               .columns = cluster_cols});
  s.push_back({.words = {"clusters", "create"},
               .help = "create a cluster and its certificate authority (needs step-up)",
               .method = "POST",
               .route = "/api/v1/clusters",
               .params = {body("--slug", "slug", "short name [a-z0-9-]{2,63}"),
                          body("--name", "name", "display name")},
               .render = object_view("cluster", {"ca_pem"})});
  s.push_back({.words = {"clusters", "show"},
               .help = "show a cluster",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}",
               .params = {cluster},
               .render = object_view("cluster", {"ca_pem"})});
  s.push_back({.words = {"clusters", "ca"},
               .help = "print the cluster CA certificate (PEM)",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}",
               .params = {cluster},
               .render = render_cluster_ca});
  s.push_back(
      {.words = {"join-tokens", "create"},
       .help = "create a join token for new nodes (needs step-up); prints it once",
       .method = "POST",
       .route = "/api/v1/clusters/{cluster}/join-tokens",
       .params = {cluster,
                  int_body("--ttl", "ttl_seconds", "lifetime in seconds (60..604800)", "3600"),
                  int_body("--max-uses", "max_uses", "number of nodes (1..10000)", "1"),
                  opt_body("--description", "description", "what the token is for"),
                  {.flag = "--label",
                   .key = "labels",
                   .kind = Kind::kMap,
                   .help = "KEY=VALUE label (repeatable)"}},
       .render = with_secret("join_token", "token"),
       .secret_notice = "the join token is shown only once: copy it now"});
  s.push_back({.words = {"join-tokens", "list"},
               .help = "list join tokens (never the raw tokens)",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/join-tokens",
               .params = {cluster},
               .result = "join_tokens",
               .columns = {{"ID", "id"},
                           {"STATE", "state"},
                           {"USES", "uses"},
                           {"MAX", "max_uses"},
                           {"EXPIRES", "expires_at"},
                           {"DESCRIPTION", "description"}}});
  s.push_back({.words = {"join-tokens", "revoke"},
               .help = "revoke a join token",
               .method = "POST",
               .route = "/api/v1/clusters/{cluster}/join-tokens/{id}/revoke",
               .params = {cluster, positional("ID", "id", "join token id")},
               .result = "join_token"});
  {
    Param status = query("--status", "status", "pending, approved or rejected");
    status.choices = {"pending", "approved", "rejected"};
    s.push_back({.words = {"join-requests", "list"},
                 .help = "list join requests of nodes",
                 .method = "GET",
                 .route = "/api/v1/clusters/{cluster}/join-requests",
                 .params = {cluster, status},
                 .result = "join_requests",
                 .columns = {{"ID", "id"},
                             {"STATUS", "status"},
                             {"HOSTNAME", "facts.hostname"},
                             {"CAPABILITIES", "capabilities"},
                             {"NODE", "node_id"},
                             {"CREATED", "created_at"}}});
  }
  s.push_back({.words = {"join-requests", "approve"},
               .help = "approve a join request: creates the node and its certificate (step-up)",
               .method = "POST",
               .route = "/api/v1/clusters/{cluster}/join-requests/{id}/approve",
               .params = {cluster, positional("ID", "id", "join request id"),
                          opt_body("--name", "name", "node name (default: its hostname)"),
                          opt_body("--org", "org", "make the node owned by this organization")},
               .render = render_approved});
  s.push_back({.words = {"join-requests", "reject"},
               .help = "reject a join request",
               .method = "POST",
               .route = "/api/v1/clusters/{cluster}/join-requests/{id}/reject",
               .params = {cluster, positional("ID", "id", "join request id"),
                          opt_body("--reason", "reason", "why (kept in the audit log)")},
               .result = "join_request"});
  const Param node = positional("NODE", "node", "node id");
  s.push_back({.words = {"nodes", "list"},
               .help = "list the nodes of a cluster",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/nodes",
               .params = {cluster},
               .result = "nodes",
               .columns = {{"ID", "id"},
                           {"NAME", "name"},
                           {"STATUS", "status"},
                           {"HEALTH", "health"},
                           {"OWNER", "ownership"},
                           {"ORG", "org"},
                           {"LAST HEARTBEAT", "last_heartbeat_at"}}});
  s.push_back({.words = {"nodes", "show"},
               .help = "show a node, its roles, workloads and certificates",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/nodes/{node}",
               .params = {cluster, node},
               .render = object_view("node", {"last_state", "public_key"},
                                     {{"certificates",
                                       {{"SERIAL", "serial"},
                                        {"NOT BEFORE", "not_before"},
                                        {"NOT AFTER", "not_after"},
                                        {"REVOKED", "revoked_at"}}}})});
  s.push_back({.words = {"nodes", "revoke"},
               .help = "revoke a node and all its certificates (needs step-up)",
               .method = "POST",
               .route = "/api/v1/clusters/{cluster}/nodes/{node}/revoke",
               .params = {cluster, node, opt_body("--reason", "reason", "why")},
               .render = object_view("", {}, {})});
  {
    Param roles = list_body("--role", "roles", "ROLE or ROLE@ORG (repeatable; replaces the set)");
    roles.convert = roles_body;
    roles.required = true;
    s.push_back({.words = {"nodes", "set-roles"},
                 .help = "set the roles of a node (entry-node, relay-node, rdp-worker, ...)",
                 .method = "PUT",
                 .route = "/api/v1/clusters/{cluster}/nodes/{node}/roles",
                 .params = {cluster, node, roles}});
  }
  {
    Param workloads = body("--workloads", "workloads",
                           "JSON array [{\"name\", \"kind\": \"container|native\", \"spec\"}]");
    workloads.kind = Kind::kJson;
    s.push_back({.words = {"nodes", "set-workloads"},
                 .help = "set the workloads of a node (replaces the set)",
                 .method = "PUT",
                 .route = "/api/v1/clusters/{cluster}/nodes/{node}/workloads",
                 .params = {cluster, node, workloads}});
  }
  s.push_back({.words = {"nodes", "heartbeats"},
               .help = "recent heartbeats of a node, newest first",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/nodes/{node}/heartbeats",
               .params = {cluster, node, query("--limit", "limit", "1..100")},
               .result = "heartbeats",
               .columns = {{"AT", "at"}, {"STATE", "state"}}});

  // ---- signed configuration (platform owner and platform admins) ----
  s.push_back({.words = {"config", "keys"},
               .help = "config-signing keys of a cluster (public halves)",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/config",
               .params = {cluster},
               .result = "signing_keys",
               .columns = {{"KEY ID", "key_id"},
                           {"STATUS", "status"},
                           {"NOT AFTER", "not_after"},
                           {"PUBLIC KEY", "public_key"}}});
  s.push_back({.words = {"config", "artifacts"},
               .help = "published config artifacts of a cluster, by type",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/config",
               .params = {cluster},
               .result = "artifacts",
               .columns = {{"TYPE", "type"},
                           {"SCOPES", "scopes"},
                           {"MAX VERSION", "max_version"},
                           {"ARTIFACTS", "artifacts"},
                           {"BYTES", "bytes"}}});
  s.push_back({.words = {"config", "compile"},
               .help = "compile, sign and publish every active node's config now",
               .method = "POST",
               .route = "/api/v1/clusters/{cluster}/config/compile",
               .params = {cluster}});
  s.push_back(
      {.words = {"config", "rotate-key"},
       .help = "rotate the cluster's config-signing key (needs step-up)",
       .method = "POST",
       .route = "/api/v1/clusters/{cluster}/config/rotate-key",
       .params = {cluster, int_body("--overlap", "overlap_seconds",
                                    "seconds the old key stays trusted (default 7 days)", "")}});

  // ---- topology: node groups, authority (platform owner and platform admins) ----
  s.push_back({.words = {"node-groups", "list"},
               .help = "list the node groups of a cluster",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/node-groups",
               .params = {cluster},
               .result = "node_groups",
               .columns = {{"ID", "id"},
                           {"NAME", "name"},
                           {"PARENT", "parent_id"},
                           {"CHILDREN", "children"},
                           {"NODES", "nodes"}}});
  s.push_back({.words = {"node-groups", "create"},
               .help = "create a node group (optionally under a parent group)",
               .method = "POST",
               .route = "/api/v1/clusters/{cluster}/node-groups",
               .params = {cluster, body("--name", "name", "group name (unique among siblings)"),
                          opt_body("--parent", "parent", "parent group id")},
               .result = "node_group"});
  {
    Param parent = list_body("--parent", "parent", "new parent group id, or 'none' (root)");
    parent.convert = id_or_none;
    parent.required = true;
    s.push_back({.words = {"node-groups", "move"},
                 .help = "move a node group under another parent (cycles are refused)",
                 .method = "PUT",
                 .route = "/api/v1/clusters/{cluster}/node-groups/{id}/parent",
                 .params = {cluster, positional("ID", "id", "node group id"), parent},
                 .result = "node_group"});
  }
  s.push_back({.words = {"node-groups", "delete"},
               .help = "delete an empty node group (no child groups, no nodes)",
               .method = "DELETE",
               .route = "/api/v1/clusters/{cluster}/node-groups/{id}",
               .params = {cluster, positional("ID", "id", "node group id")},
               .result = "deleted"});
  {
    Param group = list_body("--group", "group", "node group id, or 'none'");
    group.convert = id_or_none;
    group.required = true;
    s.push_back({.words = {"nodes", "set-group"},
                 .help = "put a node into a node group (or none)",
                 .method = "PUT",
                 .route = "/api/v1/clusters/{cluster}/nodes/{node}/group",
                 .params = {cluster, node, group}});
  }
  s.push_back({.words = {"clusters", "authority", "show"},
               .help = "show the authority epoch and partition state of a cluster",
               .method = "GET",
               .route = "/api/v1/clusters/{cluster}/authority",
               .params = {cluster},
               .result = "authority"});
  {
    Param epoch = opt_body("--epoch", "authority_epoch", "new epoch (must increase)");
    epoch.kind = Kind::kInt;
    Param bump = opt_body("--bump-epoch", "bump_epoch", "true: increment the epoch");
    bump.kind = Kind::kBool;
    s.push_back(
        {.words = {"clusters", "authority", "set"},
         .help = "bump or set the authority epoch / partition state (needs step-up)",
         .method = "PUT",
         .route = "/api/v1/clusters/{cluster}/authority",
         .params = {cluster, epoch, bump,
                    choice_body("--partition-state", "partition_state",
                                "normal, degraded, partitioned or recovering",
                                {"normal", "degraded", "partitioned", "recovering"}, false)},
         .result = "authority"});
  }

  // ---- organization-scoped: groups, resources, policies ----
  const Param org = positional("ORG", "slug", "organization slug");
  const Param id = positional("ID", "id", "object id (from the list command)");
  s.push_back({.words = {"groups", "list"},
               .help = "list the groups of an organization",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/groups",
               .params = {org},
               .result = "groups",
               .columns = {{"ID", "id"}, {"NAME", "name"}, {"MEMBERS", "members"}}});
  s.push_back({.words = {"groups", "create"},
               .help = "create a group",
               .method = "POST",
               .route = "/api/v1/orgs/{slug}/groups",
               .params = {org, body("--name", "name", "group name")},
               .result = "group"});
  s.push_back({.words = {"groups", "show"},
               .help = "show a group and its members",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/groups/{id}",
               .params = {org, id},
               .render = object_view("group", {}, {{"members", {{"EMAIL", "email"}}}})});
  s.push_back({.words = {"groups", "delete"},
               .help = "delete a group",
               .method = "DELETE",
               .route = "/api/v1/orgs/{slug}/groups/{id}",
               .params = {org, id},
               .result = "deleted"});
  s.push_back({.words = {"groups", "members", "add"},
               .help = "add an organization member to a group",
               .method = "POST",
               .route = "/api/v1/orgs/{slug}/groups/{id}/members",
               .params = {org, id, body("--email", "email", "email of the member")},
               .result = "group"});
  s.push_back({.words = {"groups", "members", "remove"},
               .help = "remove a member from a group",
               .method = "DELETE",
               .route = "/api/v1/orgs/{slug}/groups/{id}/members",
               .params = {org, id, body("--email", "email", "email of the member")},
               .result = "group"});

  const std::vector<Column> resource_cols = {{"ID", "id"},
                                             {"NAME", "name"},
                                             {"PROTOCOL", "protocol"},
                                             {"ADDRESS", "address"},
                                             {"EGRESS POOL", "egress_pool"},
                                             {"CREDENTIAL", "credential_ref"}};
  s.push_back({.words = {"resources", "list"},
               .help = "list the resources of an organization (admins)",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/resources",
               .params = {org},
               .result = "resources",
               .columns = resource_cols});
  s.push_back({.words = {"resources", "mine"},
               .help = "list the resources your policies grant you",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/my-resources",
               .params = {org},
               .result = "resources",
               .columns = {{"ID", "id"}, {"NAME", "name"}, {"PROTOCOL", "protocol"}}});
  s.push_back({.words = {"resources", "create"},
               .help = "create a resource",
               .method = "POST",
               .route = "/api/v1/orgs/{slug}/resources",
               .params = {org, body("--name", "name", "resource name"),
                          choice_body("--protocol", "protocol", "rdp, ssh, vnc or tcp", kProtocols),
                          body("--address", "address", "HOST:PORT of the target"),
                          opt_body("--egress-pool", "egress_pool", "egress pool name"),
                          opt_body("--credential-ref", "credential_ref", "credential reference")},
               .result = "resource"});
  s.push_back({.words = {"resources", "show"},
               .help = "show a resource",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/resources/{id}",
               .params = {org, id},
               .result = "resource"});
  s.push_back(
      {.words = {"resources", "update"},
       .help = "change fields of a resource",
       .method = "PATCH",
       .route = "/api/v1/orgs/{slug}/resources/{id}",
       .params = {org, id, opt_body("--name", "name", "new name"),
                  choice_body("--protocol", "protocol", "rdp, ssh, vnc or tcp", kProtocols, false),
                  opt_body("--address", "address", "HOST:PORT"),
                  opt_body("--egress-pool", "egress_pool", "egress pool name"),
                  opt_body("--credential-ref", "credential_ref", "credential reference")},
       .result = "resource"});
  s.push_back({.words = {"resources", "delete"},
               .help = "delete a resource",
               .method = "DELETE",
               .route = "/api/v1/orgs/{slug}/resources/{id}",
               .params = {org, id},
               .result = "deleted"});

  s.push_back({.words = {"policies", "list"},
               .help = "list the access policies of an organization",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/policies",
               .params = {org},
               .result = "policies",
               .columns = {{"ID", "id"},
                           {"NAME", "name"},
                           {"SERVICE", "service"},
                           {"USERS", "users"},
                           {"GROUPS", "groups"},
                           {"RESOURCES", "resources"}}});
  s.push_back({.words = {"policies", "create"},
               .help = "allow users/groups to use resources with one service",
               .method = "POST",
               .route = "/api/v1/orgs/{slug}/policies",
               .params = {org, body("--name", "name", "policy name"),
                          choice_body("--service", "service", "rdp, ssh, vnc or tcp", kProtocols),
                          list_body("--user", "users", "member email (repeatable)"),
                          list_body("--group", "groups", "group id (repeatable)"),
                          list_body("--resource", "resources", "resource id (repeatable)")},
               .result = "policy"});
  s.push_back({.words = {"policies", "show"},
               .help = "show a policy",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/policies/{id}",
               .params = {org, id},
               .result = "policy"});
  s.push_back({.words = {"policies", "delete"},
               .help = "delete a policy",
               .method = "DELETE",
               .route = "/api/v1/orgs/{slug}/policies/{id}",
               .params = {org, id},
               .result = "deleted"});

  // ---- egress pools (created and backed by platform staff; members see name/description) ----
  s.push_back({.words = {"egress-pools", "list"},
               .help = "list the egress pools of an organization (nodes: platform staff only)",
               .method = "GET",
               .route = "/api/v1/orgs/{slug}/egress-pools",
               .params = {org},
               .result = "egress_pools",
               .columns = {{"ID", "id"}, {"NAME", "name"}, {"DESCRIPTION", "description"}}});
  s.push_back({.words = {"egress-pools", "create"},
               .help = "create an egress pool for an organization (platform staff, step-up)",
               .method = "POST",
               .route = "/api/v1/orgs/{slug}/egress-pools",
               .params = {org, body("--name", "name", "pool name, e.g. 'Office Berlin'"),
                          opt_body("--description", "description", "what the exit is")},
               .result = "egress_pool"});
  {
    Param nodes = list_body("--node", "nodes", "CLUSTER/NODE_ID (repeatable; replaces the set)");
    nodes.convert = pool_nodes_body;
    nodes.required = true;
    s.push_back({.words = {"egress-pools", "set-nodes"},
                 .help = "set the nodes backing an egress pool (platform staff, step-up)",
                 .method = "PUT",
                 .route = "/api/v1/orgs/{slug}/egress-pools/{id}/nodes",
                 .params = {org, id, nodes},
                 .render = object_view("egress_pool", {},
                                       {{"nodes",
                                         {{"CLUSTER", "cluster"},
                                          {"NODE", "node_id"},
                                          {"NAME", "node_name"},
                                          {"STATUS", "status"}}}})});
  }

  return s;
}

}  // namespace rap::cli
