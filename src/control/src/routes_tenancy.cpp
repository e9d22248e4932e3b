// Organization-scoped tenancy objects: groups (of org members), resources (named targets) and
// policies (subjects -> resources for one service), all under /api/v1/orgs/{slug}/...
//
// Isolation rules:
//  * every route resolves the organization with find_org (404 org_not_found for non-members, so
//    other tenants are never revealed) and then asks authorize() -- the single permission rule;
//  * every object lookup is keyed by (org_id, id): another organization's id answers 404 exactly
//    like an id that does not exist; a malformed id is 404 as well;
//  * the schema backs this up: cross-references are composite (org_id, id) foreign keys
//    (migration 4), so no row can point into another organization;
//  * plain members see only the resources that policies grant them (GET .../my-resources), and
//    only their name and protocol -- not addresses, egress pools or credential references.
// Every mutation writes its audit event (with the org id) in the same transaction.
#include <set>

#include "api_internal.h"
#include "rap/control/auth.h"

namespace rap::control::detail {

namespace {

constexpr std::size_t kMaxListItems = 100;  // members of one policy's users/groups/resources

// ---------------- authorization (the one place) ----------------

enum class Action : std::uint8_t {
  kAdminRead,     // list/read groups, resources, policies with all their fields
  kMutate,        // create/update/delete groups, resources, policies, group members
  kReadEntitled,  // read the resources the caller is entitled to (my-resources)
};

// The platform owner and org_admin may do everything in the organization; org_member may only
// read their own entitlements. (find_org has already hidden organizations the caller is not in.)
Result<void> authorize(const Ctx& ctx, const OrgView& org, Action action) {
  if (ctx.caller->is_owner || org.role == "org_admin") return {};
  if (org.role == "org_member" && action == Action::kReadEntitled) return {};
  return http_fail(403, "forbidden", "not allowed for this user");
}

using ReadFn = std::function<Result<json>(pqxx::transaction_base&, const OrgView&)>;
using WriteFn = std::function<Result<json>(pqxx::work&, const OrgView&)>;

HttpResponse map_error(const Error& e, const char* conflict_code) {
  if (e.code == "conflict") {
    return error_response(409, conflict_code,
                          std::string(conflict_code) == "name_taken" ? "the name is already taken"
                                                                     : "conflicting change");
  }
  return to_response(e);
}

// Resolves {slug}, authorizes `action`, then runs `fn` in a read-only transaction.
HttpResponse org_read(Ctx& ctx, Action action, const ReadFn& fn) {
  std::string slug = ctx.param("slug");  // owned copy: used by DB work on another thread
  auto r = ctx.db.with_connection<json>([&](pqxx::connection& c) -> Result<json> {
    pqxx::read_transaction t(c);
    auto org = find_org(t, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (auto ok = authorize(ctx, *org, action); !ok) return tl::unexpected(ok.error());
    return fn(t, *org);
  });
  if (!r) return to_response(r.error());
  return json_response(200, *r);
}

// Resolves {slug}, authorizes kMutate, reports `body_error` (request validation, done before
// but reported after authorization), then runs `fn` in one transaction with its audit event.
HttpResponse org_write(Ctx& ctx, const std::optional<HttpResponse>& body_error, int status,
                       const char* conflict_code, const WriteFn& fn) {
  std::string slug = ctx.param("slug");
  auto r = ctx.db.with_transaction<json>([&](pqxx::work& w) -> Result<json> {
    auto org = find_org(w, *ctx.caller, slug);
    if (!org) return tl::unexpected(org.error());
    if (auto ok = authorize(ctx, *org, Action::kMutate); !ok) return tl::unexpected(ok.error());
    if (body_error) return fail("passthrough", "request body rejected");
    return fn(w, *org);
  });
  if (!r)
    return r.error().code == "passthrough" ? *body_error : map_error(r.error(), conflict_code);
  return json_response(status, *r);
}

template <class T>
std::optional<HttpResponse> error_of(const Step<T>& s) {
  if (s) return std::nullopt;
  return s.error();
}

HttpResponse bad(const std::string& code, const std::string& message) {
  return error_response(400, code, message);
}

// ---------------- validation ----------------

bool valid_protocol(std::string_view p) {
  return p == "rdp" || p == "ssh" || p == "vnc" || p == "tcp";
}

bool valid_dns_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  while (!host.empty()) {
    const auto dot = host.find('.');
    const std::string_view label = host.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (const char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    if (dot == std::string_view::npos) break;
    host.remove_prefix(dot + 1);
    if (host.empty()) return false;  // trailing dot
  }
  return true;
}

// host:port with a DNS name / IPv4 address or a [bracketed] IPv6 address, port 1..65535.
bool valid_address(std::string_view a) {
  const auto colon = a.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::string_view host = a.substr(0, colon);
  const std::string_view port = a.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  int p = 0;
  for (const char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + (c - '0');
  }
  if (p < 1 || p > 65535) return false;
  if (host.front() == '[') {
    if (host.size() < 4 || host.size() > 47 || host.back() != ']') return false;
    const std::string_view v6 = host.substr(1, host.size() - 2);
    if (v6.find(':') == std::string_view::npos) return false;
    for (const char c : v6) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    return true;
  }
  return valid_dns_name(host);
}

// A reference to a secret held elsewhere (vault path, key id), never the secret itself.
bool valid_credential_ref(std::string_view s) {
  if (s.empty() || s.size() > 200) return false;
  for (const char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("._:/@-").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

// Optional array of strings (absent/null -> empty), at most kMaxListItems, duplicates dropped.
Step<std::vector<std::string>> opt_string_list(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array() || it->size() > kMaxListItems) {
    return tl::unexpected(bad("invalid_request", std::string("field '") + key +
                                                     "' must be an array of at most 100 strings"));
  }
  std::set<std::string> seen;
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return tl::unexpected(
          bad("invalid_request", std::string("field '") + key + "' must contain strings"));
    }
    if (seen.insert(v.get<std::string>()).second) out.push_back(v.get<std::string>());
  }
  return out;
}

json parse_agg(const pqxx::field& f) {
  return f.is_null() ? json::array() : json::parse(f.as<std::string>(), nullptr, false);
}

// Org member by email: the only users that groups and policies may reference.
Result<std::string> org_member_id(pqxx::transaction_base& t, const std::string& org_id,
                                  const std::string& email) {
  auto rows = t.exec_params(
      "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id "
      "WHERE u.email = $1 AND m.org_id = $2::uuid",
      lower(email), org_id);
  if (rows.empty()) return http_fail(404, "user_not_found", "user not found in this organization");
  return rows[0][0].as<std::string>();
}

// ---------------- groups ----------------

constexpr const char* kGroupCols =
    "g.id, g.name, " RAP_TS("g.created_at") " AS created_at, "
    "(SELECT json_agg(json_build_object('id', u.id, 'email', u.email) ORDER BY u.email)::text "
    " FROM group_members gm JOIN users u ON u.id = gm.user_id WHERE gm.group_id = g.id) "
    "AS members";

json group_json(const pqxx::row& r) {
  return json{{"id", r["id"].as<std::string>()},
              {"name", r["name"].as<std::string>()},
              {"created_at", r["created_at"].as<std::string>()},
              {"members", parse_agg(r["members"])}};
}

Result<json> load_group(pqxx::transaction_base& t, const std::string& org_id,
                        const std::string& id) {
  if (!valid_uuid(id)) return http_fail(404, "group_not_found", "group not found");
  auto rows = t.exec_params(std::string("SELECT ") + kGroupCols +
                                " FROM groups g WHERE g.org_id = $1::uuid AND g.id = $2::uuid",
                            org_id, id);
  if (rows.empty()) return http_fail(404, "group_not_found", "group not found");
  return group_json(rows[0]);
}

HttpResponse post_group(Ctx& ctx) {
  auto f = parse_fields(ctx.req.body, {"name"});
  if (f && !valid_name((*f)["name"]))
    f = tl::unexpected(bad("invalid_name", "name must be 1 to 100 bytes, no control chars"));
  return org_write(ctx, error_of(f), 201, "name_taken",
                   [&](pqxx::work& w, const OrgView& org) -> Result<json> {
                     const std::string& name = (*f)["name"];
                     auto rows = w.exec_params(
                         "INSERT INTO groups (org_id, name) VALUES ($1::uuid, $2) "
                         "ON CONFLICT (org_id, name) DO NOTHING RETURNING id",
                         org.id, name);
                     if (rows.empty())
                       return http_fail(409, "name_taken", "a group with this name exists");
                     const std::string id = rows[0][0].as<std::string>();
                     audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                                         .org_id = org.id,
                                         .action = "group.created",
                                         .target = "group:" + id,
                                         .details = json{{"name", name}}});
                     auto g = load_group(w, org.id, id);
                     if (!g) return g;
                     return json{{"group", *g}};
                   });
}

