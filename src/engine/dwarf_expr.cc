// The DWARF expression evaluator for call-frame rules: see dwarf_expr.h.
#include "engine/dwarf_expr.h"

#include <dwarf.h>

#include <vector>

namespace hs {

namespace {

// The binary operators: x is the second entry of the stack, b the top.
u64 binary(u8 atom, u64 x, u64 b) {
  const i64 sx = static_cast<i64>(x), sb = static_cast<i64>(b);
  switch (atom) {
    case DW_OP_plus: return x + b;
    case DW_OP_minus: return x - b;
    case DW_OP_mul: return x * b;
    case DW_OP_and: return x & b;
    case DW_OP_or: return x | b;
    case DW_OP_xor: return x ^ b;
    case DW_OP_shl: return b < 64 ? x << b : 0;
    case DW_OP_shr: return b < 64 ? x >> b : 0;
    case DW_OP_ge: return sx >= sb;
    case DW_OP_gt: return sx > sb;
    case DW_OP_le: return sx <= sb;
    case DW_OP_lt: return sx < sb;
    case DW_OP_eq: return sx == sb;
    case DW_OP_ne: return sx != sb;
  }
  return 0;  // not reached: the caller passes only these
}

}  // namespace

std::optional<DwarfValue> eval_dwarf_expr(std::span<const Dwarf_Op> ops, std::optional<u64> cfa,
                                          const DwarfRegReader& reg, const DwarfMemReader& mem) {
  std::vector<u64> st;
  bool is_value = false;
  auto pop = [&]() -> std::optional<u64> {
    if (st.empty()) return std::nullopt;
    const u64 v = st.back();
    st.pop_back();
    return v;
  };
  for (size_t i = 0; i < ops.size(); i++) {
    const Dwarf_Op& op = ops[i];
    const u8 a = op.atom;
    if (a >= DW_OP_lit0 && a <= DW_OP_lit31) {
      st.push_back(a - DW_OP_lit0);
      continue;
    }
    if (a >= DW_OP_breg0 && a <= DW_OP_breg31) {
      const auto r = reg(a - DW_OP_breg0);
      if (!r) return std::nullopt;
      st.push_back(*r + op.number);
      continue;
    }
    switch (a) {
      case DW_OP_const1u: case DW_OP_const1s: case DW_OP_const2u: case DW_OP_const2s:
      case DW_OP_const4u: case DW_OP_const4s: case DW_OP_const8u: case DW_OP_const8s:
      case DW_OP_constu: case DW_OP_consts:
        st.push_back(op.number);
        break;
      case DW_OP_bregx: {
        const auto r = reg(static_cast<unsigned>(op.number));
        if (!r) return std::nullopt;
        st.push_back(*r + op.number2);
        break;
      }
      case DW_OP_call_frame_cfa:
        if (!cfa) return std::nullopt;
        st.push_back(*cfa);
        break;
      case DW_OP_plus_uconst:
        if (st.empty()) return std::nullopt;
        st.back() += op.number;
        break;
      case DW_OP_dup:
        if (st.empty()) return std::nullopt;
        st.push_back(st.back());
        break;
      case DW_OP_deref: {
        const auto addr = pop();
        if (!addr) return std::nullopt;
        const auto v = mem(*addr);
        if (!v) return std::nullopt;
        st.push_back(*v);
        break;
      }
      case DW_OP_plus: case DW_OP_minus: case DW_OP_mul: case DW_OP_and: case DW_OP_or: case DW_OP_xor:
      case DW_OP_shl: case DW_OP_shr: case DW_OP_ge: case DW_OP_gt: case DW_OP_le: case DW_OP_lt:
      case DW_OP_eq: case DW_OP_ne: {
        const auto b = pop(), x = pop();
        if (!b || !x) return std::nullopt;
        st.push_back(binary(a, *x, *b));
        break;
      }
      case DW_OP_nop:
        break;
      case DW_OP_stack_value:
        if (i + 1 != ops.size()) return std::nullopt;
        is_value = true;
        break;
      default:
        return std::nullopt;  // not used by CFI in practice: do not guess
    }
  }
  const auto top = pop();
  if (!top) return std::nullopt;
  return DwarfValue{*top, is_value};
}

}  // namespace hs
