// rap-test-workload: a workload for agent tests. Listens on 127.0.0.1:PORT and answers every
// connection with "hello from NAME\n"; with --exit-after-ms it exits with --exit-code after that
// long (to exercise crash handling).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  int port = 0;
  int exit_after_ms = -1;
  int exit_code = 3;
  std::string name = "workload";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--port") port = std::atoi(argv[i + 1]);
    if (a == "--name") name = argv[i + 1];
    if (a == "--exit-after-ms") exit_after_ms = std::atoi(argv[i + 1]);
    if (a == "--exit-code") exit_code = std::atoi(argv[i + 1]);
  }
  std::printf("rap-test-workload %s starting pid=%d port=%d\n", name.c_str(), getpid(), port);
  std::fflush(stdout);
  if (exit_after_ms >= 0) {
    std::thread([=] {
      std::this_thread::sleep_for(std::chrono::milliseconds(exit_after_ms));
      std::printf("exiting with %d\n", exit_code);
      std::fflush(stdout);
      std::_Exit(exit_code);
    }).detach();
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) {
    std::printf("bind 127.0.0.1:%d failed: %s\n", port, std::strerror(errno));
    return 1;
  }
  const std::string reply = "hello from " + name + "\n";
  for (;;) {
    const int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) continue;
    (void)!::write(c, reply.data(), reply.size());
    ::close(c);
  }
}
