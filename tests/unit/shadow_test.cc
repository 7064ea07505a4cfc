// The shadow-variable runtime of include/hotsplice/shadow.h, run in this
// process: the table is a local hotsplice_shadow_root with the header
// hotsplice writes into a target's "hotsplice-shadow" mapping
// (src/engine/shadow_runtime.cc), so the same code payloads carry is what
// is tested here. The e2e side (a real target, payloads, replace, revert)
// is tests/e2e/shadow_test.cc.
#include <hotsplice/livepatch.h>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

extern "C" {
struct hotsplice_shadow_root hotsplice_shadow_root_v1;
}

namespace {

void reset_table() {
  std::memset(&hotsplice_shadow_root_v1, 0, sizeof hotsplice_shadow_root_v1);
  hotsplice_shadow_root_v1.magic = HOTSPLICE_SHADOW_MAGIC;
  hotsplice_shadow_root_v1.version = HOTSPLICE_SHADOW_VERSION;
  hotsplice_shadow_root_v1.nbuckets = HOTSPLICE_SHADOW_BUCKETS;
}

struct Extra {
  long count;
  int owner;
};

int ctor_calls = 0;
int set_owner(void* obj, void* data, void* arg) {
  ctor_calls++;
  static_cast<Extra*>(data)->owner = *static_cast<int*>(obj) + (arg ? *static_cast<int*>(arg) : 0);
  return 0;
}
int refuse(void*, void*, void*) { return 1; }

std::vector<std::pair<void*, long>> destroyed;
void record(void* obj, void* data) { destroyed.emplace_back(obj, static_cast<Extra*>(data)->count); }

class ShadowRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    reset_table();
    ctor_calls = 0;
    destroyed.clear();
  }
};

TEST_F(ShadowRuntime, AllocGetFree) {
  int obj = 7;
  EXPECT_EQ(hotsplice_shadow_get(&obj, 1), nullptr);
  auto* x = static_cast<Extra*>(hotsplice_shadow_alloc(&obj, 1, sizeof(Extra), nullptr, nullptr));
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->count, 0) << "zeroed";
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x) % 16, 0u);
  x->count = 5;
  EXPECT_EQ(hotsplice_shadow_get(&obj, 1), x);
  EXPECT_EQ(hotsplice_shadow_get(&obj, 2), nullptr) << "another id";
  EXPECT_EQ(hotsplice_shadow_alloc(&obj, 1, sizeof(Extra), nullptr, nullptr), nullptr) << "exists already";
  EXPECT_EQ(hotsplice_shadow_get_or_alloc(&obj, 1, sizeof(Extra), nullptr, nullptr), x);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 1u);
  hotsplice_shadow_free(&obj, 1, record);
  ASSERT_EQ(destroyed.size(), 1u);
  EXPECT_EQ(destroyed[0], std::make_pair(static_cast<void*>(&obj), 5L));
  EXPECT_EQ(hotsplice_shadow_get(&obj, 1), nullptr);
  hotsplice_shadow_free(&obj, 1, record);  // none: nothing happens
  EXPECT_EQ(destroyed.size(), 1u);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 0u);
  EXPECT_EQ(hotsplice_shadow_root_v1.allocated, 1u);
  EXPECT_EQ(hotsplice_shadow_root_v1.freed, 1u);
}

TEST_F(ShadowRuntime, ConstructorRunsOnceAndCanRefuse) {
  int obj = 40, add = 2;
  auto* x = static_cast<Extra*>(hotsplice_shadow_get_or_alloc(&obj, 3, sizeof(Extra), set_owner, &add));
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->owner, 42);
  EXPECT_EQ(hotsplice_shadow_get_or_alloc(&obj, 3, sizeof(Extra), set_owner, &add), x);
  EXPECT_EQ(ctor_calls, 1);
  int other = 1;
  EXPECT_EQ(hotsplice_shadow_alloc(&other, 3, sizeof(Extra), refuse, nullptr), nullptr);
  EXPECT_EQ(hotsplice_shadow_get(&other, 3), nullptr);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 1u);
}

TEST_F(ShadowRuntime, FreeAllTakesOneIdOfEveryObject) {
  std::vector<int> objs(100);
  for (int i = 0; i < 100; i++) {
    auto* a = static_cast<Extra*>(hotsplice_shadow_alloc(&objs[i], 1, sizeof(Extra), nullptr, nullptr));
    ASSERT_NE(a, nullptr);
    a->count = i;
    ASSERT_NE(hotsplice_shadow_alloc(&objs[i], 2, 8, nullptr, nullptr), nullptr);
  }
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 200u);
  hotsplice_shadow_free_all(1, record);
  EXPECT_EQ(destroyed.size(), 100u);
  long sum = 0;
  for (auto& [o, c] : destroyed) sum += c;
  EXPECT_EQ(sum, 99 * 100 / 2);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 100u);
  for (int i = 0; i < 100; i++) {
    EXPECT_EQ(hotsplice_shadow_get(&objs[i], 1), nullptr);
    EXPECT_NE(hotsplice_shadow_get(&objs[i], 2), nullptr);
  }
  hotsplice_shadow_free_all(2, nullptr);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 0u);
}

TEST_F(ShadowRuntime, TryFreeAllNeverWaitsForTheLock) {
  int obj = 0;
  ASSERT_NE(hotsplice_shadow_alloc(&obj, 9, 8, nullptr, nullptr), nullptr);
  hotsplice_shadow_root_v1.lock = 1;  // as if a stopped thread held it
  EXPECT_EQ(hotsplice_shadow_try_free_all(9, nullptr), 16);
  hotsplice_shadow_root_v1.lock = 0;
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 1u);
  EXPECT_EQ(hotsplice_shadow_try_free_all(9, nullptr), 0);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 0u);
}

