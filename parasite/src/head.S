/*
 * Entry stub, placed at offset 0 by blob.lds. The injector sets rip here, rdi to the
 * command area and rsp to the 16-byte aligned top of the parasite stack, and waits for
 * the int3: one command per run, so the target is never left running our code.
 */
	.section .head.text, "ax"
	.globl	__export_head
	.hidden	__export_head
__export_head:
	call	parasite_main
	int3
	.globl	__export_end_trap
	.hidden	__export_end_trap
__export_end_trap:
	.section .note.GNU-stack, "", @progbits
