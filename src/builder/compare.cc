// Function-by-function comparison of an original and a patched object
// (compare.h): symbols correlated by source name, bytes and relocation
// targets compared, __LINE__-only differences told apart.
#include "builder/compare.h"

#include <elf.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "elf/elf_file.h"

namespace hs {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

bool pc_relative(u32 type) {
  switch (type) {
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
    case R_X86_64_GOTPCREL:
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
    case R_X86_64_PC64: return true;
    default: return false;
  }
}

std::string signed_hex(i64 v) { return v < 0 ? fmt::format("-{:#x}", -static_cast<u64>(v)) : fmt::format("+{:#x}", v); }

struct Reference {
  u64 offset = 0;  // from the symbol's start
  u32 type = 0;
  std::string target;
  bool operator==(const Reference&) const = default;
};

// A function or data object of one object file.
struct Item {
  std::string symbol, key;
  bool func = false;
  bool writable = false;
  u64 size = 0;
  ByteView bytes;  // empty for .bss
  std::vector<Reference> refs;
};

class Object {
 public:
  static Result<Object> open(const std::string& path) {
    Object o;
    o.elf_ = HS_TRY(ElfFile::open(path));
    if (!o.elf_->is_relocatable()) return fail(ErrorKind::BadTarget, "{} is not a relocatable object", path);
    if (auto st = o.elf_->symtab_index()) o.syms_ = HS_TRY_CTX(o.elf_->symbols(*st), path);
    const auto& shdrs = o.elf_->sections();
    for (size_t i = 1; i < shdrs.size(); ++i) {
      if (shdrs[i].sh_type != SHT_RELA) continue;
      auto relas = HS_TRY_CTX(o.elf_->relocations(i), path);
      auto& v = o.relas_[shdrs[i].sh_info];
      v.insert(v.end(), relas.begin(), relas.end());
    }
    for (const ElfSymbol& s : o.syms_) {
      if (s.defined() && s.st_shndx < SHN_LORESERVE && (s.type() == STT_FUNC || s.type() == STT_OBJECT))
        o.by_section_[s.st_shndx].push_back(&s - o.syms_.data());
    }
    return o;
  }

  std::vector<Item> items() const {
    std::vector<Item> out;
    const auto& shdrs = elf_->sections();
    for (const ElfSymbol& s : syms_) {
      if (!s.defined() || s.st_shndx >= SHN_LORESERVE || s.st_shndx >= shdrs.size()) continue;
      if (s.type() != STT_FUNC && s.type() != STT_OBJECT) continue;
      const Elf64_Shdr& sh = shdrs[s.st_shndx];
      if (!(sh.sh_flags & SHF_ALLOC)) continue;
      Item it;
      it.symbol = std::string(s.name);
      it.key = correlation_name(s.name);
      it.func = s.type() == STT_FUNC;
      it.writable = sh.sh_flags & SHF_WRITE;
      it.size = s.st_size;
      if (sh.sh_type != SHT_NOBITS) {
        ByteView data = elf_->section_data(s.st_shndx);
        if (s.st_value <= data.size() && s.st_size <= data.size() - s.st_value) it.bytes = data.subspan(s.st_value, s.st_size);
      }
      if (auto r = relas_.find(s.st_shndx); r != relas_.end()) {
        for (const Elf64_Rela& rel : r->second) {
          if (rel.r_offset < s.st_value || rel.r_offset >= s.st_value + s.st_size) continue;
          u32 type = static_cast<u32>(ELF64_R_TYPE(rel.r_info));
          it.refs.push_back({rel.r_offset - s.st_value, type, describe(rel, type)});
        }
        std::sort(it.refs.begin(), it.refs.end(), [](const Reference& a, const Reference& b) { return a.offset < b.offset; });
      }
      out.push_back(std::move(it));
    }
    return out;
  }

