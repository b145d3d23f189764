/*
 * Restorer entry points. hactl jumps to __export_rst_entry with rdi = struct rst_args
 * and rsp already on the leader's restorer stack. New threads come out of clone3 in
 * rst_clone3 below with their own stack and go to rst_thread_main(args, index).
 */
	.section .head.text, "ax"
	.globl	__export_rst_entry
	.hidden	__export_rst_entry
__export_rst_entry:
	call	restorer_main
	ud2

/*
 * long rst_clone3(struct clone_args *ca, size_t size, void *args, long index)
 * The child starts with the parent's registers but its own rsp: keep what it needs in
 * callee-saved registers, because after the syscall it has no stack frame to return to.
 */
	.text
	.globl	rst_clone3
	.hidden	rst_clone3
rst_clone3:
	push	%r12
	push	%r13
	mov	%rdx, %r12
	mov	%rcx, %r13
	mov	$435, %eax		/* __NR_clone3 */
	syscall
	test	%rax, %rax
	jz	1f
	pop	%r13
	pop	%r12
	ret
1:	mov	%r12, %rdi
	mov	%r13, %rsi
	call	rst_thread_main
	ud2
	.section .note.GNU-stack, "", @progbits
