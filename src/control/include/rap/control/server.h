// HTTPS front end of the control plane: TLS 1.3 only (asio::ssl), HTTP/1.1 keep-alive with
// Boost.Beast coroutines on one I/O executor. Request handling that touches PostgreSQL is
// handed to the Db thread pool (Db::run) so the I/O thread never blocks; /metrics is rendered
// inline. Limits: 64 KiB body (413 otherwise), 16 KiB headers, 30 s per read/write, 10 s TLS
// handshake.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "rap/common/result.h"
#include "rap/control/api.h"
#include "rap/control/db.h"

namespace rap::control {

struct TlsMaterial {
  std::string cert_pem;
  std::string key_pem;  // secret
};

// Loads data_dir/tls/server.{crt,key}, or generates a self-signed ECDSA P-256 certificate
// (CN=rap-control, SAN localhost/127.0.0.1/::1, 1 year) there on first start (key mode 0600).
Result<TlsMaterial> ensure_self_signed_cert(const std::string& data_dir);
// Reads a certificate chain and key given on the command line.
Result<TlsMaterial> load_tls_files(const std::string& cert_path, const std::string& key_path);

struct ServerOptions {
  std::string listen = "127.0.0.1:8443";  // host:port, [v6]:port; port 0 = ephemeral
  TlsMaterial tls;
  std::size_t body_limit = 64 * 1024;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> create(boost::asio::io_context& io, Api& api, Db& db,
                                                ServerOptions opts);
  ~Server();
  // Actual bound port (useful with port 0).
  std::uint16_t port() const;
  std::string local_address() const;
  // Starts accepting on the io_context.
  void start();
  // Stops accepting (open connections finish their current request).
  void stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rap::control
