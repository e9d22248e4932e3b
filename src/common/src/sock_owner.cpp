#include "rap/common/sock_owner.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace rap {

namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Fills the id's address and port fields from a sockaddr (network byte order throughout).
bool put(const sockaddr* sa, __be16& port, __be32* addr, std::uint8_t& family) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    port = in->sin_port;
    std::memcpy(addr, &in->sin_addr, 4);
    family = AF_INET;
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    port = in6->sin6_port;
    std::memcpy(addr, &in6->sin6_addr, 16);
    family = AF_INET6;
    return true;
  }
  return false;
}

}  // namespace

Result<std::uint32_t> tcp_peer_uid(const sockaddr* local, const sockaddr* peer) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0U;
  std::uint8_t fam_peer = 0;
  std::uint8_t fam_local = 0;
  // The socket we look for is the client's: its source is `peer`, its destination `local`.
  if (!put(peer, msg.req.id.idiag_sport, msg.req.id.idiag_src, fam_peer) ||
      !put(local, msg.req.id.idiag_dport, msg.req.id.idiag_dst, fam_local) || fam_peer != fam_local)
    return fail("sock_diag_failed", "not a TCP/IP address pair");
  msg.req.sdiag_family = fam_peer;
  msg.req.id.idiag_if = 0;
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  Fd s{::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (s.fd < 0) return fail("sock_diag_failed", std::string("netlink socket: ") + strerror(errno));
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(s.fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) !=
      static_cast<ssize_t>(sizeof(msg)))
    return fail("sock_diag_failed", std::string("netlink send: ") + strerror(errno));
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(s.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("sock_diag_failed", std::string("netlink recv: ") + strerror(errno));
    // NLMSG_OK/NLMSG_NEXT/NLMSG_DATA spelled out: the macros use C casts.
    std::size_t off = 0;
    const auto total = static_cast<std::size_t>(n);
    for (; off + sizeof(nlmsghdr) <= total;) {
      const auto* h = reinterpret_cast<const nlmsghdr*>(buf + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > total - off) break;
      const char* data = buf + off + NLMSG_HDRLEN;
      off += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* err = reinterpret_cast<const nlmsgerr*>(data);
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) && err->error == -ENOENT)
          return fail("socket_not_found", "the connecting socket is not one of this host's");
        return fail(
            "sock_diag_failed",
            std::string("netlink: ") +
                strerror(h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) ? -err->error : EPROTO));
      }
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
          h->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        const auto* d = reinterpret_cast<const inet_diag_msg*>(data);
        return static_cast<std::uint32_t>(d->idiag_uid);
      }
      if (h->nlmsg_type == NLMSG_DONE) break;
    }
    return fail("socket_not_found", "the connecting socket is not one of this host's");
  }
}

Result<std::uint32_t> tcp_peer_uid(int accepted_fd) {
  sockaddr_storage local{};
  sockaddr_storage peer{};
  socklen_t ll = sizeof(local);
  socklen_t pl = sizeof(peer);
  if (::getsockname(accepted_fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
      ::getpeername(accepted_fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0)
    return fail("sock_diag_failed", std::string("socket addresses: ") + strerror(errno));
  return tcp_peer_uid(reinterpret_cast<sockaddr*>(&local), reinterpret_cast<sockaddr*>(&peer));
}

}  // namespace rap
