// rapctl's configuration and credentials file.
//
// Location: $RAPCTL_CONFIG if set, otherwise $HOME/.config/rapctl/config.json. A JSON object:
//
//   {"server": "https://ctl.example.com:8443", "email": "ops@example.com",
//    "token": "<64 hex>", "expires_at": "2026-11-24T01:40:00Z",
//    "ca_file": "/etc/rap/ca.pem", "insecure": false}
//
// The file holds a bearer token, so it is always written atomically (temp file + fsync +
// rename, through rap::Env) with mode 0600; a missing parent directory is created with 0700.
#pragma once

#include <string>

#include "rap/common/env.h"
#include "rap/common/result.h"

namespace rap::cli {

struct Config {
  std::string server;      // https://HOST:PORT
  std::string email;       // who logged in (for whoami without a server round trip)
  std::string token;       // session or API token; secret
  std::string expires_at;  // of the token, as returned by the server ("" if unknown)
  std::string ca_file;     // absolute path of a PEM file to trust, "" = system trust store
  bool insecure = false;   // certificate verification disabled at login (warned every time)

  bool logged_in() const { return !server.empty() && !token.empty(); }
};

// $RAPCTL_CONFIG, else $HOME/.config/rapctl/config.json; error if neither variable is set.
Result<std::string> default_config_path();

// Reads the file at `path`. A missing file is an empty Config; a file that is not a JSON object
// with string members (and a boolean "insecure") is an error naming the path.
Result<Config> load_config(Env& env, const std::string& path);

// Writes `c` to `path` atomically with mode 0600 (parent directory created 0700 if missing).
Result<void> save_config(Env& env, const std::string& path, const Config& c);

}  // namespace rap::cli
