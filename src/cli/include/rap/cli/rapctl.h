// rapctl: the command-line client of the rap-control API (docs/API.md, docs/OPERATIONS.md).
//
//   rapctl login --server https://HOST:PORT --email E [--password-stdin] [--totp CODE]
//   rapctl logout | whoami
//   rapctl setup --server URL --setup-token T --email E [--password-stdin]
//   rapctl users create --email E [--password-stdin]
//   rapctl orgs list | create --slug S --name N | show SLUG
//   rapctl orgs members add SLUG --email E --role org_admin|org_member | members list SLUG
//   rapctl audit list [--org S] [--limit N] | verify
//   ... plus the commands of api_commands() for the routes the server offers.
// Global options: --server, --ca-file, --insecure, --json, --timeout.
#pragma once

#include <vector>

#include "rap/cli/command.h"

namespace rap::cli {

// The generic API commands (everything except login/logout/whoami/setup).
std::vector<CommandSpec> api_commands();

// The whole program; never throws. `argv[0]` is the program name.
int rapctl_main(int argc, const char* const* argv, Io& io);

}  // namespace rap::cli
