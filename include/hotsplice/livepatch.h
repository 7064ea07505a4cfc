/*
 * hotsplice public header for patch authors.
 *
 * A patch source is ordinary C compiled with -fPIC. It defines the new
 * function(s) and says what each replaces:
 *
 *     #include <hotsplice/livepatch.h>
 *
 *     static int fixed_hello(void) { return 2; }
 *     HOTSPLICE_REPLACE("hello", fixed_hello);
 *     HOTSPLICE_INFO("cve", "CVE-2026-0001");
 *
 * `hotsplice build` compiles it, fills in the sizes left at 0 from the target
 * binary's symbol table, adds the build-id dependency notes and links the
 * payload. The layout of struct livepatch_func is the Xen project's payload
 * version 2 (104 bytes on x86-64), so payloads read like Xen's.
 */
#ifndef HOTSPLICE_LIVEPATCH_H
#define HOTSPLICE_LIVEPATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LIVEPATCH_PAYLOAD_VERSION 2
#define LIVEPATCH_OPAQUE_SIZE 31

/* Bytes that must be found at old_addr before it is patched. */
struct livepatch_expectation {
  uint8_t enabled : 1;
  uint8_t len : 5; /* number of bytes of data[] to compare, 1..31 */
  uint8_t rsv : 2; /* must be zero */
  uint8_t data[LIVEPATCH_OPAQUE_SIZE];
};

struct livepatch_func {
  const char *name;  /* "sym", "sym,N" (N-th same-named local), "file.c#sym" */
  void *new_addr;    /* replacement; NULL = NOP out new_size bytes at old_addr */
  void *old_addr;    /* NULL = resolve name at load */
  uint32_t new_size; /* 0 in the source = filled in by the builder */
  uint32_t old_size; /* 0 in the source = filled in by the builder */
  uint8_t version;   /* LIVEPATCH_PAYLOAD_VERSION */
  uint8_t _pad[39];  /* zero */
  struct livepatch_expectation expect;
};

#ifdef __cplusplus
#define HOTSPLICE_STATIC_ASSERT static_assert
#else
#define HOTSPLICE_STATIC_ASSERT _Static_assert
#endif
HOTSPLICE_STATIC_ASSERT(sizeof(struct livepatch_expectation) == 32, "expectation size");
HOTSPLICE_STATIC_ASSERT(sizeof(struct livepatch_func) == 104, "livepatch_func size");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, name) == 0, "name offset");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, new_addr) == 8, "new_addr offset");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, old_addr) == 16, "old_addr offset");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, new_size) == 24, "new_size offset");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, old_size) == 28, "old_size offset");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, version) == 32, "version offset");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, _pad) == 33, "_pad offset");
HOTSPLICE_STATIC_ASSERT(offsetof(struct livepatch_func, expect) == 72, "expect offset");

/* Action hooks, Xen's signatures. The argument of apply and revert hooks
 * says which operation runs them (hotsplice_hook_action below); the others
 * get NULL. */
typedef int livepatch_precall_t(void *payload);
typedef void livepatch_postcall_t(void *payload);
typedef int livepatch_actioncall_t(void *payload);
typedef void livepatch_loadcall_t(void);

#define HOTSPLICE_CAT2_(a, b) a##b
#define HOTSPLICE_CAT_(a, b) HOTSPLICE_CAT2_(a, b)
#define HOTSPLICE_UNIQUE_(prefix) HOTSPLICE_CAT_(prefix, __COUNTER__)

#define HOTSPLICE_FUNC_ENTRY_ static const struct livepatch_func \
  __attribute__((used, section(".livepatch.funcs"), aligned(8))) HOTSPLICE_UNIQUE_(hotsplice_func_)

/* Replace the target's function `target_name` (a string) with new_fn. */
#define HOTSPLICE_REPLACE(target_name, new_fn)                                  \
  HOTSPLICE_FUNC_ENTRY_ = {                                                     \
      .name = (target_name), .new_addr = (void *)(new_fn), .old_addr = 0,       \
      .new_size = 0, .old_size = 0, .version = LIVEPATCH_PAYLOAD_VERSION}