 private:
  // What a relocation points at, independent of where the compiler laid
  // things out: a symbol by correlation name, a string by its content.
  std::string describe(const Elf64_Rela& rel, u32 type) const {
    size_t si = ELF64_R_SYM(rel.r_info);
    i64 addend = rel.r_addend;
    if (si >= syms_.size()) return fmt::format("symbol #{}", si);
    const ElfSymbol& s = syms_[si];
    // Named functions and data by name; a section symbol, or a local label
    // the assembler kept (".LC0" in a merged string section), by what is at
    // the place it points to.
    const bool by_place = s.type() == STT_SECTION || (s.bind() == STB_LOCAL && s.type() == STT_NOTYPE && s.defined());
    if (!by_place) {
      std::string name = s.bind() == STB_LOCAL ? correlation_name(s.name) : std::string(s.name);
      return name + signed_hex(addend);
    }
    if (s.type() != STT_SECTION) addend += static_cast<i64>(s.st_value);
    const auto& shdrs = elf_->sections();
    if (s.st_shndx == 0 || s.st_shndx >= shdrs.size()) return fmt::format("section #{}{}", s.st_shndx, signed_hex(addend));
    const Elf64_Shdr& sh = shdrs[s.st_shndx];
    i64 probe = addend + (pc_relative(type) ? 4 : 0);
    if (probe < 0) probe = 0;
    ByteView data = sh.sh_type == SHT_NOBITS ? ByteView{} : elf_->section_data(s.st_shndx);
    if ((sh.sh_flags & SHF_MERGE) && (sh.sh_flags & SHF_STRINGS) && static_cast<u64>(probe) < data.size()) {
      size_t start = static_cast<size_t>(probe);
      while (start > 0 && data[start - 1] != 0) --start;
      size_t end = start;
      while (end < data.size() && data[end] != 0) ++end;
      std::string text(reinterpret_cast<const char*>(data.data() + start), end - start);
      return fmt::format("\"{}\"{}", ElfFile::printable(text), signed_hex(addend - static_cast<i64>(start)));
    }
    // The symbol the reference lands in.
    const ElfSymbol* best = nullptr;
    if (auto b = by_section_.find(s.st_shndx); b != by_section_.end()) {
      for (size_t idx : b->second) {
        const ElfSymbol& c = syms_[idx];
        if (c.st_value <= static_cast<u64>(probe) && (!best || c.st_value > best->st_value)) best = &c;
      }
      if (!best) best = &syms_[b->second.front()];
    }
    if (best) {
      std::string name = best->bind() == STB_LOCAL ? correlation_name(best->name) : std::string(best->name);
      return name + signed_hex(addend - static_cast<i64>(best->st_value));
    }
    if ((sh.sh_flags & SHF_MERGE) && sh.sh_entsize > 0 && static_cast<u64>(probe) < data.size()) {
      size_t start = static_cast<size_t>(probe) / sh.sh_entsize * sh.sh_entsize;
      size_t len = std::min<size_t>(sh.sh_entsize, data.size() - start);
      return fmt::format("constant {}{}", to_hex(data.subspan(start, len)), signed_hex(addend - static_cast<i64>(start)));
    }
    // An anonymous section (a jump table): by name and content.
    std::string sname(elf_->section_name(s.st_shndx));
    return fmt::format("{}{} ({})", correlation_name(sname), signed_hex(addend),
                       std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(data.data()), data.size())));
  }

  std::optional<ElfFile> elf_;
  std::vector<ElfSymbol> syms_;
  std::map<size_t, std::vector<Elf64_Rela>> relas_;  // by the section they apply to
  std::map<size_t, std::vector<size_t>> by_section_;  // function and object symbols by section
};

u32 le32(ByteView b, size_t at) { return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<u32>(b[at + 3]) << 24; }

// nullopt: the same bytes but for moved line numbers; else the first offset
// that differs otherwise.
std::optional<size_t> differs_beyond_lines(ByteView a, ByteView b, const LineShift& shifted, bool& any_line) {
  size_t done = 0;  // bytes before this are accounted for
  for (size_t i = 0; i < a.size(); ++i) {
    if (i < done || a[i] == b[i]) continue;
    bool ok = false;
    for (size_t s = std::max(done, i >= 3 ? i - 3 : 0); s <= i && s + 4 <= a.size(); ++s) {
      u32 o = le32(a, s), n = le32(b, s);
      if (o != n && shifted && shifted(o, n)) {
        ok = true;
        done = s + 4;
        break;
      }
    }
    if (!ok) return i;
    any_line = true;
  }
  return std::nullopt;
}

// Why two versions of an item differ; "" when they do not (`line_only` set
// when they differ only in moved line numbers).
std::string difference(const Item& o, const Item& n, const LineShift& shifted, bool& line_only) {
  line_only = false;
  if (o.size != n.size) return fmt::format("size {:#x} -> {:#x}", o.size, n.size);
  if (o.refs != n.refs) {
    for (size_t i = 0; i < std::min(o.refs.size(), n.refs.size()); ++i) {
      if (o.refs[i] == n.refs[i]) continue;
      if (o.refs[i].offset != n.refs[i].offset) return fmt::format("references move (+{:#x} -> +{:#x})", o.refs[i].offset, n.refs[i].offset);
      return fmt::format("the reference at +{:#x} is to {} (was {})", n.refs[i].offset, n.refs[i].target, o.refs[i].target);
    }
    return fmt::format("{} references (was {})", n.refs.size(), o.refs.size());
  }
  if (o.bytes.size() != n.bytes.size()) return "contents differ";
  bool any_line = false;
  if (auto at = differs_beyond_lines(o.bytes, n.bytes, shifted, any_line)) return fmt::format("bytes differ at +{:#x}", *at);
  line_only = any_line;
  return "";
}

