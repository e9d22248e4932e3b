#include "rap/common/sock_owner.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace rap {
namespace {

struct Listener {
  int fd = -1;
  sockaddr_in addr{};
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd, 8), 0);
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  }
  ~Listener() { ::close(fd); }
};

int connect_to(const sockaddr_in& a) {
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(c, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(c);
    return -1;
  }
  return c;
}

TEST(SockOwner, FindsTheUidOfTheConnectingSocket) {
  Listener l;
  const int c = connect_to(l.addr);
  ASSERT_GE(c, 0);
  const int a = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(a, 0);
  auto uid = tcp_peer_uid(a);
  ASSERT_TRUE(uid) << uid.error().message;
  EXPECT_EQ(*uid, ::getuid());
  ::close(a);
  ::close(c);
}

TEST(SockOwner, AnotherUsersSocketReportsThatUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  Listener l;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // connect as nobody and hold the connection until the parent is done
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const int c = connect_to(l.addr);
    if (c < 0) ::_exit(3);
    char b = 0;
    (void)::write(ready[1], &b, 1);
    (void)::read(c, &b, 1);
    ::_exit(0);
  }
  char b = 0;
  ASSERT_EQ(::read(ready[0], &b, 1), 1);
  const int a = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(a, 0);
  auto uid = tcp_peer_uid(a);
  ::close(a);  // lets the child finish
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(uid) << uid.error().message;
  EXPECT_EQ(*uid, 65534U);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SockOwner, AnAddressPairWithNoLocalSocketIsNotFound) {
  Listener l;
  sockaddr_in ghost{};
  ghost.sin_family = AF_INET;
  ghost.sin_port = htons(9);  // nothing here connects from port 9
  ghost.sin_addr.s_addr = htonl(0x7f000001);
  auto uid = tcp_peer_uid(reinterpret_cast<const sockaddr*>(&l.addr),
                          reinterpret_cast<const sockaddr*>(&ghost));
  ASSERT_FALSE(uid);
  EXPECT_EQ(uid.error().code, "socket_not_found");
}

TEST(SockOwner, MixedFamiliesAreRefused) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  auto uid =
      tcp_peer_uid(reinterpret_cast<const sockaddr*>(&v4), reinterpret_cast<const sockaddr*>(&v6));
  ASSERT_FALSE(uid);
  EXPECT_EQ(uid.error().code, "sock_diag_failed");
}

}  // namespace
}  // namespace rap