/* As HOTSPLICE_REPLACE, and refuse to apply unless the target's first bytes
 * are exactly the ones given (1 to 31 byte values). */
#define HOTSPLICE_REPLACE_EXPECT(target_name, new_fn, ...)                      \
  HOTSPLICE_FUNC_ENTRY_ = {                                                     \
      .name = (target_name), .new_addr = (void *)(new_fn), .old_addr = 0,       \
      .new_size = 0, .old_size = 0, .version = LIVEPATCH_PAYLOAD_VERSION,       \
      .expect = {.enabled = 1,                                                  \
                 .len = sizeof((const uint8_t[]){__VA_ARGS__}),                 \
                 .rsv = 0,                                                      \
                 .data = {__VA_ARGS__}}}

/* Overwrite the first nbytes of `target_name` with NOPs. */
#define HOTSPLICE_NOP(target_name, nbytes)                                      \
  HOTSPLICE_FUNC_ENTRY_ = {                                                     \
      .name = (target_name), .new_addr = 0, .old_addr = 0,                      \
      .new_size = (nbytes), .old_size = 0, .version = LIVEPATCH_PAYLOAD_VERSION}

/* key=value metadata shown by `hotsplice info` and `hotsplice list`. */
#define HOTSPLICE_INFO(key, value)                                              \
  static const char HOTSPLICE_UNIQUE_(hotsplice_modinfo_)[]                     \
      __attribute__((used, section(".modinfo"), aligned(1))) = key "=" value

/* Hooks run inside the target (hotsplice runs them on a borrowed thread). */
#define HOTSPLICE_LOAD_HOOK(fn)                                                 \
  static livepatch_loadcall_t *const HOTSPLICE_UNIQUE_(hotsplice_hook_)         \
      __attribute__((used, section(".livepatch.hooks.load"))) = (fn)
#define HOTSPLICE_UNLOAD_HOOK(fn)                                               \
  static livepatch_loadcall_t *const HOTSPLICE_UNIQUE_(hotsplice_hook_)         \
      __attribute__((used, section(".livepatch.hooks.unload"))) = (fn)
#define HOTSPLICE_ACTION_HOOK_(sect, type, fn)                                  \
  static type *const HOTSPLICE_UNIQUE_(hotsplice_hook_)                         \
      __attribute__((used, section(".livepatch.hooks." sect))) = (fn)
#define HOTSPLICE_PREAPPLY_HOOK(fn) HOTSPLICE_ACTION_HOOK_("preapply", livepatch_precall_t, fn)
#define HOTSPLICE_APPLY_HOOK(fn) HOTSPLICE_ACTION_HOOK_("apply", livepatch_actioncall_t, fn)
#define HOTSPLICE_POSTAPPLY_HOOK(fn) HOTSPLICE_ACTION_HOOK_("postapply", livepatch_postcall_t, fn)
#define HOTSPLICE_PREREVERT_HOOK(fn) HOTSPLICE_ACTION_HOOK_("prerevert", livepatch_precall_t, fn)
#define HOTSPLICE_REVERT_HOOK(fn) HOTSPLICE_ACTION_HOOK_("revert", livepatch_actioncall_t, fn)
#define HOTSPLICE_POSTREVERT_HOOK(fn) HOTSPLICE_ACTION_HOOK_("postrevert", livepatch_postcall_t, fn)

/* What an apply or revert hook's argument says. REPLACE: the hook runs in a
 * `replace`, the revert hooks of the payloads it reverts and then the apply
 * hook of the cumulative payload that takes over, in one stop. */
enum hotsplice_action {
  HOTSPLICE_ACTION_NONE = 0, /* pre, post, load and unload hooks */
  HOTSPLICE_ACTION_APPLY = 1,
  HOTSPLICE_ACTION_REVERT = 2,
  HOTSPLICE_ACTION_REPLACE = 3
};
static inline __attribute__((unused)) enum hotsplice_action hotsplice_hook_action(void *arg) {
  uintptr_t v = (uintptr_t)arg;
  return v <= 3 ? (enum hotsplice_action)v : HOTSPLICE_ACTION_NONE;
}

