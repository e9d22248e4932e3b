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

// Clusters, their certificate authorities, join tokens and requests, nodes and their
// certificates, role assignments, desired workloads and heartbeats. Secrets at rest: join tokens
// are stored as SHA-256 only; a cluster CA's private key is sealed with the master key
// (cluster_ca.h). audit_events.cluster_id gets its foreign key (NO ACTION: audit rows are hashed,
// so deleting a cluster must not rewrite them).
constexpr const char* kV3 = R"SQL(
CREATE TABLE clusters (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{2,63}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cluster_cas (
  cluster_id      uuid PRIMARY KEY REFERENCES clusters(id) ON DELETE CASCADE,
  cert_pem        text NOT NULL,
  key_ciphertext  text NOT NULL,   -- hex(nonce || crypto_secretbox(private key PEM))
  key_id          text NOT NULL,   -- which master key sealed it
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE join_tokens (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  cluster_id    uuid NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
  token_sha256  text NOT NULL UNIQUE,
  description   text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
  scope         jsonb NOT NULL DEFAULT '{}'::jsonb,
  max_uses      integer NOT NULL CHECK (max_uses BETWEEN 1 AND 10000),
  uses          integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
  created_by    uuid REFERENCES users(id) ON DELETE SET NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz
);
CREATE INDEX join_tokens_cluster_idx ON join_tokens(cluster_id, created_at);

CREATE TABLE nodes (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  cluster_id             uuid NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
  name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 253),
  public_key             text NOT NULL CHECK (public_key ~ '^[0-9a-f]{64}$'),
  status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  ownership              text NOT NULL DEFAULT 'platform' CHECK (ownership IN ('platform', 'org')),
  org_id                 uuid REFERENCES organizations(id) ON DELETE RESTRICT,
  capabilities           jsonb NOT NULL DEFAULT '[]'::jsonb,  -- reported, never permissions
  facts                  jsonb NOT NULL DEFAULT '{}'::jsonb,
  desired_state_version  bigint NOT NULL DEFAULT 1,
  agent_version          text,
  last_heartbeat_at      timestamptz,
  last_state             jsonb,  -- latest heartbeat body
  created_at             timestamptz NOT NULL DEFAULT now(),
  revoked_at             timestamptz,
  UNIQUE (cluster_id, public_key),
  CHECK ((ownership = 'org') = (org_id IS NOT NULL))
);

CREATE TABLE join_requests (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  cluster_id    uuid NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
  token_id      uuid REFERENCES join_tokens(id) ON DELETE SET NULL,
  public_key    text NOT NULL CHECK (public_key ~ '^[0-9a-f]{64}$'),
  facts         jsonb NOT NULL DEFAULT '{}'::jsonb,
  capabilities  jsonb NOT NULL DEFAULT '[]'::jsonb,
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
  node_id       uuid REFERENCES nodes(id) ON DELETE SET NULL,
  decided_by    uuid REFERENCES users(id) ON DELETE SET NULL,
  reason        text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  decided_at    timestamptz,
  UNIQUE (cluster_id, public_key)
);
CREATE INDEX join_requests_status_idx ON join_requests(cluster_id, status, created_at);

CREATE TABLE node_certificates (
  serial         bigint PRIMARY KEY CHECK (serial > 0),
  node_id        uuid NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  not_before     timestamptz NOT NULL,
  not_after      timestamptz NOT NULL,
  cert_pem       text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  revoked_at     timestamptz,
  revoke_reason  text
);
CREATE INDEX node_certificates_node_idx ON node_certificates(node_id, not_after);

CREATE TABLE node_role_assignments (
  id           bigserial PRIMARY KEY,
  node_id      uuid NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  role         text NOT NULL CHECK (role ~ '^[a-z0-9-]{2,63}$'),
  org_id       uuid REFERENCES organizations(id) ON DELETE CASCADE,
  assigned_by  uuid REFERENCES users(id) ON DELETE SET NULL,
  assigned_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX node_role_assignments_uniq ON node_role_assignments
  (node_id, role, COALESCE(org_id, '00000000-0000-0000-0000-000000000000'::uuid));

CREATE TABLE node_workloads (
  node_id     uuid NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  name        text NOT NULL CHECK (name ~ '^[a-z0-9-]{1,63}$'),
  kind        text NOT NULL CHECK (kind IN ('container', 'native')),
  spec        jsonb NOT NULL DEFAULT '{}'::jsonb,
  version     bigint NOT NULL DEFAULT 1,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, name)
);

-- Bounded history (the API keeps the newest 100 per node); the latest state is on nodes.
CREATE TABLE node_heartbeats (
  id       bigserial PRIMARY KEY,
  node_id  uuid NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  at       timestamptz NOT NULL DEFAULT now(),
  state    jsonb NOT NULL
);
CREATE INDEX node_heartbeats_node_idx ON node_heartbeats(node_id, id);

ALTER TABLE audit_events ADD CONSTRAINT audit_events_cluster_fk
  FOREIGN KEY (cluster_id) REFERENCES clusters(id);
)SQL";

