// rapctl: command-line client of the rap-control API. All logic lives in src/cli (rap_cli);
// see rap/cli/rapctl.h for the commands and docs/OPERATIONS.md for usage.
#include <csignal>
#include <iostream>

#include "rap/cli/rapctl.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe (rapctl ... | head) must not kill the process
  rap::cli::Io io{std::cin, std::cout, std::cerr};
  const int rc = rap::cli::rapctl_main(argc, argv, io);
  std::cout.flush();
  return rc;
}
