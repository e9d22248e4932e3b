// Terminating an access session (issue 9): the control plane revokes the grant and the entry's
// mesh learns it through the desired state. Real MeshNodes, TLS sessions, leases, the TCP access
// entry and exit and a TCP echo target in one process: the entry reports the open session, a
// revocation cuts its open flow at once, and the grant is refused from then on.
#include "lab.h"

using namespace mesh_lab;

namespace {

// Reads until the connection ends; the error or "eof".
std::string read_until_closed(Lab& lab, IngressClient& c, std::chrono::seconds limit) {
  return lab.await([&]() -> asio::awaitable<std::string> {
    std::vector<char> buf(65536);
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      auto n = co_await c.read_some(asio::buffer(buf));
      if (!n) co_return n.error().code;
      if (*n == 0) co_return std::string("eof");
    }
    co_return std::string("still open");
  }());
}

}  // namespace

TEST(MeshRevoke, RevokedGrantCutsTheOpenFlowAndIsRefusedAfterwards) {
  Lab lab;
  const auto target = lab.three_hops();
  const auto grant = lab.grant("entry", {"exit"}, target);
  const auto t = lab.ticket("entry", grant, {lab.lease("route-1", {"entry", "relay", "exit"})});
  auto c = lab.connect("entry", t);
  ASSERT_TRUE(c) << c.error().code << ": " << c.error().message;

  // Some bytes both ways: the session is up and counted.
  const std::string hello = "ping-before-terminate";
  ASSERT_TRUE(lab.await((*c)->write(asio::buffer(hello))));
  std::string got;
  for (int i = 0; i < 100 && got.size() < hello.size(); ++i) {
    std::vector<char> buf(256);
    auto n = lab.await((*c)->read_some(asio::buffer(buf)));
    ASSERT_TRUE(n) << n.error().message;
    got.append(buf.data(), *n);
  }
  ASSERT_EQ(got, hello);

  // The entry reports the open session (grant, user, org, resource, bytes), only at the entry.
  auto active = lab.active("entry");
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].grant, "grant-1");
  EXPECT_EQ(active[0].user, "user-1");
  EXPECT_EQ(active[0].org, kOrg);
  EXPECT_EQ(active[0].resource, kResource);
  EXPECT_EQ(active[0].bytes_up, hello.size());
  EXPECT_EQ(active[0].bytes_down, hello.size());
  EXPECT_GT(active[0].started_at, 0);
  EXPECT_GT(active[0].expires_at, active[0].started_at);
  EXPECT_TRUE(lab.active("exit").empty());

  // A revocation of another grant changes nothing; an expired revocation is dropped.
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(lab.revoke("entry", {{"grant-other", now + 600s}, {"grant-1", now - 1s}}), 0u);
  EXPECT_EQ(lab.active("entry").size(), 1u);

  // Revoking the grant cuts the open flow at once.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(lab.revoke("entry", {{"grant-1", now + 600s}}), 1u);
  const std::string end = read_until_closed(lab, **c, 10s);
  EXPECT_NE(end, "still open");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  for (int i = 0; i < 100 && !lab.active("entry").empty(); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(lab.active("entry").empty());
  EXPECT_EQ(lab.status("entry")["counters"]["flows_revoked"], 1);
  EXPECT_EQ(lab.status("entry")["revoked_grants"], 1);
  // The exit learns that the end is final (a flow ABORT through the relay) and closes the target
  // connection now, not after the resume grace (20 s).
  for (int i = 0; i < 150 && lab.exit_active("exit") > 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(lab.exit_active("exit"), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(lab.status("exit")["counters"]["flow_aborts_received"], 1);
  EXPECT_EQ(lab.status("entry")["counters"]["flow_aborts_sent"], 1);

  // The same ticket is refused with grant_revoked from now on; another grant still works.
  auto again = lab.connect("entry", t);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, "grant_revoked");
  // The mesh refuses the grant itself too (a service that skips the check cannot open it).
  auto lease = verify_lease(lab.lease("route-1", {"entry", "relay", "exit"}),
                            lab.sync([&] { return lab.trust_of("entry"); }), now);
  ASSERT_TRUE(lease) << lease.error().message;
  auto opened = lab.open_flow("entry", {*lease});
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, "grant_revoked");

  // Lifting the revocation (it expired or the list shrank) admits the grant again.
  EXPECT_EQ(lab.revoke("entry", {}), 0u);
  auto back = lab.connect("entry", t);
  ASSERT_TRUE(back) << back.error().code << ": " << back.error().message;
}