// Identity hardening and organization-scoped tenancy objects.
//  * user_totp: one RFC 6238 secret per user, sealed with the master key (hex(nonce ||
//    crypto_secretbox(base32 secret)), cluster_ca.h) and returned only by the enrollment call
//    that created it; its confirmation state and the last accepted time step (replay protection).
//  * api_tokens: automation tokens (kind 'api') get a name, a scope ('read' = GET only,
//    'admin') and optionally an organization they are restricted to; every token records
//    last_used_at; session tokens carry elevated_until (step-up).
//  * groups, group_members, resources, policies (+ subjects, resources): every row carries its
//    org_id and every cross-reference is a composite (org_id, id) foreign key, so an object of one
//    organization can never point at another organization's object, even by a bug in the API.
constexpr const char* kV4 = R"SQL(
CREATE TABLE user_totp (
  user_id         uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  secret_sealed   text NOT NULL
                  CHECK (secret_sealed ~ '^[0-9a-f]+$' AND length(secret_sealed) <= 1024),
  key_id          text NOT NULL,  -- master_key_id() of the sealing key
  confirmed       boolean NOT NULL DEFAULT false,
  last_used_step  bigint CHECK (last_used_step >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  confirmed_at    timestamptz,
  CHECK (confirmed = (confirmed_at IS NOT NULL))
);

ALTER TABLE api_tokens
  ADD COLUMN name            text CHECK (length(name) BETWEEN 1 AND 100),
  ADD COLUMN scope           text CHECK (scope IN ('read', 'admin')),
  ADD COLUMN org_id          uuid REFERENCES organizations(id) ON DELETE CASCADE,
  ADD COLUMN last_used_at    timestamptz,
  ADD COLUMN elevated_until  timestamptz,
  ADD CONSTRAINT api_tokens_kind_fields CHECK (
    (kind = 'api' AND name IS NOT NULL AND scope IS NOT NULL AND elevated_until IS NULL) OR
    (kind = 'session' AND name IS NULL AND scope IS NULL AND org_id IS NULL));

CREATE TABLE groups (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name),
  UNIQUE (org_id, id)
);

-- A group member must be a member of the group's organization (composite FK to memberships).
CREATE TABLE group_members (
  org_id      uuid NOT NULL,
  group_id    uuid NOT NULL,
  user_id     uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, user_id),
  FOREIGN KEY (org_id, group_id) REFERENCES groups(org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (user_id, org_id) REFERENCES memberships(user_id, org_id) ON DELETE CASCADE
);
CREATE INDEX group_members_user_idx ON group_members(user_id, org_id);

CREATE TABLE resources (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id          uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  protocol        text NOT NULL CHECK (protocol IN ('rdp', 'ssh', 'vnc', 'tcp')),
  address         text NOT NULL CHECK (address ~ '^.{1,253}:[0-9]{1,5}$'),
  egress_pool     text CHECK (length(egress_pool) BETWEEN 1 AND 100),
  credential_ref  text CHECK (credential_ref ~ '^[A-Za-z0-9._:/@-]{1,200}$'),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name),
  UNIQUE (org_id, id)
);