HttpResponse get_groups(Ctx& ctx) {
  return org_read(ctx, Action::kAdminRead,
                  [](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
                    json out = json::array();
                    for (const auto& row : t.exec_params(std::string("SELECT ") + kGroupCols +
                                                             " FROM groups g WHERE g.org_id = "
                                                             "$1::uuid ORDER BY g.name",
                                                         org.id))
                      out.push_back(group_json(row));
                    return json{{"groups", out}};
                  });
}

HttpResponse get_group(Ctx& ctx) {
  std::string id = ctx.param("id");
  return org_read(ctx, Action::kAdminRead,
                  [&](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
                    auto g = load_group(t, org.id, id);
                    if (!g) return g;
                    return json{{"group", *g}};
                  });
}

HttpResponse delete_group(Ctx& ctx) {
  std::string id = ctx.param("id");
  return org_write(ctx, std::nullopt, 200, "conflict",
                   [&](pqxx::work& w, const OrgView& org) -> Result<json> {
                     if (!valid_uuid(id))
                       return http_fail(404, "group_not_found", "group not found");
                     auto rows = w.exec_params(
                         "DELETE FROM groups WHERE org_id = $1::uuid AND id = $2::uuid "
                         "RETURNING name",
                         org.id, id);
                     if (rows.empty()) return http_fail(404, "group_not_found", "group not found");
                     audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                                         .org_id = org.id,
                                         .action = "group.deleted",
                                         .target = "group:" + id,
                                         .details = json{{"name", rows[0][0].as<std::string>()}}});
                     return json{{"deleted", {{"id", id}}}};
                   });
}

