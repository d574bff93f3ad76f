// Runs a disabled test of this binary in a child process and kills it with SIGKILL after a
// while: the crash tests' way of dying at a random moment. The child finds its work folder in
// an environment variable.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace s3db::testing {

// Runs `--gtest_filter=<child_test>` (a DISABLED_ test) with `variable=dir` in its environment.
// `kill_after` zero: waits for it. Returns its exit code, 128 + signal, or -1 when it was killed.
inline int RunCrashChild(const std::string& child_test, const char* variable,
                         const std::string& dir, std::chrono::milliseconds kill_after) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv(variable, dir.c_str(), 1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    std::string filter = "--gtest_filter=" + child_test;
    execl("/proc/self/exe", "s3db_tests", "--gtest_also_run_disabled_tests", filter.c_str(),
          nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + kill_after;
  int status = 0;
  while (true) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (kill_after.count() > 0 && std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace s3db::testing