CREATE TABLE policies (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  service     text NOT NULL CHECK (service IN ('rdp', 'ssh', 'vnc', 'tcp')),
  action      text NOT NULL DEFAULT 'allow' CHECK (action = 'allow'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name),
  UNIQUE (org_id, id)
);

-- Exactly one of user_id / group_id per row; both must belong to the policy's organization.
CREATE TABLE policy_subjects (
  id         bigserial PRIMARY KEY,
  org_id     uuid NOT NULL,
  policy_id  uuid NOT NULL,
  user_id    uuid,
  group_id   uuid,
  CHECK ((user_id IS NULL) <> (group_id IS NULL)),
  UNIQUE (policy_id, user_id),
  UNIQUE (policy_id, group_id),
  FOREIGN KEY (org_id, policy_id) REFERENCES policies(org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (user_id, org_id) REFERENCES memberships(user_id, org_id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, group_id) REFERENCES groups(org_id, id) ON DELETE CASCADE
);
CREATE INDEX policy_subjects_user_idx ON policy_subjects(user_id) WHERE user_id IS NOT NULL;
CREATE INDEX policy_subjects_group_idx ON policy_subjects(group_id) WHERE group_id IS NOT NULL;

CREATE TABLE policy_resources (
  org_id       uuid NOT NULL,
  policy_id    uuid NOT NULL,
  resource_id  uuid NOT NULL,
  PRIMARY KEY (policy_id, resource_id),
  FOREIGN KEY (org_id, policy_id) REFERENCES policies(org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, resource_id) REFERENCES resources(org_id, id) ON DELETE CASCADE
);
CREATE INDEX policy_resources_resource_idx ON policy_resources(resource_id);
)SQL";

// Topology and authority: node groups (a tree per cluster), egress pools (org-scoped logical
// exits; which nodes back them is platform-only knowledge), per-cluster authority epoch and
// partition state, and the platform_admin role.
constexpr const char* kV5 = R"SQL(
ALTER TABLE users ADD COLUMN is_platform_admin boolean NOT NULL DEFAULT false;