HttpResponse group_member_change(Ctx& ctx, bool add) {
  std::string id = ctx.param("id");
  auto f = parse_fields(ctx.req.body, {"email"});
  if (f && !valid_email(lower((*f)["email"])))
    f = tl::unexpected(bad("invalid_email", "invalid email address"));
  return org_write(
      ctx, error_of(f), add ? 201 : 200, "conflict",
      [&](pqxx::work& w, const OrgView& org) -> Result<json> {
        if (!valid_uuid(id)) return http_fail(404, "group_not_found", "group not found");
        auto g = w.exec_params("SELECT 1 FROM groups WHERE org_id = $1::uuid AND id = $2::uuid",
                               org.id, id);
        if (g.empty()) return http_fail(404, "group_not_found", "group not found");
        const std::string email = lower((*f)["email"]);
        auto uid = org_member_id(w, org.id, email);
        if (!uid) return tl::unexpected(uid.error());
        pqxx::result rows;
        if (add) {
          rows = w.exec_params(
              "INSERT INTO group_members (org_id, group_id, user_id) "
              "VALUES ($1::uuid, $2::uuid, $3::uuid) ON CONFLICT DO NOTHING RETURNING user_id",
              org.id, id, *uid);
          if (rows.empty())
            return http_fail(409, "already_member", "user is already in this group");
        } else {
          rows = w.exec_params(
              "DELETE FROM group_members WHERE org_id = $1::uuid AND group_id = $2::uuid "
              "AND user_id = $3::uuid RETURNING user_id",
              org.id, id, *uid);
          if (rows.empty()) return http_fail(404, "user_not_found", "user is not in this group");
        }
        audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                            .org_id = org.id,
                            .action = add ? "group.member_added" : "group.member_removed",
                            .target = "group:" + id,
                            .details = json{{"email", email}}});
        auto out = load_group(w, org.id, id);
        if (!out) return out;
        return json{{"group", *out}};
      });
}

HttpResponse post_group_member(Ctx& ctx) {
  return group_member_change(ctx, true);
}
HttpResponse delete_group_member(Ctx& ctx) {
  return group_member_change(ctx, false);
}

