// A mutation fuzzer for the payload path: ElfFile::create -> Payload::parse
// -> image_size -> link_payload, which is everything an untrusted payload
// file reaches before a process is touched.
//
// The corpus is real payloads built by the builder from tests/e2e/patches
// against tests/e2e/targets. Mutations know the ELF layout: besides random
// bytes, they overwrite header fields, section header fields, symbols,
// relocations, notes and livepatch_func fields with boundary values, and
// truncate or splice. Every input must end in a value or in an Error whose
// message is one non-empty line; a crash, a sanitizer report or a
// multi-line message is a failure.
//
// usage: payload_fuzz ITERATIONS SEED PAYLOAD...
//   (tests/fuzz/run.sh builds it with AddressSanitizer + UBSan and runs it long)
#include <elf.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "payload/loader.h"
#include "payload/payload.h"
#include "support/file.h"

using namespace hs;

namespace {

// Resolves everything to a fixed address near the payload, so relocation
// code paths run as they would against a real target.
class FakeResolver final : public SymbolResolver {
 public:
  Result<TargetSymbol> resolve_symbol(std::string_view name) override {
    if (name.size() % 3 == 0) return fail(ErrorKind::BadTarget, "unresolved symbol '{}'", name);
    return TargetSymbol{RemoteAddr(0x7f0000100000 + name.size() * 64), 64, "fake", STT_FUNC};
  }
  Result<TargetSymbol> resolve_function(std::string_view name) override {
    return TargetSymbol{RemoteAddr(0x7f0000200000 + name.size() * 256), 256, "fake", STT_FUNC};
  }
};

constexpr u64 kInteresting[] = {0,          1,          2,          3,          4,          7,
                                8,          0x10,       0x18,       0x40,       0x68,       0x7f,
                                0x80,       0xff,       0x100,      0x1000,     0x7fff,     0x8000,
                                0xffff,     0x10000,    0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
                                ~u64{0},    ~u64{0} - 1, 1ull << 62, 1ull << 63,
                                0xff20 /* SHN_LIVEPATCH */, 0x100042 /* SHF_RELA_LIVEPATCH|SHF_INFO_LINK|SHF_ALLOC */};

struct Fuzzer {
  std::mt19937_64 rng;
  std::vector<Bytes> corpus;
  u64 accepted = 0, rejected = 0, linked = 0;

  u64 pick(u64 n) { return n ? rng() % n : 0; }
  u64 interesting(u64 size) {
    u64 r = pick(std::size(kInteresting) + 3);
    if (r < std::size(kInteresting)) return kInteresting[r];
    if (r == std::size(kInteresting)) return size;
    if (r == std::size(kInteresting) + 1) return size + 1;
    return size - 1;
  }

  template <class T>
  void put(Bytes& b, u64 off, T v) {
    if (off <= b.size() && sizeof(T) <= b.size() - off) store_le<T>(b.data() + off, v);
  }
  template <class T>
  T get(const Bytes& b, u64 off) {
    if (off <= b.size() && sizeof(T) <= b.size() - off) return load_le<T>(b.data() + off);
    return T{};
  }

  // Overwrite a field of width 1/2/4/8 at `off` with a boundary value.
  void poke_field(Bytes& b, u64 off, unsigned width) {
    u64 v = interesting(b.size());
    if (pick(4) == 0) v = get<u64>(b, off) + (pick(2) ? 1 : -1);
    switch (width) {
      case 1: put<u8>(b, off, static_cast<u8>(v)); break;
      case 2: put<u16>(b, off, static_cast<u16>(v)); break;
      case 4: put<u32>(b, off, static_cast<u32>(v)); break;
      default: put<u64>(b, off, v); break;
    }
  }