CREATE TABLE node_groups (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  cluster_id  uuid NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
  parent_id   uuid,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (cluster_id, id),
  CHECK (parent_id IS DISTINCT FROM id),
  FOREIGN KEY (cluster_id, parent_id) REFERENCES node_groups(cluster_id, id)
);
-- Names are unique among siblings (roots: siblings under the cluster).
CREATE UNIQUE INDEX node_groups_sibling_name_idx ON node_groups
  (cluster_id, COALESCE(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
CREATE INDEX node_groups_parent_idx ON node_groups(parent_id) WHERE parent_id IS NOT NULL;

-- A group may not become its own ancestor.
CREATE FUNCTION node_groups_no_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.parent_id IS NOT NULL AND EXISTS (
      WITH RECURSIVE up(id, parent_id) AS (
        SELECT g.id, g.parent_id FROM node_groups g WHERE g.id = NEW.parent_id
        UNION
        SELECT g.id, g.parent_id FROM node_groups g JOIN up ON g.id = up.parent_id)
      SELECT 1 FROM up WHERE up.id = NEW.id) THEN
    RAISE EXCEPTION 'node group cycle' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER node_groups_no_cycle BEFORE INSERT OR UPDATE OF parent_id ON node_groups
  FOR EACH ROW EXECUTE FUNCTION node_groups_no_cycle();

ALTER TABLE nodes ADD CONSTRAINT nodes_cluster_id_id_key UNIQUE (cluster_id, id);
ALTER TABLE nodes ADD COLUMN group_id uuid;
ALTER TABLE nodes ADD CONSTRAINT nodes_group_fk
  FOREIGN KEY (cluster_id, group_id) REFERENCES node_groups(cluster_id, id);
CREATE INDEX nodes_group_idx ON nodes(group_id) WHERE group_id IS NOT NULL;

CREATE TABLE egress_pools (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name)
);

CREATE TABLE egress_pool_nodes (
  pool_id     uuid NOT NULL REFERENCES egress_pools(id) ON DELETE CASCADE,
  cluster_id  uuid NOT NULL,
  node_id     uuid NOT NULL,
  PRIMARY KEY (pool_id, node_id),
  FOREIGN KEY (cluster_id, node_id) REFERENCES nodes(cluster_id, id) ON DELETE CASCADE
);
CREATE INDEX egress_pool_nodes_node_idx ON egress_pool_nodes(node_id);

CREATE TABLE cluster_authority (
  cluster_id       uuid PRIMARY KEY REFERENCES clusters(id) ON DELETE CASCADE,
  authority_epoch  bigint NOT NULL DEFAULT 1 CHECK (authority_epoch >= 1),
  partition_state  text NOT NULL DEFAULT 'normal'
                   CHECK (partition_state IN ('normal', 'degraded', 'partitioned', 'recovering')),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cluster_authority (cluster_id) SELECT id FROM clusters;

CREATE FUNCTION clusters_create_authority() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO cluster_authority (cluster_id) VALUES (NEW.id);
  RETURN NEW;
END $$;
CREATE TRIGGER clusters_create_authority AFTER INSERT ON clusters
  FOR EACH ROW EXECUTE FUNCTION clusters_create_authority();
)SQL";

// Signed scoped configuration (config_compiler.h): per-cluster config-signing keys (private
// halves sealed with the master key), the published artifacts (immutable; versions per
// (cluster, state key) only grow) and a per-cluster config generation that triggers bump on
// every change of a config input, so nodes learn from their heartbeat that there is news.
constexpr const char* kV6 = R"SQL(
ALTER TABLE cluster_authority ADD COLUMN config_generation bigint NOT NULL DEFAULT 1;

CREATE TABLE config_signing_keys (
  cluster_id     uuid NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
  key_id         text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
  public_key     text NOT NULL CHECK (public_key ~ '^[0-9a-f]{64}$'),
  key_sealed     text NOT NULL,
  master_key_id  text NOT NULL,
  status         text NOT NULL CHECK (status IN ('active', 'retired', 'revoked')),
  not_before     timestamptz NOT NULL,
  not_after      timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (cluster_id, key_id)
);
CREATE UNIQUE INDEX config_signing_keys_one_active ON config_signing_keys(cluster_id)
  WHERE status = 'active';

CREATE TABLE config_artifacts (
  cluster_id     uuid NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
  state_key      text NOT NULL,
  version        bigint NOT NULL CHECK (version >= 1),
  artifact_type  text NOT NULL,
  artifact_id    text NOT NULL,
  signer_key_id  text NOT NULL,
  epoch          bigint NOT NULL,
  content_hash   text NOT NULL,
  expires_at     timestamptz NOT NULL,
  payload        text NOT NULL,
  wire           text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (cluster_id, state_key, version)
);

CREATE FUNCTION rap_bump_config_generation(cid uuid) RETURNS void LANGUAGE sql AS $$
  UPDATE cluster_authority SET config_generation = config_generation + 1 WHERE cluster_id = cid;
$$;
CREATE FUNCTION rap_config_input_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
  cid uuid;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  IF TG_TABLE_NAME IN ('nodes', 'config_signing_keys') THEN
    cid := r.cluster_id;
  ELSE
    SELECT cluster_id INTO cid FROM nodes WHERE id = r.node_id;
  END IF;
  IF cid IS NOT NULL THEN PERFORM rap_bump_config_generation(cid); END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER nodes_config AFTER INSERT OR DELETE OR UPDATE OF status ON nodes
  FOR EACH ROW EXECUTE FUNCTION rap_config_input_changed();
CREATE TRIGGER node_certificates_config AFTER UPDATE OF revoked_at ON node_certificates
  FOR EACH ROW EXECUTE FUNCTION rap_config_input_changed();
CREATE TRIGGER node_role_assignments_config AFTER INSERT OR DELETE OR UPDATE
  ON node_role_assignments FOR EACH ROW EXECUTE FUNCTION rap_config_input_changed();
CREATE TRIGGER node_workloads_config AFTER INSERT OR DELETE OR UPDATE ON node_workloads
  FOR EACH ROW EXECUTE FUNCTION rap_config_input_changed();
CREATE TRIGGER config_signing_keys_config AFTER INSERT OR DELETE OR UPDATE
  ON config_signing_keys FOR EACH ROW EXECUTE FUNCTION rap_config_input_changed();
)SQL";

