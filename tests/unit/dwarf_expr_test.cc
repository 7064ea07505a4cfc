// Unit tests of the DWARF expression evaluator the activeness check uses for
// CFI rules (engine/dwarf_expr.h): real DW_OP sequences over fake registers
// and a fake memory, and the ones it must refuse rather than guess.
#include <dwarf.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <vector>

#include "engine/dwarf_expr.h"

namespace hs {
namespace {

Dwarf_Op op(u8 atom, u64 number = 0, u64 number2 = 0) {
  Dwarf_Op o{};
  o.atom = atom;
  o.number = number;
  o.number2 = number2;
  return o;
}

// Registers rsp (7) and rbp (6) are known; memory holds a few words.
struct Fake {
  std::map<unsigned, u64> regs{{7, 0x7ffe0000}, {6, 0x7ffe0040}};
  std::map<u64, u64> words{{0x7ffe0008, 0x401234}, {0x7ffe0040, 0x7ffe0100}};
  std::vector<u64> reads;

  std::optional<DwarfValue> eval(std::vector<Dwarf_Op> ops, std::optional<u64> cfa = std::nullopt) {
    return eval_dwarf_expr(
        ops, cfa,
        [this](unsigned r) -> std::optional<u64> {
          auto it = regs.find(r);
          if (it == regs.end()) return std::nullopt;
          return it->second;
        },
        [this](u64 a) -> std::optional<u64> {
          reads.push_back(a);
          auto it = words.find(a);
          if (it == words.end()) return std::nullopt;
          return it->second;
        });
  }
};

TEST(DwarfExpr, BregGivesRegisterPlusOffsetAsAnAddress) {
  Fake f;
  auto v = f.eval({op(DW_OP_breg7, 8)});  // rsp + 8
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->value, 0x7ffe0008u);
  EXPECT_FALSE(v->is_value);
  auto neg = f.eval({op(DW_OP_breg6, static_cast<u64>(-16))});  // rbp - 16
  ASSERT_TRUE(neg.has_value());
  EXPECT_EQ(neg->value, 0x7ffe0030u);
}

TEST(DwarfExpr, BregxTakesTheRegisterFromItsOperand) {
  Fake f;
  auto v = f.eval({op(DW_OP_bregx, 7, 16)});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->value, 0x7ffe0010u);
}

TEST(DwarfExpr, PlusUconstAndArithmetic) {
  Fake f;
  auto v = f.eval({op(DW_OP_breg7, 0), op(DW_OP_plus_uconst, 0x20)});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->value, 0x7ffe0020u);
  // ((0x10 - 3) * 2) >> 1 | 0x100 = 0x10d: the second entry is the left
  // operand.
  auto a = f.eval({op(DW_OP_constu, 0x10), op(DW_OP_lit3), op(DW_OP_minus), op(DW_OP_lit2), op(DW_OP_mul),
                   op(DW_OP_lit1), op(DW_OP_shr), op(DW_OP_const2u, 0x100), op(DW_OP_or)});
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->value, 0x10du);
  auto shift = f.eval({op(DW_OP_lit1), op(DW_OP_const1u, 64), op(DW_OP_shl)});
  ASSERT_TRUE(shift.has_value());
  EXPECT_EQ(shift->value, 0u) << "a shift by 64 or more gives 0, not undefined behaviour";
}

TEST(DwarfExpr, ComparisonsAreSigned) {
  Fake f;
  auto lt = f.eval({op(DW_OP_consts, static_cast<u64>(-1)), op(DW_OP_lit0), op(DW_OP_lt)});
  ASSERT_TRUE(lt.has_value());
  EXPECT_EQ(lt->value, 1u);
  auto ge = f.eval({op(DW_OP_lit5), op(DW_OP_lit5), op(DW_OP_ge)});
  ASSERT_TRUE(ge.has_value());
  EXPECT_EQ(ge->value, 1u);
  auto ne = f.eval({op(DW_OP_lit5), op(DW_OP_lit5), op(DW_OP_ne)});
  ASSERT_TRUE(ne.has_value());
  EXPECT_EQ(ne->value, 0u);
}

TEST(DwarfExpr, DerefReadsTargetMemory) {
  Fake f;
  // The saved return address at rsp + 8, as a value.
  auto v = f.eval({op(DW_OP_breg7, 8), op(DW_OP_deref), op(DW_OP_stack_value)});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->value, 0x401234u);
  EXPECT_TRUE(v->is_value);
  EXPECT_EQ(f.reads, std::vector<u64>{0x7ffe0008});
}

TEST(DwarfExpr, CallFrameCfaPushesTheGivenCfa) {
  Fake f;
  auto v = f.eval({op(DW_OP_call_frame_cfa), op(DW_OP_lit16), op(DW_OP_minus)}, 0x7ffe0050);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->value, 0x7ffe0040u);
  EXPECT_FALSE(f.eval({op(DW_OP_call_frame_cfa)}).has_value()) << "no CFA while the CFA itself is computed";
}

TEST(DwarfExpr, DupAndNop) {
  Fake f;
  auto v = f.eval({op(DW_OP_lit7), op(DW_OP_nop), op(DW_OP_dup), op(DW_OP_plus)});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->value, 14u);
}

TEST(DwarfExpr, UnknownRegisterOrUnreadableMemoryIsRefused) {
  Fake f;
  EXPECT_FALSE(f.eval({op(DW_OP_breg3, 0)}).has_value());
  EXPECT_FALSE(f.eval({op(DW_OP_bregx, 12, 0)}).has_value());
  EXPECT_FALSE(f.eval({op(DW_OP_lit0), op(DW_OP_deref)}).has_value());
}

TEST(DwarfExpr, MalformedExpressionsAreRefused) {
  Fake f;
  EXPECT_FALSE(f.eval({}).has_value()) << "nothing on the stack";
  EXPECT_FALSE(f.eval({op(DW_OP_plus_uconst, 8)}).has_value());
  EXPECT_FALSE(f.eval({op(DW_OP_lit1), op(DW_OP_plus)}).has_value());
  EXPECT_FALSE(f.eval({op(DW_OP_dup)}).has_value());
  EXPECT_FALSE(f.eval({op(DW_OP_deref)}).has_value());
  EXPECT_FALSE(f.eval({op(DW_OP_lit1), op(DW_OP_stack_value), op(DW_OP_lit2)}).has_value())
      << "stack_value must end the expression";
}

TEST(DwarfExpr, OperationsCfiDoesNotUseAreRefused) {
  Fake f;
  for (u8 atom : {DW_OP_addr, DW_OP_reg7, DW_OP_regx, DW_OP_fbreg, DW_OP_piece, DW_OP_bra, DW_OP_skip,
                  DW_OP_deref_size, DW_OP_swap, DW_OP_drop, DW_OP_over, DW_OP_pick, DW_OP_not, DW_OP_neg,
                  DW_OP_abs, DW_OP_div, DW_OP_mod, DW_OP_entry_value}) {
    SCOPED_TRACE(static_cast<int>(atom));
    EXPECT_FALSE(f.eval({op(DW_OP_lit8), op(DW_OP_lit4), op(atom, 0)}).has_value());
  }
}

}  // namespace
}  // namespace hs
