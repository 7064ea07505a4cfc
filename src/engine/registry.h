// The registry: hotsplice's state, kept inside the target process.
//
// Where it lives. A private memfd mapping named "hotsplice-registry", created
// in the target the first time a payload is uploaded (memfd_create + mmap run
// as remote system calls). It shows in /proc/PID/maps as
// "/memfd:hotsplice-registry (deleted)", which is how every later invocation,
// and any second copy of the tool, finds it; it dies with the process. Being
// private (written through /proc/PID/mem, which copies a page on write), it
// is copied by fork like the rest of the process's memory: a child forked
// after a patch inherits the patched code and a registry that describes it,
// and from then on parent and child each change their own. exec drops it
// with the old image.
//
// How it is written. The mapping holds a header and two slots. A commit
// serialises the whole state into the slot that is not active, then flips
// one 8-byte word in the header (`commit`: generation << 1 | slot). Each is a
// single pwrite to /proc/PID/mem, and a pwrite is never torn by the tool's
// death, so a reader always sees either the old or the new state, with its
// checksum intact.
//
// The journal. Before an operation changes target memory (code bytes,
// mappings), it commits a state that carries a Journal: the exact writes it
// is about to do (address, bytes before, bytes after) and the mappings it is
// about to create or remove. If the tool dies, the next invocation finds the
// journal (it holds the lock then, so the writer is gone) and rolls it back
// (see Engine::repair).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "process/process.h"
#include "support/bytes.h"
#include "support/error.h"
#include "support/remote_ptr.h"

namespace hs {

class ThreadGroup;

enum class PayloadState : u8 { Checked = 1, Applied = 2 };
const char* state_name(PayloadState s);

// Per-function state, outside the payload (Xen's livepatch_fstate).
struct FuncState {
  std::string name;
  u64 old_addr = 0;
  u32 old_size = 0;
  u64 new_addr = 0;   // 0: NOP out
  u32 new_size = 0;
  u32 patch_offset = 0;  // 4 after endbr64
  Bytes insn;         // bytes written at old_addr + patch_offset when applied
  Bytes undo;         // bytes that were there before (saved at apply)
  Bytes expect;       // bytes required at old_addr before apply (empty: none)
  bool applied = false;
  // The direct calls (E8) and tail calls (E9) to old_addr in its object,
  // found at upload (engine/call_sites.h): the address of each opcode byte.
  std::vector<u64> call_sites;
  // `name` is an indirect function (STT_GNU_IFUNC) and old_addr the
  // implementation its resolver chose in this process, named here
  // ("__strlen_avx2", "libc.so.6+0x1a2b3c"); empty for other functions.
  std::string implementation;
  // The target's symbol when `name` is another spelling of it ("parse.isra.0"
  // for "parse", "_ZN2ns1fEi" for "ns::f(int)"); empty if the same.
  std::string symbol;
  // The cold parts GCC split out of it ("parse.cold"), (address, size): a
  // thread there runs the code being switched away from (engine/func_parts.h).
  std::vector<std::pair<u64, u64>> cold;

  u64 site() const { return old_addr + patch_offset; }
  // "'parse' (parse.isra.0)", or "'hello'": how messages name it.
  std::string quoted() const { return "'" + name + "'" + (symbol.empty() ? "" : " (" + symbol + ")"); }
};

struct RegionRecord {
  u64 offset = 0, size = 0;
  int prot = 0;
};

// A hook of a payload (.livepatch.hooks.*): where it is in the target.
struct HookRecord {
  std::string kind;  // "load", "unload", "preapply", "apply", "postapply", "prerevert", "revert", "postrevert"
  std::string name;  // the symbol its slot points at ("on_load"), for messages
  u64 addr = 0;
};

struct PayloadRecord {
  std::string name;
  std::string file;
  PayloadState state = PayloadState::Checked;
  Bytes build_id, depends, object_depends;
  std::string object_path;       // target object this payload patches
  u64 base = 0, size = 0;        // its mapping in the target
  std::vector<RegionRecord> regions;
  std::vector<FuncState> funcs;
  std::vector<std::pair<std::string, u64>> exports;
  std::vector<std::pair<std::string, std::string>> modinfo;
  u64 upload_seq = 0;
  u64 apply_seq = 0;             // order on the applied stack (0 when not applied)
  // Its .eh_frame, as an offset from `base` (size 0: none), so the
  // activeness check can unwind through its code.
  u64 eh_frame_offset = 0, eh_frame_size = 0;

  // Its hooks, in section order (load and unload ones may repeat).
  std::vector<HookRecord> hooks;
  // An unload has run (or started) its unload hooks; they never run again,
  // and the payload can only be unloaded now (see Session::unload).
  bool unload_hooks_started = false;

