/* klp/lib.S: replaces klp_app's via_lib() with one that reaches into the
 * shared library libklp_lib.so: it calls its static lib_mix() (v + secret)
 * as ".klp.sym.libklp_lib.so.lib_mix,0" and reads its static lib_secret
 * through a GOT slot the loader builds, as
 * ".klp.sym.libklp_lib.so.lib_secret,0":
 * via_lib(v) = lib_mix(v) + lib_secret * 100, i.e. 4243 for v = 1 (the
 * original says 43). The library is mapped far from klp_app, so the call
 * goes through a veneer and the variable through the GOT.
 * The relocations end up in ".klp.rela.libklp_lib.so..text.fixed_via_lib".
 * (gas takes no @GOTPCREL after a quoted name: an alias stands for it, and
 * the relocation names the symbol it stands for.)
 *
 * target: klp_app
 */
	.set lib_secret_ref, ".klp.sym.libklp_lib.so.lib_secret,0"

	.section .text.fixed_via_lib,"ax",@progbits
	.p2align 4
	.type fixed_via_lib, @function
fixed_via_lib:
	.cfi_startproc
	pushq %rbx
	.cfi_def_cfa_offset 16
	.cfi_offset %rbx, -16
	call ".klp.sym.libklp_lib.so.lib_mix,0"
	movl %eax, %ebx
	movq lib_secret_ref@GOTPCREL(%rip), %rax
	imull $100, (%rax), %eax
	addl %ebx, %eax
	popq %rbx
	.cfi_def_cfa_offset 8
	ret
	.cfi_endproc
	.size fixed_via_lib, .-fixed_via_lib

	.section .rodata.str1.1,"aMS",@progbits,1
.Lname:
	.string "via_lib"

	.section .livepatch.funcs,"aw",@progbits
	.p2align 3
	.quad .Lname
	.quad fixed_via_lib
	.quad 0
	.long 0, 0
	.byte 2
	.zero 39
	.zero 32

	.section .note.GNU-stack,"",@progbits