TEST_F(ShadowRuntime, UnknownTableIsNeverTouched) {
  int obj = 0;
  hotsplice_shadow_root_v1.magic = 0;  // a mapping not yet written, or not ours
  EXPECT_EQ(hotsplice_shadow_get_or_alloc(&obj, 1, 8, nullptr, nullptr), nullptr);
  hotsplice_shadow_free_all(1, nullptr);
  EXPECT_EQ(hotsplice_shadow_try_free_all(1, nullptr), 0);
  reset_table();
  hotsplice_shadow_root_v1.version = 2;
  EXPECT_EQ(hotsplice_shadow_alloc(&obj, 1, 8, nullptr, nullptr), nullptr);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 0u);
}

// Many threads reach get_or_alloc for the same fresh objects at once: one
// shadow per object, its constructor run once, no increment lost.
TEST_F(ShadowRuntime, ConcurrentGetOrAllocMakesOneShadowPerObject) {
  constexpr int kThreads = 8, kObjects = 64, kRounds = 200;
  std::vector<int> objs(kObjects);
  std::atomic<int> constructed{0};
  static std::atomic<int>* counter;
  counter = &constructed;
  auto ctor = [](void*, void*, void*) -> int {
    counter->fetch_add(1);
    return 0;
  };
  std::barrier start(kThreads);
  std::vector<std::set<void*>> seen(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&, t] {
      for (int r = 0; r < kRounds; r++) {
        if (r % 50 == 0) start.arrive_and_wait();
        for (int i = 0; i < kObjects; i++) {
          auto* x = static_cast<Extra*>(hotsplice_shadow_get_or_alloc(&objs[i], 5, sizeof(Extra), ctor, nullptr));
          ASSERT_NE(x, nullptr);
          __atomic_add_fetch(&x->count, 1, __ATOMIC_RELAXED);
          seen[t].insert(x);
        }
      }
    });
  for (auto& th : ts) th.join();
  EXPECT_EQ(constructed.load(), kObjects);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, static_cast<uint64_t>(kObjects));
  EXPECT_EQ(hotsplice_shadow_root_v1.allocated, static_cast<uint64_t>(kObjects));
  for (int t = 1; t < kThreads; t++) EXPECT_EQ(seen[t], seen[0]);
  for (int i = 0; i < kObjects; i++)
    EXPECT_EQ(static_cast<Extra*>(hotsplice_shadow_get(&objs[i], 5))->count, kThreads * kRounds);
  EXPECT_EQ(hotsplice_shadow_root_v1.lock, 0u);
  hotsplice_shadow_free_all(5, nullptr);
}

// Allocations and frees of distinct ids racing: the counts stay exact.
TEST_F(ShadowRuntime, ConcurrentAllocAndFreeKeepTheCounts) {
  constexpr int kThreads = 6, kRounds = 2000;
  std::vector<int> objs(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&, t] {
      for (int r = 0; r < kRounds; r++) {
        ASSERT_NE(hotsplice_shadow_alloc(&objs[t], static_cast<unsigned long>(r), 24, nullptr, nullptr), nullptr);
        if (r % 2) hotsplice_shadow_free(&objs[t], static_cast<unsigned long>(r - 1), nullptr);
      }
    });
  for (auto& th : ts) th.join();
  EXPECT_EQ(hotsplice_shadow_root_v1.live, static_cast<uint64_t>(kThreads * kRounds / 2));
  EXPECT_EQ(hotsplice_shadow_root_v1.freed, static_cast<uint64_t>(kThreads * kRounds / 2));
  for (int r = 0; r < kRounds; r++) hotsplice_shadow_free_all(static_cast<unsigned long>(r), nullptr);
  EXPECT_EQ(hotsplice_shadow_root_v1.live, 0u);
}

// HOTSPLICE_DATA_CHANGE / hotsplice_data_apply / _revert on variables here.
struct Config {
  int limit;
  char mode[8];
};
int limit_var = 16;
Config config_var = {1, "slow"};
HOTSPLICE_DATA_CHANGE(limit_change, limit_var, 64);
HOTSPLICE_DATA_CHANGE(config_change, config_var, {2, "fast"});

TEST(DataChange, ApplySetsRevertPutsBack) {
  hotsplice_data_change* const changes[] = {&limit_change, &config_change};
  hotsplice_data_apply(changes, 2);
  EXPECT_EQ(limit_var, 64);
  EXPECT_EQ(config_var.limit, 2);
  EXPECT_STREQ(config_var.mode, "fast");
  limit_var = 65;  // the program changes it meanwhile: revert puts back the saved value
  hotsplice_data_revert(changes, 2);
  EXPECT_EQ(limit_var, 16);
  EXPECT_EQ(config_var.limit, 1);
  EXPECT_STREQ(config_var.mode, "slow");
}

TEST(DataChange, HookActionDecodesTheArgument) {
  EXPECT_EQ(hotsplice_hook_action(nullptr), HOTSPLICE_ACTION_NONE);
  EXPECT_EQ(hotsplice_hook_action(reinterpret_cast<void*>(1)), HOTSPLICE_ACTION_APPLY);
  EXPECT_EQ(hotsplice_hook_action(reinterpret_cast<void*>(2)), HOTSPLICE_ACTION_REVERT);
  EXPECT_EQ(hotsplice_hook_action(reinterpret_cast<void*>(3)), HOTSPLICE_ACTION_REPLACE);
  EXPECT_EQ(hotsplice_hook_action(reinterpret_cast<void*>(0x7fff0000)), HOTSPLICE_ACTION_NONE);
}

}  // namespace