  void mutate(Bytes& b) {
    if (b.size() < sizeof(Elf64_Ehdr)) {
      if (!b.empty()) b[pick(b.size())] ^= static_cast<u8>(1u << pick(8));
      return;
    }
    auto eh = load_le<Elf64_Ehdr>(b.data());
    u64 shnum = eh.e_shnum;
    auto shdr_at = [&](u64 i) { return eh.e_shoff + i * sizeof(Elf64_Shdr); };
    switch (pick(10)) {
      case 0: {  // random bytes
        for (u64 n = 1 + pick(8); n--;) b[pick(b.size())] = static_cast<u8>(rng());
        break;
      }
      case 1: {  // an ELF header field
        static constexpr std::pair<u64, unsigned> fields[] = {
            {EI_CLASS, 1}, {EI_DATA, 1}, {EI_VERSION, 1}, {EI_OSABI, 1}, {16, 2}, {18, 2}, {20, 4}, {24, 8},
            {32, 8},       {40, 8},      {48, 4},         {52, 2},       {54, 2}, {56, 2}, {58, 2}, {60, 2}, {62, 2}};
        auto [off, w] = fields[pick(std::size(fields))];
        poke_field(b, off, w);
        break;
      }
      case 2:
      case 3: {  // a section header field
        if (!shnum) break;
        static constexpr std::pair<u64, unsigned> fields[] = {{0, 4},  {4, 4},  {8, 8},  {16, 8}, {24, 8},
                                                              {32, 8}, {40, 4}, {44, 4}, {48, 8}, {56, 8}};
        auto [off, w] = fields[pick(std::size(fields))];
        poke_field(b, shdr_at(pick(shnum)) + off, w);
        break;
      }
      case 4:
      case 5: {  // inside a section's data: symbols, relocations, notes, funcs
        if (!shnum) break;
        u64 i = pick(shnum);
        u64 off = get<u64>(b, shdr_at(i) + 24), size = get<u64>(b, shdr_at(i) + 32);
        u64 ent = get<u64>(b, shdr_at(i) + 56);
        if (!size || off > b.size()) break;
        u64 at = off + pick(size);
        if (ent >= 8) at = off + pick(size / ent) * ent + 8 * pick(ent / 8);
        poke_field(b, at, pick(2) ? 8 : (pick(2) ? 4 : 1));
        break;
      }
      case 6: {  // a livepatch_func field
        for (u64 i = 0; i < shnum; i++) {
          u64 name = get<u32>(b, shdr_at(i));
          u64 strtab = shdr_at(eh.e_shstrndx);
          u64 name_at = get<u64>(b, strtab + 24) + name;
          if (name_at < b.size() && std::strncmp(reinterpret_cast<const char*>(b.data() + name_at), ".livepatch.funcs",
                                                 std::min<u64>(17, b.size() - name_at)) == 0) {
            u64 off = get<u64>(b, shdr_at(i) + 24), size = get<u64>(b, shdr_at(i) + 32);
            if (size < 104) break;
            static constexpr std::pair<u64, unsigned> fields[] = {{24, 4}, {28, 4}, {32, 1}, {33, 1},
                                                                  {71, 1}, {72, 1}, {73, 1}, {8, 8}, {16, 8}};
            auto [f, w] = fields[pick(std::size(fields))];
            poke_field(b, off + pick(size / 104) * 104 + f, w);
            break;
          }
        }
        break;
      }
      case 7:  // truncate
        b.resize(pick(b.size()));
        break;
      case 8: {  // splice a chunk from elsewhere (this file or another)
        const Bytes& other = corpus[pick(corpus.size())];
        if (other.empty()) break;
        u64 len = 1 + pick(std::min<u64>(64, other.size()));
        u64 from = pick(other.size() - len + 1), to = pick(b.size());
        for (u64 k = 0; k < len && to + k < b.size(); k++) b[to + k] = other[from + k];
        break;
      }
      default: {  // several at once
        for (u64 n = 2 + pick(3); n--;) {
          if (b.size() < sizeof(Elf64_Ehdr)) break;
          mutate_one_field(b);
        }
      }
    }
  }
  void mutate_one_field(Bytes& b) { poke_field(b, pick(b.size()) & ~u64{7}, 8); }

  // Runs one input through everything a payload reaches. Returns false on a
  // malformed error message.
  bool run(Bytes input) {
    auto check = [&](const Error& e) {
      rejected++;
      const std::string& m = e.message();
      if (m.empty() || m.find('\n') != std::string::npos) {
        std::fprintf(stderr, "bad error message: '%s'\n", m.c_str());
        return false;
      }
      return true;
    };
    auto elf = ElfFile::create(std::move(input));
    if (!elf) return check(elf.error());
    auto p = Payload::parse(std::move(*elf), "fuzz.lp");
    if (!p) return check(p.error());
    accepted++;
    auto size = image_size(*p);
    if (!size) return check(size.error());
    FakeResolver resolver;
    auto linked_payload = link_payload(*p, RemoteAddr(0x7f0000000000), resolver);
    if (!linked_payload) return check(linked_payload.error());
    if (linked_payload->image.size() != *size) {
      std::fprintf(stderr, "image is %zu bytes, image_size() said %llu\n", linked_payload->image.size(),
                   static_cast<unsigned long long>(*size));
      return false;
    }
    linked++;
    return true;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ITERATIONS SEED PAYLOAD...\n", argv[0]);
    return 64;
  }
  u64 iterations = std::stoull(argv[1]);
  Fuzzer f;
  f.rng.seed(std::stoull(argv[2]));
  for (int i = 3; i < argc; i++) {
    auto b = read_whole_file(argv[i]);
    if (!b) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 1;
    }
    // Every corpus file must be a valid payload to begin with.
    if (!f.run(*b) || f.accepted != static_cast<u64>(i - 2)) {
      std::fprintf(stderr, "corpus file %s is not a valid payload\n", argv[i]);
      return 1;
    }
    f.corpus.push_back(std::move(*b));
  }
  for (u64 n = 0; n < iterations; n++) {
    Bytes b = f.corpus[f.pick(f.corpus.size())];
    for (u64 k = 1 + f.pick(3); k--;) f.mutate(b);
    if (!f.run(std::move(b))) {
      std::fprintf(stderr, "failed at iteration %llu\n", static_cast<unsigned long long>(n));
      return 1;
    }
  }
  std::printf("payload_fuzz: %llu inputs, %llu parsed, %llu linked, %llu rejected with one-line errors\n",
              static_cast<unsigned long long>(iterations), static_cast<unsigned long long>(f.accepted),
              static_cast<unsigned long long>(f.linked), static_cast<unsigned long long>(f.rejected));
  return 0;
}