  RemoteRange range() const { return {RemoteAddr(base), RemoteAddr(base + size)}; }
  // The hooks of one kind, in order; the first one (null if none).
  std::vector<const HookRecord*> hooks_of(std::string_view kind) const;
  const HookRecord* hook(std::string_view kind) const;
};

// One memory change an operation is about to make.
struct JournalWrite {
  u64 addr = 0;
  Bytes before, after;
};

enum class JournalOp : u8 { None = 0, Upload, Apply, Revert, Replace, Unload };
const char* op_name(JournalOp op);

struct Journal {
  JournalOp op = JournalOp::None;
  std::string payload;           // the payload the operation is about
  u64 tool_pid = 0;              // who wrote it
  std::vector<JournalWrite> writes;
  u64 map_base = 0, map_size = 0;  // Upload: mapping being created; Unload: being removed
};

struct RegistryState {
  u64 next_seq = 1;
  // The commit generation this state was written as (kExtGeneration), so a
  // reader can tell the active slot from a stale one; 0: not recorded (a
  // registry written before it was).
  u64 generation = 0;
  std::vector<PayloadRecord> payloads;
  std::optional<Journal> journal;

  PayloadRecord* find(std::string_view name);
  const PayloadRecord* find(std::string_view name) const;
  // The top of the applied stack of an object (highest apply_seq), or null.
  const PayloadRecord* top_of_stack(std::string_view object_path) const;
  // Applied payloads of an object, newest first.
  std::vector<const PayloadRecord*> applied_stack(std::string_view object_path) const;
};

// `generation` (0: none) is recorded in the state, see RegistryState.
Bytes serialize(const RegistryState& s, u64 generation = 0);
// Parses and checks (check_state) a state read back from a target. Errors
// are Corrupt (BadTarget for a format version this tool does not know) and
// read "<who> is corrupt: <what is wrong>".
Result<RegistryState> deserialize(ByteView data, std::string_view who = "registry");

// What a payload may be called (1 to 64 of [A-Za-z0-9_.-]).
bool valid_payload_name(std::string_view name);
// Everything a state read back from a target must satisfy before any verb
// acts on it (registry_check.cc): names, states, counts, byte-string lengths,
// addresses, sequence numbers and the journal. A Corrupt error
// "<who> is corrupt: <what>" otherwise.
Status check_state(const RegistryState& s, std::string_view who = "registry");

// The raw layout of the mapping: a header page, then two slots, each a
// SlotHeader and the serialised state. Exposed for the fuzzer and for tests
// that forge a registry the way a target could.
struct RegistryHeader {
  char magic[8];
  u32 version;
  u32 header_size;
  u64 capacity;
  u64 self;    // the mapping's own address
  u64 commit;  // generation << 1 | active slot
};
struct RegistrySlotHeader {
  u64 length;
  u64 checksum;  // registry_checksum of the `length` bytes that follow
};
inline constexpr char kRegistryMagic[8] = {'H', 'S', 'P', 'L', 'R', 'E', 'G', '1'};
inline constexpr u64 kRegistryHeaderSize = 4096;
u64 registry_checksum(ByteView data);
u64 registry_slot_offset(u64 slot);  // from the mapping's start
u64 registry_slot_capacity();        // the slot header included
// A slot's bytes (header and data) holding `s` as written by commit
// `generation`.
Bytes registry_slot_image(const RegistryState& s, u64 generation);
// A fresh header for a mapping at `self`.
RegistryHeader registry_header(u64 self);
// What is wrong with a registry's header page (the header and the zeros
// after it) for a mapping at `self`, as a few words ("bad magic"); empty if
// nothing is.
std::string registry_header_problem(ByteView page, u64 self);

// Reads `len` bytes at `offset` from the start of a registry mapping.
using RegistryReader = std::function<Result<Bytes>(u64 offset, size_t len)>;
// The state a registry mapping at `self` holds, with the header, the active
// slot (length, checksum, generation) and the contents checked. Errors are
// Corrupt and name `who` ("registry of PID 123").
Result<RegistryState> read_registry(const RegistryReader& read, u64 self, std::string_view who);

// The registry mapping inside one target.
class Registry {
 public:
  static constexpr std::string_view kMemfdName = "hotsplice-registry";
  static constexpr u64 kCapacity = 32ull << 20;  // virtual; pages are used as written

  // The mapping named as the registry (its memfd name), whatever it holds;
  // nullopt if there is none; a Corrupt error if there are several.
  static Result<std::optional<MapEntry>> find_mapping(const Process& proc);
  // Finds the registry of a process; nullopt if it has none yet. A mapping
  // named as the registry whose size, protection or header is wrong is a
  // Corrupt error ("registry of PID 123 at 0x7f.. is corrupt: bad magic"),
  // never "none": no second registry is created beside it.
  static Result<std::optional<Registry>> find(const Process& proc);
  // Creates it (remote syscalls on one borrowed thread; the rest keeps running).
  static Result<Registry> create(const Process& proc, ThreadGroup& group);

  Result<RegistryState> load() const;
  Status commit(const RegistryState& s);
  RemoteAddr base() const { return base_; }

 private:
  Registry(const Process* proc, RemoteAddr base) : proc_(proc), base_(base) {}
  const Process* proc_;
  RemoteAddr base_;
};

}  // namespace hs