// ---------------- resources ----------------

constexpr const char* kResourceCols =
    "id, name, protocol, address, egress_pool, credential_ref, " RAP_TS(
        "created_at") " AS created_at, " RAP_TS("updated_at") " AS updated_at";

json resource_json(const pqxx::row& r) {
  auto opt = [&](const char* c) {
    return r[c].is_null() ? json(nullptr) : json(r[c].as<std::string>());
  };
  return json{{"id", r["id"].as<std::string>()},
              {"name", r["name"].as<std::string>()},
              {"protocol", r["protocol"].as<std::string>()},
              {"address", r["address"].as<std::string>()},
              {"egress_pool", opt("egress_pool")},
              {"credential_ref", opt("credential_ref")},
              {"created_at", r["created_at"].as<std::string>()},
              {"updated_at", r["updated_at"].as<std::string>()}};
}

// A validated resource body. For PATCH every member is optional; `set_*` says it was present
// (egress_pool / credential_ref may be set to null = cleared, carried as "").
struct ResourceFields {
  bool set_name = false, set_protocol = false, set_address = false, set_pool = false,
       set_cred = false;
  std::string name, protocol, address, pool, cred;
};

Step<ResourceFields> parse_resource(const std::string& body, bool create) {
  auto j = parse_object(body);
  if (!j) return tl::unexpected(j.error());
  if (auto b = reject_unknown_fields(
          *j, {"name", "protocol", "address", "egress_pool", "credential_ref"}))
    return tl::unexpected(*b);
  ResourceFields f;
  auto take = [&](const char* key, bool& set, std::string& out) -> std::optional<HttpResponse> {
    auto v = opt_string(*j, key);
    if (!v) return v.error();
    if (*v) {
      set = true;
      out = **v;
    } else if (j->contains(key)) {
      set = true;  // explicit null
    }
    return std::nullopt;
  };
  if (auto e = take("name", f.set_name, f.name)) return tl::unexpected(*e);
  if (auto e = take("protocol", f.set_protocol, f.protocol)) return tl::unexpected(*e);
  if (auto e = take("address", f.set_address, f.address)) return tl::unexpected(*e);
  if (auto e = take("egress_pool", f.set_pool, f.pool)) return tl::unexpected(*e);
  if (auto e = take("credential_ref", f.set_cred, f.cred)) return tl::unexpected(*e);
  if (create) {
    for (auto [set, key] : {std::pair{f.set_name, "name"}, std::pair{f.set_protocol, "protocol"},
                            std::pair{f.set_address, "address"}}) {
      if (!set)
        return tl::unexpected(bad("invalid_request", std::string("missing field '") + key + "'"));
    }
  } else if (!f.set_name && !f.set_protocol && !f.set_address && !f.set_pool && !f.set_cred) {
    return tl::unexpected(bad("invalid_request", "nothing to update"));
  }
  if (f.set_name && !valid_name(f.name))
    return tl::unexpected(bad("invalid_name", "name must be 1 to 100 bytes, no control chars"));
  if (f.set_protocol && !valid_protocol(f.protocol))
    return tl::unexpected(
        bad("invalid_protocol", "protocol must be one of 'rdp', 'ssh', 'vnc', 'tcp'"));
  if (f.set_address && !valid_address(f.address))
    return tl::unexpected(bad(
        "invalid_address", "address must be host:port (DNS name, IPv4 or [IPv6]; port 1..65535)"));
  if (f.set_pool && !f.pool.empty() && !valid_name(f.pool))
    return tl::unexpected(bad("invalid_egress_pool", "egress_pool must be 1 to 100 bytes or null"));
  if (f.set_pool && f.pool.empty() && j->at("egress_pool").is_string())
    return tl::unexpected(bad("invalid_egress_pool", "egress_pool must be 1 to 100 bytes or null"));
  if (f.set_cred && !f.cred.empty() && !valid_credential_ref(f.cred))
    return tl::unexpected(bad("invalid_credential_ref",
                              "credential_ref must be a reference [A-Za-z0-9._:/@-]{1,200}"));
  if (f.set_cred && f.cred.empty() && j->at("credential_ref").is_string())
    return tl::unexpected(bad("invalid_credential_ref",
                              "credential_ref must be a reference [A-Za-z0-9._:/@-]{1,200}"));
  return f;
}

