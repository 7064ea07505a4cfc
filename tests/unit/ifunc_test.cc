// engine/ifunc.h against this very test process: the implementation its
// resolver chose for strlen, read from its GOT slots, must be what the
// dynamic linker gives the process (dlsym); named from the debug file when
// there is one, else in the address form; a resolver is not an
// implementation.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

#include "engine/ifunc.h"
#include "process/objects.h"

namespace hs {
namespace {

struct Self {
  Process proc;
  std::vector<MappedObject> objs;
  const MappedObject* libc = nullptr;
};

Self self() {
  auto proc = Process::open(getpid());
  EXPECT_TRUE(proc.has_value());
  Self s{std::move(*proc), {}, nullptr};
  auto objs = mapped_objects(s.proc);
  EXPECT_TRUE(objs.has_value());
  s.objs = std::move(*objs);
  for (const MappedObject& o : s.objs)
    if (o.path.ends_with("/libc.so.6")) s.libc = &o;
  EXPECT_NE(s.libc, nullptr);
  return s;
}

// libc's own strlen as the dynamic linker resolves it: looked up in libc's
// handle, not RTLD_DEFAULT, which under AddressSanitizer finds its
// interceptor in the test executable first.
u64 strlen_impl() {
  void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  EXPECT_NE(libc, nullptr);
  if (!libc) return 0;
  const u64 at = reinterpret_cast<u64>(dlsym(libc, "strlen"));
  dlclose(libc);
  return at;
}

TEST(IfuncImplementation, IsWhatTheProcessResolved) {
  Self s = self();
  ASSERT_NE(s.libc, nullptr);
  auto syms = s.libc->symbols();
  ASSERT_TRUE(syms.has_value());
  auto ifunc = (*syms)->lookup("strlen");
  ASSERT_TRUE(ifunc.has_value());
  ASSERT_EQ(ifunc->type, STT_GNU_IFUNC);
  auto impl = ifunc_implementation(s.proc, s.objs, *s.libc, "strlen", *ifunc);
  ASSERT_TRUE(impl.has_value()) << impl.error().message();
  EXPECT_EQ(impl->addr.value(), strlen_impl());
  EXPECT_NE(impl->addr, ifunc->addr);
  EXPECT_EQ(impl->type, STT_FUNC);
  EXPECT_GT(impl->size, 16u);
  EXPECT_FALSE(impl->implementation.empty());
  EXPECT_EQ(implementation_of(*s.libc, "strlen", impl->addr), impl->implementation);
  EXPECT_EQ(implementation_of(*s.libc, "strlen", ifunc->addr), "") << "the resolver is not an implementation";
}

TEST(IfuncImplementation, NamedByAddressWithoutADebugFile) {
  Self s = self();
  ASSERT_NE(s.libc, nullptr);
  MappedObject bare = *s.libc;
  auto dynsym_only = ObjectSymbols::load(*bare.elf, bare.bias.value(), "/nonexistent-debug-root");
  ASSERT_TRUE(dynsym_only.has_value());
  if ((*dynsym_only)->source() != "dynsym") GTEST_SKIP() << "this libc has a .symtab";
  bare.symbols_cache = *dynsym_only;
  const u64 impl = strlen_impl();
  EXPECT_EQ(implementation_name(bare, RemoteAddr(impl)),
            fmt::format("libc.so.6+{:#x}", impl - bare.bias.value()));
}

}  // namespace
}  // namespace hs
