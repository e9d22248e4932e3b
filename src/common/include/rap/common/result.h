// The project's single error policy (see docs/ARCHITECTURE.md, "Errors"):
//  * anything driven by the network, configuration or untrusted input returns Result<T>;
//  * broken internal invariants are asserts (RAP_ASSERT), never exceptions on the data plane.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <tl/expected.hpp>
#include <utility>

namespace rap {

// Error: a stable machine-readable code plus a human readable message.
struct Error {
  std::string code;     // e.g. "frame_too_large", "cert_revoked"
  std::string message;  // for logs and operators; never contains secrets
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::string code, std::string message) {
  return tl::unexpected<Error>(Error{std::move(code), std::move(message)});
}

}  // namespace rap

#define RAP_ASSERT(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