HttpResponse post_resource(Ctx& ctx) {
  auto f = parse_resource(ctx.req.body, true);
  return org_write(
      ctx, error_of(f), 201, "name_taken", [&](pqxx::work& w, const OrgView& org) -> Result<json> {
        auto rows =
            w.exec_params(std::string("INSERT INTO resources (org_id, name, protocol, address, "
                                      "egress_pool, credential_ref) VALUES ($1::uuid, $2, $3, $4, "
                                      "NULLIF($5, ''), NULLIF($6, '')) "
                                      "ON CONFLICT (org_id, name) DO NOTHING RETURNING ") +
                              kResourceCols,
                          org.id, f->name, f->protocol, f->address, f->pool, f->cred);
        if (rows.empty()) return http_fail(409, "name_taken", "a resource with this name exists");
        json r = resource_json(rows[0]);
        audit(w, AuditEvent{
                     .actor_user_id = ctx.caller->user_id,
                     .org_id = org.id,
                     .action = "resource.created",
                     .target = "resource:" + r["id"].get<std::string>(),
                     .details = json{
                         {"name", f->name}, {"protocol", f->protocol}, {"address", f->address}}});
        return json{{"resource", r}};
      });
}

HttpResponse get_resources(Ctx& ctx) {
  return org_read(ctx, Action::kAdminRead,
                  [](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
                    json out = json::array();
                    for (const auto& row :
                         t.exec_params(std::string("SELECT ") + kResourceCols +
                                           " FROM resources WHERE org_id = $1::uuid ORDER BY name",
                                       org.id))
                      out.push_back(resource_json(row));
                    return json{{"resources", out}};
                  });
}

HttpResponse get_resource(Ctx& ctx) {
  std::string id = ctx.param("id");
  return org_read(
      ctx, Action::kAdminRead, [&](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
        if (!valid_uuid(id)) return http_fail(404, "resource_not_found", "resource not found");
        auto rows = t.exec_params(std::string("SELECT ") + kResourceCols +
                                      " FROM resources WHERE org_id = $1::uuid AND id = $2::uuid",
                                  org.id, id);
        if (rows.empty()) return http_fail(404, "resource_not_found", "resource not found");
        return json{{"resource", resource_json(rows[0])}};
      });
}

HttpResponse patch_resource(Ctx& ctx) {
  std::string id = ctx.param("id");
  auto f = parse_resource(ctx.req.body, false);
  return org_write(
      ctx, error_of(f), 200, "name_taken", [&](pqxx::work& w, const OrgView& org) -> Result<json> {
        if (!valid_uuid(id)) return http_fail(404, "resource_not_found", "resource not found");
        if (f->set_name) {
          auto dup = w.exec_params(
              "SELECT 1 FROM resources WHERE org_id = $1::uuid AND name = $2 AND id <> $3::uuid",
              org.id, f->name, id);
          if (!dup.empty()) return http_fail(409, "name_taken", "a resource with this name exists");
        }
        auto rows = w.exec_params(
            std::string(
                "UPDATE resources SET "
                "name = CASE WHEN $3::boolean THEN $4 ELSE name END, "
                "protocol = CASE WHEN $5::boolean THEN $6 ELSE protocol END, "
                "address = CASE WHEN $7::boolean THEN $8 ELSE address END, "
                "egress_pool = CASE WHEN $9::boolean THEN NULLIF($10, '') ELSE egress_pool END, "
                "credential_ref = CASE WHEN $11::boolean THEN NULLIF($12, '') "
                "ELSE credential_ref END, updated_at = now() "
                "WHERE org_id = $1::uuid AND id = $2::uuid RETURNING ") +
                kResourceCols,
            org.id, id, f->set_name, f->name, f->set_protocol, f->protocol, f->set_address,
            f->address, f->set_pool, f->pool, f->set_cred, f->cred);
        if (rows.empty()) return http_fail(404, "resource_not_found", "resource not found");
        json changed = json::array();
        for (auto [set, key] :
             {std::pair{f->set_name, "name"}, std::pair{f->set_protocol, "protocol"},
              std::pair{f->set_address, "address"}, std::pair{f->set_pool, "egress_pool"},
              std::pair{f->set_cred, "credential_ref"}}) {
          if (set) changed.push_back(key);
        }
        audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                            .org_id = org.id,
                            .action = "resource.updated",
                            .target = "resource:" + id,
                            .details = json{{"fields", changed}}});
        return json{{"resource", resource_json(rows[0])}};
      });
}

