// SigpipeGuard: blocks SIGPIPE for the current thread while hiredis writes to a socket whose peer
// may have gone (hiredis uses write(2), not send(MSG_NOSIGNAL)), then discards a SIGPIPE raised
// meanwhile. The same technique libpq uses: a library must not change process-wide signal
// dispositions, and a Redis that dies must not kill rap-control.
#pragma once

#include <pthread.h>

#include <csignal>
#include <ctime>

namespace rap::control::detail {

class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

}  // namespace rap::control::detail
