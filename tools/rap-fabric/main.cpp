// rap-fabric: operator/test tool for Fabric Data Session V1.
//   rap-fabric pki init   --dir D --cluster C          make a cluster CA (demo/test PKI)
//   rap-fabric pki issue  --dir D --node N --out O     issue a node key + certificate
//   rap-fabric serve      --creds O --listen A:P [--wss A:P] [--metrics A:P]
//   rap-fabric ping       --creds O --peer H:P [--carrier tls|wss] [--count N] [--bulk]
//   rap-fabric push       --creds O --peer H:P [--bytes N] [--class bulk] [--streams K]
// Services on `serve`: echo (bytes back), discard (count, report the total at EOF).
#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <nlohmann/json.hpp>

#include "fabric_tool.h"
#include "rap/common/env.h"
#include "rap/common/log.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that resets a socket must never kill the process
  CLI::App app{"rap-fabric: Fabric Data Session V1 tool"};
  app.require_subcommand(1);
  rap::fabric::tool::Options o;
  auto* pki =
      app.add_subcommand("pki", "demo/test PKI (real clusters get certificates from rap-control)");
  pki->require_subcommand(1);
  auto* init = pki->add_subcommand("init", "create a cluster CA");
  init->add_option("--dir", o.dir, "CA directory")->required();
  init->add_option("--cluster", o.cluster, "cluster id")->required();
  auto* issue = pki->add_subcommand("issue", "issue a node certificate");
  issue->add_option("--dir", o.dir, "CA directory")->required();
  issue->add_option("--node", o.node, "node id")->required();
  issue->add_option("--out", o.out, "output credentials directory")->required();
  issue->add_option("--days", o.days, "validity in days")->default_val(30);

  auto* serve = app.add_subcommand("serve", "accept fabric sessions (services: echo, discard)");
  serve->add_option("--creds", o.creds, "credentials directory (ca.pem, node.pem, node.key)")
      ->required();
  serve->add_option("--listen", o.listen, "TLS listen address")->default_val("0.0.0.0:7443");
  serve->add_option("--wss", o.wss, "WebSocket-over-TLS listen address (optional)");
  serve->add_option("--metrics", o.metrics, "metrics/status HTTP address (optional)");
  serve->add_option("--connect", o.peers, "also dial these peers (host:port), keep sessions up");

  auto* ping = app.add_subcommand("ping", "64-byte interactive round trips over a session");
  auto* push = app.add_subcommand("push", "bulk transfer to the peer's discard service");
  for (auto* c : {ping, push}) {
    c->add_option("--creds", o.creds, "credentials directory")->required();
    c->add_option("--peer", o.peer, "peer host:port")->required();
    c->add_option("--carrier", o.carrier, "tls or wss")->default_val("tls");
    c->add_flag("--json", o.json, "print a JSON result");
  }
  ping->add_option("--count", o.count, "round trips")->default_val(1000);
  ping->add_flag("--bulk", o.with_bulk,
                 "run a saturating bulk stream on the same session meanwhile");
  push->add_option("--bytes", o.bytes, "bytes per stream")->default_val(1ull << 30);
  push->add_option("--class", o.cls, "traffic class")->default_val("bulk");
  push->add_option("--streams", o.streams, "parallel streams")->default_val(1);

  CLI11_PARSE(app, argc, argv);
  rap::log::init("rap-fabric", false, serve->parsed() ? spdlog::level::info : spdlog::level::warn);
  if (init->parsed()) return rap::fabric::tool::pki_init(o);
  if (issue->parsed()) return rap::fabric::tool::pki_issue(o);
  if (serve->parsed()) return rap::fabric::tool::serve(o);
  if (ping->parsed()) return rap::fabric::tool::ping(o);
  if (push->parsed()) return rap::fabric::tool::push(o);
  return 2;
}
