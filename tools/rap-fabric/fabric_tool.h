// Commands of the rap-fabric tool (see main.cpp). Each returns a process exit code:
// 0 ok, 1 operation failed (message on stderr), 2 bad usage/input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rap::fabric::tool {

struct Options {
  std::string dir, cluster, node, out, creds, listen, wss, metrics, peer, carrier = "tls",
                                                                          cls = "bulk";
  std::vector<std::string> peers;
  int days = 30;
  int count = 1000;
  bool with_bulk = false;
  bool json = false;
  std::uint64_t bytes = 1ull << 30;
  int streams = 1;
};

int pki_init(const Options& o);
int pki_issue(const Options& o);
int serve(const Options& o);
int ping(const Options& o);
int push(const Options& o);

}  // namespace rap::fabric::tool
