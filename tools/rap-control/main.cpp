// rap-control: the control plane server (organizations, users, memberships, auth, audit).
//   rap-control [--database-url URL] [--redis-url URL] [--listen 127.0.0.1:8443] [--data-dir DIR]
//               [--tls-cert PEM --tls-key PEM] [--db-pool N] [--heartbeat-write-interval S]
//               [--node-auth-cache-ms MS]
//               [--web-dir DIR]
// Without --database-url it runs its own PostgreSQL and Redis under <data-dir> (embedded.h).
// On start: applies pending migrations, issues a one-time setup token if no platform owner
// exists (printed once on stdout), then serves the HTTPS API (docs/API.md).
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "rap/common/env.h"
#include "rap/common/log.h"
#include "rap/common/random.h"
#include "rap/control/api.h"
#include "rap/control/db.h"
#include "rap/control/embedded.h"
#include "rap/control/live_state.h"
#include "rap/control/migrations.h"
#include "rap/control/server.h"

int main(int argc, char** argv) {
  CLI::App app{"rap-control: control plane server"};
  std::string listen = "127.0.0.1:8443";
  std::string database_url;
  std::string data_dir = "/var/lib/rap-control";
  std::string tls_cert;
  std::string tls_key;
  std::size_t pool_size = 4;
  int heartbeat_write_interval = 10;
  app.add_option("--listen", listen, "HTTPS listen address host:port (port 0: ephemeral)")
      ->default_val(listen);
  app.add_option("--database-url", database_url,
                 "PostgreSQL libpq conninfo or URL (default: an embedded PostgreSQL and Redis "
                 "under --data-dir)");
  std::string redis_url;
  app.add_option("--redis-url", redis_url,
                 "Redis for live state: redis://[:password@]host:port[/db] or unix:///path "
                 "(default: the embedded one; with --database-url: none, in-process only)");
  app.add_option("--data-dir", data_dir, "state directory (self-signed TLS certificate)")
      ->default_val(data_dir);
  std::string master_key_file;
  app.add_option("--master-key-file", master_key_file,
                 "master key sealing cluster CA keys (default <data-dir>/master.key, created "
                 "with mode 0600 if absent; back it up)");
  auto* cert_opt = app.add_option("--tls-cert", tls_cert, "TLS certificate chain (PEM)");
  auto* key_opt = app.add_option("--tls-key", tls_key, "TLS private key (PEM)");
  cert_opt->needs(key_opt);
  key_opt->needs(cert_opt);
  app.add_option("--db-pool", pool_size, "maximum database connections")
      ->default_val(pool_size)
      ->check(CLI::Range(1, 64));
  app.add_option("--heartbeat-write-interval", heartbeat_write_interval,
                 "seconds between PostgreSQL writes of an unchanged node heartbeat state (0: "
                 "every heartbeat)")
      ->default_val(heartbeat_write_interval)
      ->check(CLI::Range(0, 20));
  int node_auth_cache_ms = 2000;
  app.add_option("--node-auth-cache-ms", node_auth_cache_ms,
                 "milliseconds a node's mTLS authentication row is reused; changes through any "
                 "instance drop it at once via change notifications (0: no cache)")
      ->default_val(node_auth_cache_ms)
      ->check(CLI::Range(0, 60000));
  int offline_lease_grace = 3600;
  app.add_option("--offline-lease-grace", offline_lease_grace,
                 "seconds past an access ticket's expiry that nodes which cannot reach the "
                 "control plane keep honouring it from their cached policy (0: never)")
      ->default_val(offline_lease_grace)
      ->check(CLI::Range(0, 86400));
  std::string web_dir;
  app.add_option("--web-dir", web_dir,
                 "built web console to serve (index.html + assets/); default: "
                 "<prefix>/share/rap-control/web next to the binary, else the source tree's "
                 "web/dist; none found, or `none`: the API only");
  CLI11_PARSE(app, argc, argv);

  rap::log::init("rap-control");
  using namespace rap::control;

  // The web console: --web-dir, else an installed copy beside the binary, else the source tree's
  // build output (RAP_SOURCE_WEB_DIST, set by CMake for development builds).
  {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (web_dir == "none") {
      web_dir.clear();  // explicitly without console
    } else if (!web_dir.empty()) {
      if (!fs::is_regular_file(fs::path(web_dir) / "index.html", ec)) {
        spdlog::critical("--web-dir {}: no index.html there", web_dir);
        return 2;
      }
    } else {
      std::vector<fs::path> candidates;
      const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
      if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share/rap-control/web");
#ifdef RAP_SOURCE_WEB_DIST
      candidates.emplace_back(RAP_SOURCE_WEB_DIST);
#endif
      for (const auto& c : candidates) {
        if (fs::is_regular_file(c / "index.html", ec)) {
          web_dir = c.string();
          break;
        }
      }
    }
    if (web_dir.empty())
      spdlog::warn("web console: not found (build it with `make web` or pass --web-dir); API only");
    else
      spdlog::info("web console: serving {}", web_dir);
  }

  std::optional<RedisEndpoint> redis_ep;
  if (!redis_url.empty()) {
    auto ep = parse_redis_url(redis_url);
    if (!ep) {
      spdlog::critical("--redis-url: {}", ep.error().message);
      return 2;
    }
    redis_ep = std::move(*ep);
  }

  // Embedded mode: private PostgreSQL + Redis as supervised child processes.
  std::optional<EmbeddedServices> embedded;
  if (database_url.empty()) {
    EmbeddedOptions eo;
    eo.data_dir = data_dir;
    eo.start_redis = redis_url.empty();
    embedded.emplace(eo, rap::default_env());
    if (auto r = embedded->start(); !r) {
      spdlog::critical("embedded services failed code={} msg={}", r.error().code,
                       r.error().message);
      return 1;
    }
    database_url = embedded->database_url();
    if (!redis_ep) {
      auto ep = parse_redis_url(embedded->redis_url());
      RAP_ASSERT(ep.has_value());  // unix://<absolute data dir>/redis/redis.sock
      redis_ep = std::move(*ep);
    }
    std::cout << "RAP EMBEDDED DATA: " << embedded->data_dir()
              << " (PostgreSQL: " << embedded->postgres_data_dir()
              << (eo.start_redis ? ", Redis: " + embedded->data_dir() + "/redis" : std::string())
              << "; back up with pg_dump, see docs/OPERATIONS.md)" << std::endl;
  }

  // Live state: Redis when configured, otherwise in-process (per-instance rate limits).
  rap::SystemClock live_clock;
  std::unique_ptr<LiveState> live;
  if (redis_ep) {
    live = make_redis_live_state(*redis_ep);
    if (auto p = live->ping(); p) {
      spdlog::info("live state: Redis {}", redis_ep->display());
    } else {
      spdlog::warn("live state: Redis {} not reachable yet, degraded mode: {}", redis_ep->display(),
                   p.error().message);
    }
  } else {
    live = make_memory_live_state(live_clock);
    spdlog::info("live state: in-process (no --redis-url): rate limits are per instance");
  }

  auto mig = migrate(database_url);
  if (!mig) {
    spdlog::critical("migrations failed code={} msg={}", mig.error().code, mig.error().message);
    return 1;
  }
  spdlog::info("schema ready version={} applied_now={}", mig->current_version, mig->applied);

  auto tls =
      tls_cert.empty() ? ensure_self_signed_cert(data_dir) : load_tls_files(tls_cert, tls_key);
  if (!tls) {
    spdlog::critical("TLS setup failed code={} msg={}", tls.error().code, tls.error().message);
    return 1;
  }

  rap::SystemRandom rng;
  boost::asio::io_context io(1);
  Db db(database_url, PoolOptions{pool_size, std::chrono::milliseconds(5000)});
  if (master_key_file.empty()) master_key_file = data_dir + "/master.key";
  auto master_key = load_or_create_master_key_file(master_key_file, rng);
  if (!master_key) {
    spdlog::critical("master key unavailable path={} code={} msg={}", master_key_file,
                     master_key.error().code, master_key.error().message);
    return 1;
  }
  ApiOptions api_opts;
  api_opts.master_key = std::move(*master_key);
  api_opts.live = live.get();
  api_opts.heartbeat_write_interval = std::chrono::seconds(heartbeat_write_interval);
  api_opts.node_auth_cache_ttl = std::chrono::milliseconds(node_auth_cache_ms);
  api_opts.web_dir = web_dir;
  api_opts.offline_lease_grace = std::chrono::seconds(offline_lease_grace);
  // The master key file narrows <data-dir> to 0700; the embedded postgres must still reach it.
  if (embedded) embedded->keep_reachable();
  Api api(db, rng, api_opts);

  auto setup = bootstrap_setup_token(db, rng);
  if (!setup) {
    spdlog::critical("setup bootstrap failed code={} msg={}", setup.error().code,
                     setup.error().message);
    return 1;
  }
  if (*setup) {
    // The only place a secret is ever printed: once, at first start, for the operator.
    std::cout << "RAP SETUP TOKEN: " << **setup << std::endl;
    spdlog::warn(
        "platform setup pending: use the setup token printed above with POST /api/v1/setup "
        "(a restart issues a new token and invalidates the previous one)");
  }

  auto server = Server::create(io, api, db, ServerOptions{listen, std::move(*tls), 64 * 1024});
  if (!server) {
    spdlog::critical("server start failed code={} msg={}", server.error().code,
                     server.error().message);
    return 1;
  }
  // Installed before "listening" is logged: a supervisor (or test) that sends SIGTERM as soon as
  // it sees that line must get a clean shutdown, not the default action (exit 143).
  int exit_code = 0;
  std::optional<boost::asio::signal_set> signals;
  signals.emplace(io, SIGINT, SIGTERM);
  signals->async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {} received, shutting down", sig);
    (*server)->stop();
    io.stop();
  });
  (*server)->start();
  spdlog::info("rap-control listening on {} port={}", (*server)->local_address(),
               (*server)->port());

  // Supervision of the embedded children: if one dies, stop and exit non-zero.
  boost::asio::steady_timer supervise(io);
  std::function<void()> arm = [&] {
    supervise.expires_after(std::chrono::milliseconds(500));
    supervise.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto r = embedded->check(); !r) {
        spdlog::critical("{}; shutting down", r.error().message);
        exit_code = 1;
        (*server)->stop();
        io.stop();
        return;
      }
      arm();
    });
  };
  if (embedded) arm();
  io.run();
  // Shutting down: a repeated SIGTERM (supervisors and process-group kills send more than one)
  // must not turn a clean exit into death by signal. Destroying the signal_set restores the
  // default action, so ignore the signals right after it.
  signals.reset();
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  db.join();  // finish in-flight DB work while Api is still alive
  if (embedded) embedded->stop();
  return exit_code;
}