// A node's advertised endpoints (heartbeat "endpoints", e.g. a config-storage endpoint) feed the
// storage_directory artifact: a change bumps the config generation.
constexpr const char* kV7 = R"SQL(
CREATE TRIGGER nodes_endpoints_config AFTER UPDATE OF last_state ON nodes
  FOR EACH ROW WHEN (OLD.last_state->'endpoints' IS DISTINCT FROM NEW.last_state->'endpoints')
  EXECUTE FUNCTION rap_config_input_changed();
)SQL";

// Egress (docs/PROTOCOL.md §14.1) feeds every exit's service_assignment_bundle: a change of a
// resource (insert, update, delete) bumps the config generation of every cluster that has a node
// which could be an exit for the resource's organization (a node in one of its egress pools, or
// holding exit-node for it or for the platform), and a change of egress pool membership bumps the
// node's cluster. Both are over-approximations (cheap: a heartbeat answer tells nodes to fetch,
// and unchanged artifacts are not re-signed). Live fabric sessions (last_state->'fabric') are
// route-planning input only and bump nothing (migration 7 fires only on endpoint changes).
constexpr const char* kV8 = R"SQL(
CREATE FUNCTION rap_resource_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  oid uuid;
  cid uuid;
BEGIN
  IF TG_OP = 'DELETE' THEN oid := OLD.org_id; ELSE oid := NEW.org_id; END IF;
  FOR cid IN
    SELECT pn.cluster_id FROM egress_pool_nodes pn JOIN egress_pools p ON p.id = pn.pool_id
      WHERE p.org_id = oid
    UNION
    SELECT n.cluster_id FROM node_role_assignments a JOIN nodes n ON n.id = a.node_id
      WHERE a.role = 'exit-node' AND (a.org_id IS NULL OR a.org_id = oid)
  LOOP
    PERFORM rap_bump_config_generation(cid);
  END LOOP;
  RETURN NULL;
END $$;
CREATE TRIGGER resources_config AFTER INSERT OR DELETE OR UPDATE ON resources
  FOR EACH ROW EXECUTE FUNCTION rap_resource_config_changed();
CREATE TRIGGER egress_pool_nodes_config AFTER INSERT OR DELETE OR UPDATE ON egress_pool_nodes
  FOR EACH ROW EXECUTE FUNCTION rap_config_input_changed();
)SQL";

// Terminated access sessions (docs/API.md "Sessions"): a revoked grant is durable domain state
// (who terminated what, and the entry that must refuse it); the open sessions themselves are
// live state (LiveState). Rows are useless once the grant expired and are pruned after that.
constexpr const char* kV9 = R"SQL(
CREATE TABLE revoked_grants (
  grant_id       uuid PRIMARY KEY,
  org_id         uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  entry_node_id  uuid NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  user_id        uuid,
  resource_id    uuid,
  expires_at     timestamptz NOT NULL,
  revoked_at     timestamptz NOT NULL DEFAULT now(),
  revoked_by     uuid REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX revoked_grants_entry_idx ON revoked_grants(entry_node_id, expires_at);
CREATE INDEX revoked_grants_org_idx ON revoked_grants(org_id);
CREATE INDEX revoked_grants_expiry_idx ON revoked_grants(expires_at);
)SQL";

const std::vector<Migration> kMigrations = {
    {1, "initial: organizations, users, memberships, api_tokens, audit_events, setup_state", kV1},
    {2, "audit hash chain, actor node, cluster and outcome", kV2},
    {3, "clusters, CAs, join tokens/requests, nodes, certificates, roles, workloads, heartbeats",
     kV3},
    {4, "totp, api token scopes and step-up, groups, resources, policies", kV4},
    {5, "node groups, egress pools, cluster authority, platform admins", kV5},
    {6, "signed configuration: config-signing keys, artifacts, config generation", kV6},
    {7, "config generation follows advertised node endpoints", kV7},
    {8, "config generation follows resources and egress pool membership", kV8},
    {9, "revoked access grants (terminated sessions)", kV9},
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
