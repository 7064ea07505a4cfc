// What the unit tests that drive a helper program of their own
// (tests/unit/helpers/) share: the headers they all use, and the helper's
// path, which CMake gives the test as HS_HELPER_PROGRAM.
#pragma once

#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "process/process.h"
#include "process/remote_syscall.h"
#include "process/thread_group.h"
#include "support/assert_ok.h"
#include "support/child.h"
#include "support/eventually.h"
#include "support/files.h"

namespace hs::test {

// The helper program, built by CMake: one binary for every test process, so
// tests running at once never replace the file under each other's children.
inline const std::string& helper() {
  static const std::string path = HS_HELPER_PROGRAM;
  return path;
}

// Thread `tid` of g, which was blocked in read() with registers `before`
// when a remote operation borrowed it, has its registers back, normalised
// to "about to redo the read".
inline void expect_regs_redo_the_read(ThreadGroup& g, pid_t tid, const user_regs_struct& before) {
  TracedThread* l = g.find(tid);
  ASSERT_NE(l, nullptr);
  ASSERT_OK(g.refresh_regs(*l));
  EXPECT_EQ(l->regs.rip, before.rip - 2);
  EXPECT_EQ(l->regs.rax, static_cast<unsigned long long>(SYS_read));
  EXPECT_EQ(l->regs.rsp, before.rsp);
  EXPECT_EQ(l->regs.rdi, before.rdi);
  EXPECT_EQ(l->regs.rsi, before.rsi);
  EXPECT_EQ(l->regs.rdx, before.rdx);
}

}  // namespace hs::test

// What these tests name unqualified, in their namespace hs.
namespace hs {
using test::Child;
using test::eventually;
using test::helper;
using test::slurp;
using test::task_syscall;
}  // namespace hs
