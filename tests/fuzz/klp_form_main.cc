// klp_form IN OUT OBJECT...: rewrites the payload IN (built by `hotsplice
// build` from a patch with ".klp.sym.<object>.<name>,<pos>" references) into
// the Linux livepatch ELF form (tests/support/klp_form.h) and writes OUT;
// OBJECTs are the object names the references may start with. corpus.sh
// uses it to put a payload of that form in the fuzz corpus.
#include <cstdio>
#include <fstream>
#include <iterator>

#include "support/klp_form.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: klp_form IN OUT OBJECT...\n");
    return 2;
  }
  hs::test::KlpConvert conv;
  for (int i = 3; i < argc; ++i) conv.objects.emplace_back(argv[i]);
  std::ifstream in(argv[1], std::ios::binary);
  const hs::Bytes bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!in.good() && !in.eof()) {
    std::fprintf(stderr, "klp_form: cannot read %s\n", argv[1]);
    return 1;
  }
  auto out = hs::test::klp_convert(bytes, conv);
  if (!out) {
    std::fprintf(stderr, "klp_form: %s\n", out.error().message().c_str());
    return 1;
  }
  std::ofstream o(argv[2], std::ios::binary);
  o.write(reinterpret_cast<const char*>(out->data()), static_cast<std::streamsize>(out->size()));
  if (!o) {
    std::fprintf(stderr, "klp_form: cannot write %s\n", argv[2]);
    return 1;
  }
  return 0;
}
