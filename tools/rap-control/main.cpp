// rap-control: the control plane server (organizations, users, memberships, auth, audit).
//   rap-control --database-url URL [--listen 127.0.0.1:8443] [--data-dir DIR]
//               [--tls-cert PEM --tls-key PEM] [--db-pool N]
// On start: applies pending migrations, issues a one-time setup token if no platform owner
// exists (printed once on stdout), then serves the HTTPS API (docs/API.md).
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <iostream>

#include "rap/common/env.h"
#include "rap/common/log.h"
#include "rap/common/random.h"
#include "rap/control/api.h"
#include "rap/control/db.h"
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
  app.add_option("--listen", listen, "HTTPS listen address host:port (port 0: ephemeral)")
      ->default_val(listen);
  app.add_option("--database-url", database_url, "PostgreSQL libpq conninfo or URL")->required();
  app.add_option("--data-dir", data_dir, "state directory (self-signed TLS certificate)")
      ->default_val(data_dir);
  auto* cert_opt = app.add_option("--tls-cert", tls_cert, "TLS certificate chain (PEM)");
  auto* key_opt = app.add_option("--tls-key", tls_key, "TLS private key (PEM)");
  cert_opt->needs(key_opt);
  key_opt->needs(cert_opt);
  app.add_option("--db-pool", pool_size, "maximum database connections")
      ->default_val(pool_size)
      ->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);

  rap::log::init("rap-control");
  using namespace rap::control;

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
  Api api(db, rng);

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
  (*server)->start();
  spdlog::info("rap-control listening on {} port={}", (*server)->local_address(),
               (*server)->port());

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {} received, shutting down", sig);
    (*server)->stop();
    io.stop();
  });
  io.run();
  db.join();  // finish in-flight DB work while Api is still alive
  return 0;
}
