// The loader links a parsed payload at a chosen address in the target:
// lays out text | rodata | data (each page-aligned, so each gets one
// protection: RX / R / RW), resolves symbols through a SymbolResolver,
// applies relocations (src/arch/x86_64.cc) and resolves each livepatch_func;
// the image starts its R region with a descriptor of itself (descriptor.h).
// It produces the exact bytes to write; it never touches a process itself, so
// everything here runs before any thread of the target is stopped.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "payload/payload.h"
#include "support/remote_ptr.h"
#include "support/target_symbol.h"

namespace hs {

// Where a thread-local variable's module keeps it, as the process says
// (engine/tls.h): what the loader needs to build TLS GOT slots.
struct TlsModule {
  u64 module_id = 0;              // the dynamic linker's module ID (tls_index.ti_module)
  std::optional<i64> tp_offset;   // its block's distance from the thread pointer, the same in
                                  // every thread (static TLS); nullopt: dynamic TLS
  std::string object;             // the object, for messages
};

class SymbolResolver {
 public:
  virtual ~SymbolResolver() = default;
  // An undefined symbol of the payload, in the spec's order: the target object
  // (incl. locals by "name,N" / "file#name" / ".klp.sym.OBJ.NAME,POS"), then
  // globals of payloads already loaded in the process, then the other objects
  // in link-map order. Errors (BadTarget): "unresolved symbol 'x'",
  // "ambiguous symbol 'x': N local definitions, use 'x,N' or 'file.c#x'".
  virtual Result<TargetSymbol> resolve_symbol(std::string_view name) = 0;
  // The function a livepatch_func names, looked up in the target object only.
  virtual Result<TargetSymbol> resolve_function(std::string_view name) = 0;
  // The program's own definition (global, weak or unique; in the target
  // object, else the other objects in link-map order; never another
  // payload's) of a name the payload defines weakly, which the payload then
  // uses instead of its copy; nullopt: keep the copy.
  virtual std::optional<TargetSymbol> program_definition(std::string_view name) {
    (void)name;
    return std::nullopt;
  }
  // The module of a thread-local symbol (`sym.type == STT_TLS`) that
  // resolve_symbol() found. By default TLS is not available (BadTarget).
  virtual Result<TlsModule> resolve_tls(std::string_view name, const TargetSymbol& sym);
  // A livepatch symbol (SHN_LIVEPATCH, payload/klp.h): `name` in the object
  // whose file name is `object`, pos 0 = unique, N = the N-th definition.
  // By default the ".klp.sym.OBJ.NAME,POS" form through resolve_symbol().
  virtual Result<TargetSymbol> resolve_klp(const KlpSymbol& sym) { return resolve_symbol(sym.written); }
};

// A resolver that adds to another: every question it does not answer itself
// goes to `inner` (the upload chains the process's symbols, the shadow table
// and thread-local modules this way). A new SymbolResolver method is
// forwarded here once, so no layer drops it.
class ForwardingResolver : public SymbolResolver {
 public:
  explicit ForwardingResolver(SymbolResolver& inner) : inner_(inner) {}
  Result<TargetSymbol> resolve_symbol(std::string_view name) override { return inner_.resolve_symbol(name); }
  Result<TargetSymbol> resolve_function(std::string_view name) override { return inner_.resolve_function(name); }
  std::optional<TargetSymbol> program_definition(std::string_view name) override {
    return inner_.program_definition(name);
  }
  Result<TlsModule> resolve_tls(std::string_view name, const TargetSymbol& sym) override {
    return inner_.resolve_tls(name, sym);
  }
  Result<TargetSymbol> resolve_klp(const KlpSymbol& sym) override { return inner_.resolve_klp(sym); }

 protected:
  SymbolResolver& inner_;
};

struct ImageRegion {
  u64 offset = 0;  // from the image base, page-aligned
  u64 size = 0;    // page-rounded
  int prot = 0;    // PROT_READ | PROT_EXEC, PROT_READ, PROT_READ | PROT_WRITE
};

struct LinkedFunc {
  size_t index = 0;
  std::string name;
  RemoteAddr old_addr;
  u32 old_size = 0;
  RemoteAddr new_addr;  // null: NOP out new_size bytes
  u32 new_size = 0;
  Bytes expect;
  // An indirect function's name resolved to this implementation (its name;
  // empty otherwise): old_addr/old_size are the implementation's.
  std::string implementation;
};

struct LinkedHooks {
  std::vector<RemoteAddr> load, unload;
  RemoteAddr preapply, apply, postapply, prerevert, revert, postrevert;  // null if none
};

struct LinkedPayload {
  RemoteAddr base;
  Bytes image;                        // image.size() == total mapped size (page multiple)
  std::vector<ImageRegion> regions;   // cover image, in address order
  std::vector<LinkedFunc> funcs;      // one per livepatch_func, same order
  LinkedHooks hooks;
  // Global defined symbols of the payload, for payloads loaded after it.
  std::vector<std::pair<std::string, RemoteAddr>> exports;
  RemoteAddr funcs_addr;              // where .livepatch.funcs lives in the target
  // The relocated .eh_frame, as an offset into the image (size 0: none).
  u64 eh_frame_offset = 0, eh_frame_size = 0;
  // The image descriptor (payload/descriptor.h), at the start of the R region.
  u64 descriptor_offset = 0;
  // The unwind block (payload/eh_frame.h) at the start of the RW region,
  // written when .eh_frame has an FDE to register (0: none).
  u64 unwind_block_offset = 0;
};

// Total bytes the payload needs (page multiple), including the GOT slots and
// veneers the loader may build. Call before mapping memory.
Result<u64> image_size(const Payload& p);

// Links `p` to run at `base` (page-aligned, image_size(p) bytes reserved).
// Unsupported relocation types, out-of-range values, unresolved symbols are
// errors naming the section, offset, symbol and value.
Result<LinkedPayload> link_payload(const Payload& p, RemoteAddr base, SymbolResolver& resolver);

}  // namespace hs