/* ---- changing existing data at apply, putting it back at revert ----
 *
 *     extern int request_limit;               (a variable of the target)
 *     HOTSPLICE_DATA_CHANGE(limit, request_limit, 64);
 *     HOTSPLICE_DATA_HOOKS(&limit);
 *
 * The apply hook saves request_limit's bytes in the payload and writes 64;
 * the revert hook writes the saved bytes back (whatever the program wrote
 * meanwhile). Both run with every thread stopped, right after the code is
 * switched, so no thread sees the new code with the old value or the other
 * way round. In a `replace`, the replaced payloads' revert hooks put their
 * values back first, then the new payload's apply hook saves and sets its
 * own. The value may be anything the variable's type can be initialised
 * with (`{.a = 1, .b = 2}` for a struct). The variable must be writable
 * data (a const one makes the hook crash and the apply is rolled back).
 * HOTSPLICE_DATA_HOOKS holds the payload's apply and revert hooks; a payload
 * with hooks of its own calls hotsplice_data_apply / hotsplice_data_revert
 * from them. */
struct hotsplice_data_change {
  void *addr;        /* the target's variable */
  const void *value; /* the new value, in the payload */
  void *saved;       /* the old value, saved at apply */
  size_t size;
};

#define HOTSPLICE_DATA_CHANGE(name, var, ...)                                   \
  static __typeof__(var) HOTSPLICE_CAT_(name, _new_) = __VA_ARGS__;             \
  static __typeof__(var) HOTSPLICE_CAT_(name, _saved_);                         \
  static struct hotsplice_data_change name = {(void *)&(var), (const void *)&HOTSPLICE_CAT_(name, _new_), \
                                              (void *)&HOTSPLICE_CAT_(name, _saved_), sizeof(var)}

static inline __attribute__((unused)) void hotsplice_data_copy_(void *to, const void *from, size_t n) {
  volatile unsigned char *t = (volatile unsigned char *)to;
  const unsigned char *f = (const unsigned char *)from;
  while (n--) *t++ = *f++;
}
/* Saves each variable and writes its new value, in order. */
static inline __attribute__((unused)) void hotsplice_data_apply(struct hotsplice_data_change *const *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    hotsplice_data_copy_(c[i]->saved, c[i]->addr, c[i]->size);
    hotsplice_data_copy_(c[i]->addr, c[i]->value, c[i]->size);
  }
}
/* Writes each saved value back, last first. */
static inline __attribute__((unused)) void hotsplice_data_revert(struct hotsplice_data_change *const *c, size_t n) {
  while (n--) hotsplice_data_copy_(c[n]->addr, c[n]->saved, c[n]->size);
}

#define HOTSPLICE_DATA_HOOKS(...)                                               \
  static struct hotsplice_data_change *const hotsplice_data_changes_[] = {__VA_ARGS__}; \
  static int hotsplice_data_on_apply_(void *action) {                           \
    (void)action;                                                               \
    hotsplice_data_apply(hotsplice_data_changes_,                               \
                         sizeof hotsplice_data_changes_ / sizeof hotsplice_data_changes_[0]); \
    return 0;                                                                   \
  }                                                                             \
  static int hotsplice_data_on_revert_(void *action) {                          \
    (void)action;                                                               \
    hotsplice_data_revert(hotsplice_data_changes_,                              \
                          sizeof hotsplice_data_changes_ / sizeof hotsplice_data_changes_[0]); \
    return 0;                                                                   \
  }                                                                             \
  HOTSPLICE_APPLY_HOOK(hotsplice_data_on_apply_);                               \
  HOTSPLICE_REVERT_HOOK(hotsplice_data_on_revert_)

#ifdef __cplusplus
}
#endif

/* Shadow variables (hotsplice_shadow_get / alloc / get_or_alloc / free /
 * free_all): see that header. */
#include <hotsplice/shadow.h>

#endif /* HOTSPLICE_LIVEPATCH_H */
