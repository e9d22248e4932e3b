#include "rap/control/migrations.h"

#include <pqxx/pqxx>

#include "rap/control/db.h"

namespace rap::control {

namespace {

constexpr const char* kV1 = R"SQL(
CREATE TABLE organizations (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{2,63}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email              text NOT NULL UNIQUE,
  password_hash      text NOT NULL,
  is_platform_owner  boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
  user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  role        text NOT NULL CHECK (role IN ('org_admin', 'org_member')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, org_id)
);
CREATE INDEX memberships_org_idx ON memberships(org_id);

CREATE TABLE api_tokens (
  id            bigserial PRIMARY KEY,
  user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_sha256  text NOT NULL UNIQUE,
  kind          text NOT NULL DEFAULT 'session' CHECK (kind IN ('session', 'api')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens(user_id);

CREATE TABLE audit_events (
  id             bigserial PRIMARY KEY,
  at             timestamptz NOT NULL DEFAULT now(),
  actor_user_id  uuid REFERENCES users(id) ON DELETE SET NULL,
  org_id         uuid REFERENCES organizations(id) ON DELETE SET NULL,
  action         text NOT NULL,
  target         text NOT NULL DEFAULT '',
  details        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_org_idx ON audit_events(org_id, id);

CREATE TABLE setup_state (
  id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
  setup_token_sha256  text,
  issued_at           timestamptz,
  completed_at        timestamptz
);
INSERT INTO setup_state (id) VALUES (true);
)SQL";

// Audit hash chain: each event stores the hash of the event before it and its own hash over a
// canonical JSON array of its fields (jsonb text output is canonical), so editing or deleting a
// row is detectable (`rapctl audit verify`, GET /api/v1/audit/verify). Existing rows are chained.
constexpr const char* kV2 = R"SQL(
ALTER TABLE audit_events
  ADD COLUMN actor_node_id text NOT NULL DEFAULT '',
  ADD COLUMN cluster_id    uuid,
  ADD COLUMN outcome       text NOT NULL DEFAULT 'success' CHECK (outcome IN ('success', 'denied')),
  ADD COLUMN prev_hash     text,
  ADD COLUMN hash          text;

CREATE FUNCTION rap_audit_digest(prev text, id bigint, at timestamptz, actor_user uuid,
                                 actor_node text, org uuid, cluster uuid, action text,
                                 target text, outcome text, details jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(jsonb_build_array(
    'rap-audit-v1', prev, id,
    to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    actor_user, actor_node, org, cluster, action, target, outcome, details)::text, 'UTF8')), 'hex')
$$;

DO $$
DECLARE
  r record;
  p text := '';
BEGIN
  FOR r IN SELECT * FROM audit_events ORDER BY id LOOP
    UPDATE audit_events SET prev_hash = p,
      hash = rap_audit_digest(p, r.id, r.at, r.actor_user_id, r.actor_node_id, r.org_id,
                              r.cluster_id, r.action, r.target, r.outcome, r.details)
      WHERE id = r.id RETURNING hash INTO p;
  END LOOP;
END $$;

ALTER TABLE audit_events ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL;
CREATE INDEX audit_events_cluster_idx ON audit_events(cluster_id, id);
)SQL";

const std::vector<Migration> kMigrations = {
    {1, "initial: organizations, users, memberships, api_tokens, audit_events, setup_state", kV1},
    {2, "audit hash chain, actor node, cluster and outcome", kV2},
};

constexpr const char* kCreateLedger =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

}  // namespace

const std::vector<Migration>& migrations() {
  return kMigrations;
}

Result<MigrationReport> migrate(pqxx::connection& conn) {
  MigrationReport report;
  try {
    for (const Migration& m : kMigrations) {
      pqxx::work w(conn);
      w.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
      w.exec(kCreateLedger);
      auto r = w.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", m.version);
      if (!r.empty()) {
        w.commit();
        continue;
      }
      w.exec(m.sql);
      w.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                    std::string(m.name));
      w.commit();
      ++report.applied;
    }
    pqxx::work w(conn);
    auto r = w.exec("SELECT COALESCE(max(version), 0) FROM schema_migrations");
    report.current_version = r[0][0].as<int>();
    w.commit();
  } catch (...) {
    Error e = error_from_current_exception();
    return fail("migration_failed", e.message);
  }
  return report;
}

Result<MigrationReport> migrate(const std::string& conninfo) {
  try {
    pqxx::connection c(conninfo);
    return migrate(c);
  } catch (...) {
    Error e = error_from_current_exception();
    return fail("db_unavailable", e.message);
  }
}

}  // namespace rap::control