HttpResponse delete_resource(Ctx& ctx) {
  std::string id = ctx.param("id");
  return org_write(ctx, std::nullopt, 200, "conflict",
                   [&](pqxx::work& w, const OrgView& org) -> Result<json> {
                     if (!valid_uuid(id))
                       return http_fail(404, "resource_not_found", "resource not found");
                     auto rows = w.exec_params(
                         "DELETE FROM resources WHERE org_id = $1::uuid AND id = $2::uuid "
                         "RETURNING name",
                         org.id, id);
                     if (rows.empty())
                       return http_fail(404, "resource_not_found", "resource not found");
                     audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                                         .org_id = org.id,
                                         .action = "resource.deleted",
                                         .target = "resource:" + id,
                                         .details = json{{"name", rows[0][0].as<std::string>()}}});
                     return json{{"deleted", {{"id", id}}}};
                   });
}

// Resources the user is entitled to: granted by an allow policy of the resource's service whose
// subjects include the user directly or through one of their groups.
HttpResponse get_my_resources(Ctx& ctx) {
  return org_read(
      ctx, Action::kReadEntitled,
      [&](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
        auto rows = t.exec_params(
            "SELECT r.id, r.name, r.protocol FROM resources r WHERE r.org_id = $1::uuid AND "
            "EXISTS (SELECT 1 FROM policy_resources pr "
            "  JOIN policies p ON p.id = pr.policy_id AND p.org_id = pr.org_id "
            "  JOIN policy_subjects s ON s.policy_id = p.id AND s.org_id = p.org_id "
            "  WHERE pr.resource_id = r.id AND pr.org_id = r.org_id AND p.action = 'allow' "
            "  AND p.service = r.protocol AND (s.user_id = $2::uuid OR s.group_id IN "
            "    (SELECT gm.group_id FROM group_members gm "
            "     WHERE gm.user_id = $2::uuid AND gm.org_id = $1::uuid))) "
            "ORDER BY r.name",
            org.id, ctx.caller->user_id);
        json out = json::array();
        for (const auto& row : rows) {
          out.push_back({{"id", row[0].as<std::string>()},
                         {"name", row[1].as<std::string>()},
                         {"protocol", row[2].as<std::string>()}});
        }
        return json{{"resources", out}};
      });
}

// ---------------- policies ----------------

constexpr const char* kPolicyCols =
    "p.id, p.name, p.service, p.action, " RAP_TS("p.created_at") " AS created_at, "
    "(SELECT json_agg(json_build_object('id', u.id, 'email', u.email) ORDER BY u.email)::text "
    " FROM policy_subjects s JOIN users u ON u.id = s.user_id WHERE s.policy_id = p.id) AS users, "
    "(SELECT json_agg(json_build_object('id', g.id, 'name', g.name) ORDER BY g.name)::text "
    " FROM policy_subjects s JOIN groups g ON g.id = s.group_id WHERE s.policy_id = p.id) "
    "AS groups, "
    "(SELECT json_agg(json_build_object('id', r.id, 'name', r.name) ORDER BY r.name)::text "
    " FROM policy_resources pr JOIN resources r ON r.id = pr.resource_id "
    " WHERE pr.policy_id = p.id) AS resources";

json policy_json(const pqxx::row& r) {
  return json{{"id", r["id"].as<std::string>()},
              {"name", r["name"].as<std::string>()},
              {"service", r["service"].as<std::string>()},
              {"action", r["action"].as<std::string>()},
              {"created_at", r["created_at"].as<std::string>()},
              {"users", parse_agg(r["users"])},
              {"groups", parse_agg(r["groups"])},
              {"resources", parse_agg(r["resources"])}};
}

