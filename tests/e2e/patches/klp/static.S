/* klp/static.S: replaces klp_app's compute() with one that calls the
 * target's static helper() and reads its static `scale` through Linux
 * livepatch symbols (the kernel's "Livepatch module ELF format"):
 * compute(v) = helper(v) * 10 + scale, i.e. 63 for v = 2 at scale 3
 * (the original says 7).
 *
 * Written in assembler so the symbol names are exactly the document's
 * ".klp.sym.<object>.<name>,<pos>". `hotsplice build` assembles and links it
 * (the references are ordinary undefined symbols then); klp_convert()
 * (tests/support/klp_form.h) turns them into SHN_LIVEPATCH symbols and moves
 * their relocations into ".klp.rela.klp_app..text.fixed_compute".
 *
 * -DHELPER=... / -DSCALE=... (quoted symbol names) change the references,
 * for the refusals klp_test.cc checks.
 *
 * target: klp_app
 */
#ifndef HELPER
#define HELPER ".klp.sym.klp_app.helper,0"
#endif
#ifndef SCALE
#define SCALE ".klp.sym.klp_app.scale,0"
#endif

	.section .text.fixed_compute,"ax",@progbits
	.p2align 4
	.type fixed_compute, @function
fixed_compute:
	.cfi_startproc
	pushq %rbx
	.cfi_def_cfa_offset 16
	.cfi_offset %rbx, -16
	call HELPER                 /* R_X86_64_PLT32, v still in %edi */
	imull $10, %eax, %ebx
	movl SCALE(%rip), %eax      /* R_X86_64_PC32 */
	addl %ebx, %eax
	popq %rbx
	.cfi_def_cfa_offset 8
	ret
	.cfi_endproc
	.size fixed_compute, .-fixed_compute

	.section .rodata.str1.1,"aMS",@progbits,1
.Lname:
	.string "compute"

/* struct livepatch_func (include/hotsplice/livepatch.h): name, new_addr,
 * old_addr, new_size, old_size (0: the builder fills them), version 2,
 * _pad[39], expect (off). */
	.section .livepatch.funcs,"aw",@progbits
	.p2align 3
	.quad .Lname
	.quad fixed_compute
	.quad 0
	.long 0, 0
	.byte 2
	.zero 39
	.zero 32

	.section .note.GNU-stack,"",@progbits
