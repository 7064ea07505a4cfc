// The registry record of a payload about to be uploaded: see record.h.
#include "engine/record.h"

#include <algorithm>

#include "arch/x86_64.h"
#include "engine/call_sites.h"
#include "engine/func_parts.h"
#include "process/process.h"

namespace hs {

Result<PayloadRecord> make_record(const Process& proc, std::string_view name, const std::string& file,
                                  const Payload& payload, const MappedObject& obj, const LinkedPayload& linked) {
  PayloadRecord rec;
  rec.name = std::string(name);
  rec.file = file;
  rec.build_id = payload.build_id;
  rec.depends = payload.depends;
  rec.object_depends = payload.object_depends;
  rec.object_path = obj.path;
  rec.base = linked.base.value();
  rec.size = linked.image.size();
  for (const auto& r : linked.regions) rec.regions.push_back({r.offset, r.size, r.prot});
  for (const auto& [n, a] : linked.exports) rec.exports.emplace_back(n, a.value());
  rec.modinfo = payload.modinfo;
  rec.eh_frame_offset = linked.eh_frame_offset;
  rec.eh_frame_size = linked.eh_frame_size;
  // Hooks: the linked addresses, named after the symbols their slots point at.
  auto add_hooks = [&](const char* kind, const std::vector<RemoteAddr>& addrs, auto name_of) {
    for (size_t i = 0; i < addrs.size(); i++)
      if (!addrs[i].is_null()) rec.hooks.push_back({kind, name_of(i), addrs[i].value()});
  };
  auto array_names = [](const std::vector<SymRef>& refs) {
    return [&refs](size_t i) { return i < refs.size() ? refs[i].display : std::string("?"); };
  };
  auto single_name = [](const std::optional<SymRef>& ref) {
    return [&ref](size_t) { return ref ? ref->display : std::string("?"); };
  };
  const LinkedHooks& lh = linked.hooks;
  add_hooks("load", lh.load, array_names(payload.load_hooks));
  add_hooks("unload", lh.unload, array_names(payload.unload_hooks));
  add_hooks("preapply", {lh.preapply}, single_name(payload.preapply));
  add_hooks("apply", {lh.apply}, single_name(payload.apply));
  add_hooks("postapply", {lh.postapply}, single_name(payload.postapply));
  add_hooks("prerevert", {lh.prerevert}, single_name(payload.prerevert));
  add_hooks("revert", {lh.revert}, single_name(payload.revert));
  add_hooks("postrevert", {lh.postrevert}, single_name(payload.postrevert));
  for (const auto& lf : linked.funcs) {
    FuncState f;
    f.name = lf.name;
    f.old_addr = lf.old_addr.value();
    f.old_size = lf.old_size;
    f.new_addr = lf.new_addr.value();
    f.new_size = lf.new_size;
    f.expect = lf.expect;
    f.implementation = lf.implementation;
    Bytes head = HS_TRY(proc.read(lf.old_addr, std::min<u64>(lf.old_size, x86_64::kEndbrSize)));
    f.patch_offset = static_cast<u32>(x86_64::patch_offset(head));
    u64 room = lf.old_size - std::min<u64>(lf.old_size, f.patch_offset);
    if (lf.new_addr.is_null()) {
      if (lf.new_size > room)
        return fail(ErrorKind::BadPayload,
                    "{}: function '{}': cannot NOP out {:#x} bytes, it has {:#x} after offset {:#x}", file, lf.name,
                    lf.new_size, room, f.patch_offset);
      f.insn = x86_64::make_nops(lf.new_size);
    } else {
      if (room < x86_64::kJumpSize)
        return fail(ErrorKind::BadPayload,
                    "{}: function '{}' is too short to patch: {:#x} bytes, a jump needs {:#x}{}", file, lf.name,
                    lf.old_size, f.patch_offset + x86_64::kJumpSize, f.patch_offset ? " after endbr64" : "");
      f.insn = HS_TRY_CTX(x86_64::make_jump(RemoteAddr(f.site()), lf.new_addr),
                          fmt::format("{}: function '{}'", file, lf.name));
    }
    describe_function_parts(f, obj);
    rec.funcs.push_back(std::move(f));
  }
  // The direct calls to each replaced function (not to NOPped ones: their
  // callers must still run the rest of the function).
  std::vector<u64> replaced;
  for (const FuncState& f : rec.funcs)
    if (f.new_addr != 0) replaced.push_back(f.old_addr);
  const auto sites = HS_TRY(find_call_sites(obj, replaced));
  for (FuncState& f : rec.funcs)
    if (auto it = sites.find(f.old_addr); it != sites.end() && f.new_addr != 0)
      for (const CallSite& c : it->second) f.call_sites.push_back(c.addr);
  return rec;
}

}  // namespace hs