Result<json> load_policy(pqxx::transaction_base& t, const std::string& org_id,
                         const std::string& id) {
  if (!valid_uuid(id)) return http_fail(404, "policy_not_found", "policy not found");
  auto rows = t.exec_params(std::string("SELECT ") + kPolicyCols +
                                " FROM policies p WHERE p.org_id = $1::uuid AND p.id = $2::uuid",
                            org_id, id);
  if (rows.empty()) return http_fail(404, "policy_not_found", "policy not found");
  return policy_json(rows[0]);
}

struct PolicyFields {
  std::string name, service;
  std::vector<std::string> users, groups, resources;
};

Step<PolicyFields> parse_policy(const std::string& body) {
  auto j = parse_object(body);
  if (!j) return tl::unexpected(j.error());
  if (auto b =
          reject_unknown_fields(*j, {"name", "service", "action", "users", "groups", "resources"}))
    return tl::unexpected(*b);
  PolicyFields f;
  auto name = req_string(*j, "name");
  if (!name) return tl::unexpected(name.error());
  auto service = req_string(*j, "service");
  if (!service) return tl::unexpected(service.error());
  auto action = opt_string(*j, "action");
  if (!action) return tl::unexpected(action.error());
  auto users = opt_string_list(*j, "users");
  if (!users) return tl::unexpected(users.error());
  auto groups = opt_string_list(*j, "groups");
  if (!groups) return tl::unexpected(groups.error());
  auto resources = opt_string_list(*j, "resources");
  if (!resources) return tl::unexpected(resources.error());
  if (!valid_name(*name))
    return tl::unexpected(bad("invalid_name", "name must be 1 to 100 bytes, no control chars"));
  if (!valid_protocol(*service))
    return tl::unexpected(
        bad("invalid_service", "service must be one of 'rdp', 'ssh', 'vnc', 'tcp'"));
  if (*action && **action != "allow")
    return tl::unexpected(bad("invalid_action", "action must be 'allow'"));
  if (users->empty() && groups->empty())
    return tl::unexpected(bad("invalid_subjects", "a policy needs at least one user or group"));
  if (resources->empty())
    return tl::unexpected(bad("invalid_resources", "a policy needs at least one resource"));
  f.name = *name;
  f.service = *service;
  f.users = std::move(*users);
  f.groups = std::move(*groups);
  f.resources = std::move(*resources);
  return f;
}

HttpResponse post_policy(Ctx& ctx) {
  auto f = parse_policy(ctx.req.body);
  return org_write(
      ctx, error_of(f), 201, "name_taken", [&](pqxx::work& w, const OrgView& org) -> Result<json> {
        auto rows = w.exec_params(
            "INSERT INTO policies (org_id, name, service) VALUES ($1::uuid, $2, $3) "
            "ON CONFLICT (org_id, name) DO NOTHING RETURNING id",
            org.id, f->name, f->service);
        if (rows.empty()) return http_fail(409, "name_taken", "a policy with this name exists");
        const std::string id = rows[0][0].as<std::string>();
        // Every reference is looked up within this organization: another tenant's id is
        // indistinguishable from one that does not exist.
        for (const auto& email : f->users) {
          auto uid = org_member_id(w, org.id, email);
          if (!uid) return tl::unexpected(uid.error());
          w.exec_params(
              "INSERT INTO policy_subjects (org_id, policy_id, user_id) "
              "VALUES ($1::uuid, $2::uuid, $3::uuid) ON CONFLICT DO NOTHING",
              org.id, id, *uid);
        }
        for (const auto& gid : f->groups) {
          if (!valid_uuid(gid)) return http_fail(404, "group_not_found", "group not found");
          auto g = w.exec_params("SELECT 1 FROM groups WHERE org_id = $1::uuid AND id = $2::uuid",
                                 org.id, gid);
          if (g.empty()) return http_fail(404, "group_not_found", "group not found");
          w.exec_params(
              "INSERT INTO policy_subjects (org_id, policy_id, group_id) "
              "VALUES ($1::uuid, $2::uuid, $3::uuid) ON CONFLICT DO NOTHING",
              org.id, id, gid);
        }
        for (const auto& rid : f->resources) {
          if (!valid_uuid(rid)) return http_fail(404, "resource_not_found", "resource not found");
          auto r = w.exec_params(
              "SELECT protocol FROM resources WHERE org_id = $1::uuid AND id = $2::uuid", org.id,
              rid);
          if (r.empty()) return http_fail(404, "resource_not_found", "resource not found");
          if (r[0][0].as<std::string>() != f->service)
            return http_fail(400, "service_mismatch",
                             "every resource's protocol must match the policy's service");
          w.exec_params(
              "INSERT INTO policy_resources (org_id, policy_id, resource_id) "
              "VALUES ($1::uuid, $2::uuid, $3::uuid) ON CONFLICT DO NOTHING",
              org.id, id, rid);
        }
        auto p = load_policy(w, org.id, id);
        if (!p) return p;
        audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                            .org_id = org.id,
                            .action = "policy.created",
                            .target = "policy:" + id,
                            .details = json{{"name", f->name},
                                            {"service", f->service},
                                            {"users", (*p)["users"]},
                                            {"groups", (*p)["groups"]},
                                            {"resources", (*p)["resources"]}}});
        return json{{"policy", *p}};
      });
}

