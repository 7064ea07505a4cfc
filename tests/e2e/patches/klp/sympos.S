/* klp/sympos.S: replaces klp_app's pick() with one that reads the second
 * static `tally` (klp_b.c's, 200) as ".klp.sym.klp_app.tally,2" and calls
 * the first static twin() (klp_a.c's, returns its tally, 100) as
 * ".klp.sym.klp_app.twin,1": pick() = 200 * 1000 + 100 = 200100 (the
 * original says 300; positions swapped would say 100200).
 *
 * -DTALLY=... / -DTWIN=... change the references (klp_test.cc's refusals).
 *
 * target: klp_app
 */
#ifndef TALLY
#define TALLY ".klp.sym.klp_app.tally,2"
#endif
#ifndef TWIN
#define TWIN ".klp.sym.klp_app.twin,1"
#endif

	.section .text.fixed_pick,"ax",@progbits
	.p2align 4
	.type fixed_pick, @function
fixed_pick:
	.cfi_startproc
	pushq %rbx
	.cfi_def_cfa_offset 16
	.cfi_offset %rbx, -16
	imull $1000, TALLY(%rip), %ebx
	call TWIN
	addl %ebx, %eax
	popq %rbx
	.cfi_def_cfa_offset 8
	ret
	.cfi_endproc
	.size fixed_pick, .-fixed_pick

	.section .rodata.str1.1,"aMS",@progbits,1
.Lname:
	.string "pick"

	.section .livepatch.funcs,"aw",@progbits
	.p2align 3
	.quad .Lname
	.quad fixed_pick
	.quad 0
	.long 0, 0
	.byte 2
	.zero 39
	.zero 32

	.section .note.GNU-stack,"",@progbits
