// Entry-node listeners (docs/PROTOCOL.md §14.8): the user socket protocol, the uid check and the
// listener's life, against real mesh nodes on loopback.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "lab.h"
#include "rap/common/framing.h"

namespace mesh_lab {
namespace {

// A blocking client of the user socket, as rapctl is.
class UserClient {
 public:
  explicit UserClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~UserClient() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool ok() const { return ok_; }
  Json call(const Json& req) {
    std::string out;
    rap::append_frame(req.dump(), out);
    if (::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
      return Json{{"send_failed", true}};
    for (;;) {
      auto f = frames_.next();
      if (!f) return Json{{"frame_error", f.error().code}};
      if (*f) return Json::parse((*f)->begin(), (*f)->end(), nullptr, false);
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return Json{{"closed", true}};
      frames_.feed(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
  rap::FrameReader frames_{64 * 1024};
};

int connect_port(std::uint16_t port) {
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(c);
    return -1;
  }
  return c;
}

// Sends `data`, half-closes and reads until EOF (blocking; the echo target answers).
std::string echo_over(int fd, const std::string& data) {
  std::string got;
  std::thread reader([&] {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
  });
  for (std::size_t off = 0; off < data.size();) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  reader.join();
  return got;
}

std::string temp_socket() {
  char dir[] = "/tmp/rap-users-XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  return std::string(dir) + "/entry.sock";
}

TEST(EntryListener, CarriesTheOwnersConnectionsThroughTheRelayAndRefusesOtherUids) {
  Lab lab;
  const auto target = lab.three_hops();
  const std::string path = temp_socket();
  lab.start_users("entry", path);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_write,
            std::filesystem::perms::others_write);  // any local user may ask
  const auto t = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                            {lab.lease("route-1", {"entry", "relay", "exit"})});

  UserClient uc(path);
  ASSERT_TRUE(uc.ok());
  Json hi = uc.call({{"v", 1}, {"op", "hello"}});
  EXPECT_EQ(hi.value("node", ""), "entry");
  // Refusals: not loopback, a broken ticket, a ticket op before a listener.
  Json r = uc.call({{"v", 1}, {"op", "listen"}, {"ticket", t}, {"listen", "0.0.0.0:0"}});
  EXPECT_EQ(r["error"]["code"], "listen_not_loopback") << r.dump();
  r = uc.call({{"v", 1}, {"op", "listen"}, {"ticket", "bm90IGEgdGlja2V0"}});
  EXPECT_EQ(r["error"]["code"], "bad_ticket") << r.dump();
  r = uc.call({{"v", 1}, {"op", "ticket"}, {"ticket", t}});
  EXPECT_EQ(r["error"]["code"], "not_listening") << r.dump();
  r = uc.call({{"v", 1}, {"op", "frobnicate"}});
  EXPECT_EQ(r["error"]["code"], "bad_request") << r.dump();

  r = uc.call(
      {{"v", 1}, {"op", "listen"}, {"ticket", t}, {"listen", "127.0.0.1:0"}, {"class", "bulk"}});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  const std::string at = r.value("listen", "");
  const auto port = static_cast<std::uint16_t>(std::stoul(at.substr(at.rfind(':') + 1)));
  ASSERT_NE(port, 0);
  r = uc.call({{"v", 1}, {"op", "listen"}, {"ticket", t}});
  EXPECT_EQ(r["error"]["code"], "already_listening");
  EXPECT_EQ(lab.user_listeners(), 1u);

  // The owner's connection: payload through entry -> relay -> exit -> echo and back.
  const std::string data = payload(2 * 1024 * 1024);
  int c = connect_port(port);
  ASSERT_GE(c, 0);
  EXPECT_TRUE(echo_over(c, data) == data);
  ::close(c);
  EXPECT_EQ(lab.tapped().find("PLAINTEXT-MARKER"), std::string::npos);

  // A renewed ticket replaces the old one for new connections.
  const auto t2 = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                             {lab.lease("route-2", {"entry", "relay", "exit"})});
  r = uc.call({{"v", 1}, {"op", "ticket"}, {"ticket", t2}});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  c = connect_port(port);
  ASSERT_GE(c, 0);
  EXPECT_EQ(echo_over(c, "after renewal"), "after renewal");
  ::close(c);