HttpResponse get_policies(Ctx& ctx) {
  return org_read(ctx, Action::kAdminRead,
                  [](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
                    json out = json::array();
                    for (const auto& row : t.exec_params(std::string("SELECT ") + kPolicyCols +
                                                             " FROM policies p WHERE p.org_id = "
                                                             "$1::uuid ORDER BY p.name",
                                                         org.id))
                      out.push_back(policy_json(row));
                    return json{{"policies", out}};
                  });
}

HttpResponse get_policy(Ctx& ctx) {
  std::string id = ctx.param("id");
  return org_read(ctx, Action::kAdminRead,
                  [&](pqxx::transaction_base& t, const OrgView& org) -> Result<json> {
                    auto p = load_policy(t, org.id, id);
                    if (!p) return p;
                    return json{{"policy", *p}};
                  });
}

HttpResponse delete_policy(Ctx& ctx) {
  std::string id = ctx.param("id");
  return org_write(ctx, std::nullopt, 200, "conflict",
                   [&](pqxx::work& w, const OrgView& org) -> Result<json> {
                     if (!valid_uuid(id))
                       return http_fail(404, "policy_not_found", "policy not found");
                     auto rows = w.exec_params(
                         "DELETE FROM policies WHERE org_id = $1::uuid AND id = $2::uuid "
                         "RETURNING name",
                         org.id, id);
                     if (rows.empty())
                       return http_fail(404, "policy_not_found", "policy not found");
                     audit(w, AuditEvent{.actor_user_id = ctx.caller->user_id,
                                         .org_id = org.id,
                                         .action = "policy.deleted",
                                         .target = "policy:" + id,
                                         .details = json{{"name", rows[0][0].as<std::string>()}}});
                     return json{{"deleted", {{"id", id}}}};
                   });
}

}  // namespace

void register_tenancy_routes(Router& r) {
  const std::string org = "/api/v1/orgs/{slug}";
  r.add("POST", org + "/groups", Auth::kUser, post_group);
  r.add("GET", org + "/groups", Auth::kUser, get_groups);
  r.add("GET", org + "/groups/{id}", Auth::kUser, get_group);
  r.add("DELETE", org + "/groups/{id}", Auth::kUser, delete_group);
  r.add("POST", org + "/groups/{id}/members", Auth::kUser, post_group_member);
  r.add("DELETE", org + "/groups/{id}/members", Auth::kUser, delete_group_member);
  r.add("POST", org + "/resources", Auth::kUser, post_resource);
  r.add("GET", org + "/resources", Auth::kUser, get_resources);
  r.add("GET", org + "/resources/{id}", Auth::kUser, get_resource);
  r.add("PATCH", org + "/resources/{id}", Auth::kUser, patch_resource);
  r.add("DELETE", org + "/resources/{id}", Auth::kUser, delete_resource);
  r.add("POST", org + "/policies", Auth::kUser, post_policy);
  r.add("GET", org + "/policies", Auth::kUser, get_policies);
  r.add("GET", org + "/policies/{id}", Auth::kUser, get_policy);
  r.add("DELETE", org + "/policies/{id}", Auth::kUser, delete_policy);
  r.add("GET", org + "/my-resources", Auth::kUser, get_my_resources);
}

}  // namespace rap::control::detail
