// Who owns the other end of a loopback TCP connection: the kernel's socket table, asked through
// NETLINK_SOCK_DIAG (the query `ss -e` makes; no privilege needed). Used by listeners that serve
// one local user only (the entry-node listener, docs/PROTOCOL.md §14.8): a connection whose peer
// socket is not in this network namespace's table, or belongs to another uid, is refused.
#pragma once

#include <netinet/in.h>

#include <cstdint>

#include "rap/common/result.h"

namespace rap {

// The uid owning the socket whose local address is `peer` and whose remote address is `local`
// (i.e. the client side of a connection we accepted on `local` from `peer`). Errors:
// "socket_not_found" (not a socket of this host, e.g. a remote client), "sock_diag_failed".
Result<std::uint32_t> tcp_peer_uid(const sockaddr* local, const sockaddr* peer);

// The same for an accepted descriptor: reads its local and peer addresses first.
Result<std::uint32_t> tcp_peer_uid(int accepted_fd);

}  // namespace rap