  if (::geteuid() == 0) {  // another uid on this host is refused, and audited
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
      const int fd = connect_port(port);
      if (fd < 0) ::_exit(3);
      const char hello[] = "nobody tries";
      (void)::send(fd, hello, sizeof(hello), MSG_NOSIGNAL);
      char b[64];
      const ssize_t n = ::recv(fd, b, sizeof(b), 0);
      ::_exit(n <= 0 ? 0 : 4);  // closed without a byte of the target's
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }

  std::vector<AccessRecord> recs;
  const std::size_t want = ::geteuid() == 0 ? 3 : 2;
  for (int i = 0; i < 100 && recs.size() < want; ++i) {
    std::this_thread::sleep_for(20ms);
    recs = lab.records();
  }
  // Exit records (ok) for both connections; the refusal from the entry names the grant tried.
  std::size_t ok = 0;
  std::size_t refused = 0;
  for (const auto& rec : recs) {
    if (rec.outcome == "ok") ok++;
    if (rec.outcome == "refused") {
      refused++;
      EXPECT_EQ(rec.reason, "not_listener_owner");
      EXPECT_EQ(rec.grant, "grant-1");
      EXPECT_EQ(rec.user, "user-1");
    }
  }
  EXPECT_EQ(ok, 2u);
  EXPECT_EQ(refused, want - 2);

  // Closing the user socket stops the listener.
  uc.close();
  int gone = -1;
  for (int i = 0; i < 100; ++i) {
    gone = connect_port(port);
    if (gone < 0) break;
    ::close(gone);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(gone, 0) << "the listener outlived its user socket connection";
  EXPECT_EQ(lab.user_listeners(), 0u);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// With the interactive lane (PROTOCOL.md §15), a listener's interactive connections are accepted
// and checked on the main thread, then piped on the lane's (the plain socket moves threads).
TEST(EntryListener, InteractiveConnectionsContinueOnTheLane) {
  Lab lab;
  const auto target = lab.three_hops(true);
  const std::string path = temp_socket();
  lab.start_users("entry", path);
  const auto t = lab.ticket("entry", lab.grant("entry", {"exit"}, target),
                            {lab.lease("route-1", {"entry", "relay", "exit"})});
  UserClient uc(path);
  ASSERT_TRUE(uc.ok());
  Json r = uc.call({{"v", 1},
                    {"op", "listen"},
                    {"ticket", t},
                    {"listen", "127.0.0.1:0"},
                    {"class", "interactive"}});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  const std::string at = r.value("listen", "");
  const auto port = static_cast<std::uint16_t>(std::stoul(at.substr(at.rfind(':') + 1)));
  const std::string data = payload(1024 * 1024);
  for (int i = 0; i < 2; ++i) {
    const int c = connect_port(port);
    ASSERT_GE(c, 0);
    EXPECT_TRUE(echo_over(c, data) == data);
    ::close(c);
  }
  EXPECT_EQ(lab.lane_view("entry", false)["entry_handoffs"], 2);
  EXPECT_EQ(lab.lane_view("entry", true)["entry_accepted"], 2);
  EXPECT_EQ(lab.lane_view("exit", true)["exit_accepted"], 2);
  std::vector<AccessRecord> recs;
  for (int i = 0; i < 100 && recs.size() < 2; ++i) {
    std::this_thread::sleep_for(20ms);
    recs = lab.records();
  }
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& rec : recs) {
    EXPECT_EQ(rec.outcome, "ok");
    EXPECT_EQ(rec.bytes_up, data.size());
  }
  uc.close();
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(EntryListener, ATicketOfAnotherEntryIsRefused) {
  Lab lab;
  const auto target = lab.three_hops();
  const std::string path = temp_socket();
  lab.start_users("relay", path);  // the relay has an entry service too, but is not the entry
  const auto t = lab.ticket("relay", lab.grant("entry", {"exit"}, target),
                            {lab.lease("route-1", {"entry", "relay", "exit"})});
  UserClient uc(path);
  ASSERT_TRUE(uc.ok());
  Json r = uc.call({{"v", 1}, {"op", "listen"}, {"ticket", t}});
  // The grant's signed scope does not name the relay: refused before its entry is even read.
  EXPECT_EQ(r["error"]["code"], "grant_wrong_scope") << r.dump();
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

}  // namespace
}  // namespace mesh_lab