// Pairs the items of one correlation name: identical ones first, then the
// rest in symbol order.
void pair_group(const std::vector<const Item*>& olds, const std::vector<const Item*>& news,
                std::vector<std::pair<const Item*, const Item*>>& pairs, std::vector<const Item*>& only_old,
                std::vector<const Item*>& only_new) {
  std::vector<bool> used_old(olds.size()), used_new(news.size());
  if (olds.size() > 1 || news.size() > 1) {
    for (size_t j = 0; j < news.size(); ++j) {
      for (size_t i = 0; i < olds.size(); ++i) {
        if (used_old[i] || olds[i]->size != news[j]->size || olds[i]->refs != news[j]->refs) continue;
        if (!std::equal(olds[i]->bytes.begin(), olds[i]->bytes.end(), news[j]->bytes.begin(), news[j]->bytes.end())) continue;
        used_old[i] = used_new[j] = true;
        pairs.emplace_back(olds[i], news[j]);
        break;
      }
    }
  }
  size_t i = 0;
  for (size_t j = 0; j < news.size(); ++j) {
    if (used_new[j]) continue;
    while (i < olds.size() && used_old[i]) ++i;
    if (i < olds.size()) {
      used_old[i] = true;
      pairs.emplace_back(olds[i], news[j]);
    } else {
      only_new.push_back(news[j]);
    }
  }
  for (size_t k = 0; k < olds.size(); ++k)
    if (!used_old[k]) only_old.push_back(olds[k]);
}

bool compiler_data(std::string_view key) {
  return key == "__func__" || key == "__FUNCTION__" || key == "__PRETTY_FUNCTION__";
}

}  // namespace

std::string correlation_name(std::string_view symbol) {
  size_t dot = symbol.find('.', 1);
  if (dot == std::string_view::npos) return std::string(symbol);
  std::string out(symbol.substr(0, dot));
  std::string_view rest = symbol.substr(dot + 1);
  while (!rest.empty()) {
    size_t next = rest.find('.');
    std::string_view part = rest.substr(0, next);
    if (!all_digits(part)) out += "." + std::string(part);
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  return out;
}

const char* status_name(FuncStatus s) {
  switch (s) {
    case FuncStatus::Changed: return "changed";
    case FuncStatus::New: return "new";
    case FuncStatus::Removed: return "removed";
    case FuncStatus::Refused: return "refused";
  }
  return "?";
}

Result<ObjectDiff> compare_objects(const std::string& original, const std::string& patched, const LineShift& shifted) {
  Object np = HS_TRY(Object::open(patched));
  std::optional<Object> op;
  if (!original.empty()) op.emplace(HS_TRY(Object::open(original)));
  const std::vector<Item> new_items = np.items();
  const std::vector<Item> old_items = op ? op->items() : std::vector<Item>{};

  std::map<std::string, std::vector<const Item*>> old_groups, new_groups;
  std::vector<std::string> order;  // correlation names, patched object's symbol order first
  for (const Item& it : new_items) {
    if (new_groups[it.key].empty()) order.push_back(it.key);
    new_groups[it.key].push_back(&it);
  }
  for (const Item& it : old_items) {
    if (!new_groups.count(it.key) && old_groups[it.key].empty()) order.push_back(it.key);
    old_groups[it.key].push_back(&it);
  }

  ObjectDiff diff;
  auto add = [&](FuncDiff d) {
    // A cold part stands for its function.
    if (d.name.ends_with(".cold") && !d.data) {
      d.reason = fmt::format("its cold part {} {}", d.symbol, d.status == FuncStatus::New ? "is new" : "changed: " + d.reason);
      d.name.resize(d.name.size() - 5);
      d.symbol = d.name;
      if (d.status != FuncStatus::Removed) d.status = FuncStatus::Changed;
      for (const FuncDiff& e : diff.funcs)
        if (e.name == d.name && !e.data) return;
    }
    diff.funcs.push_back(std::move(d));
  };
  for (const std::string& key : order) {
    std::vector<std::pair<const Item*, const Item*>> pairs;
    std::vector<const Item*> only_old, only_new;
    pair_group(old_groups[key], new_groups[key], pairs, only_old, only_new);
    for (const auto& [o, n] : pairs) {
      if (o->func != n->func) {
        add({key, n->symbol, FuncStatus::Refused, "a function in one version and data in the other", !n->func});
        continue;
      }
      bool line_only = false;
      std::string why = difference(*o, *n, shifted, line_only);
      if (n->func) {
        ++diff.compared;
        if (line_only) diff.line_only.push_back(n->symbol);
        if (!why.empty()) add({key, n->symbol, FuncStatus::Changed, why, false});
      } else if (!why.empty() && !compiler_data(key)) {
        add({key, n->symbol, FuncStatus::Refused,
             n->writable ? "its initial value changed (the running process keeps its own value)"
                         : "read-only data changed (not supported yet)",
             true});
      }
    }
    for (const Item* n : only_new) {
      if (!n->func && compiler_data(key)) continue;
      add({key, n->symbol, FuncStatus::New, "", !n->func});
    }
    for (const Item* o : only_old) {
      if (o->func) add({key, o->symbol, FuncStatus::Removed, "not in the patched object (inlined or deleted)", false});
    }
  }
  return diff;
}

}  // namespace hs
