/*
 * blobgen: turn a freestanding blob ELF (linked at 0 with --emit-relocs) into C.
 *
 * Output: `const struct ha_blob ha_blob_NAME` (the flat image, its in-memory size with
 * .bss, and the offsets of 64-bit words that need the load base added) and a header with
 * HA_BLOB_NAME_SYM offsets for every `__export_sym` symbol.
 *
 * Why check relocations at all: the blob runs at whatever address mmap gives us inside the
 * target. PC-relative references are already right; absolute 64-bit words are fixed by the
 * injector; anything else (32-bit absolute, GOT entries) would silently point into nowhere,
 * so the build fails here, naming the relocation, instead of crashing a victim later.
 */
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "ha_blobgen";

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				die("out of memory reading %s", path);
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r);
	fclose(f);
	*len = n;
	return buf;
}

static int pc_relative(unsigned type)
{
	switch (type) {
	case R_X86_64_NONE:
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
	case R_X86_64_PC64:
	case R_X86_64_PC16:
	case R_X86_64_PC8:
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *elf_path, *name, *c_path, *h_path;
	unsigned char *img = NULL, *f;
	uint64_t *relocs = NULL;
	size_t flen, nr_relocs = 0, file_size = 0, mem_size = 0;
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh;
	const char *shstr;
	FILE *c, *h;
	char uname[64];

	if (argc != 5) {
		fprintf(stderr, "usage: %s BLOB.elf NAME OUT.c OUT.h\n", prog);
		return 64;
	}
	elf_path = argv[1], name = argv[2], c_path = argv[3], h_path = argv[4];
	if (strlen(name) >= sizeof(uname))
		die("blob name %s too long", name);
	for (size_t i = 0; name[i]; i++)
		uname[i] = toupper((unsigned char)name[i]), uname[i + 1] = 0;

	f = slurp(elf_path, &flen);
	eh = (Elf64_Ehdr *)f;
	if (flen < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64)
		die("%s: not an x86-64 ELF64 file", elf_path);
	if (eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > flen || eh->e_shstrndx >= eh->e_shnum)
		die("%s: section table out of bounds", elf_path);
	sh = (Elf64_Shdr *)(f + eh->e_shoff);
	shstr = (const char *)f + sh[eh->e_shstrndx].sh_offset;

	/* Pass 1: the flat image is every SHF_ALLOC section at its address. */
	for (int i = 0; i < eh->e_shnum; i++) {
		if (!(sh[i].sh_flags & SHF_ALLOC) || !sh[i].sh_size)
			continue;
		if (sh[i].sh_addr + sh[i].sh_size > mem_size)
			mem_size = sh[i].sh_addr + sh[i].sh_size;
		if (sh[i].sh_type != SHT_NOBITS && sh[i].sh_addr + sh[i].sh_size > file_size)
			file_size = sh[i].sh_addr + sh[i].sh_size;
		if (!strcmp(shstr + sh[i].sh_name, ".got") || !strcmp(shstr + sh[i].sh_name, ".got.plt"))
			if (sh[i].sh_size > 24)
				die("section %s is not empty: a symbol is not hidden (GOT entries hold absolute addresses)",
				    shstr + sh[i].sh_name);
	}
	if (!file_size || mem_size > (64u << 20))
		die("%s: implausible image size %zu", elf_path, mem_size);
	img = calloc(1, file_size);
	for (int i = 0; i < eh->e_shnum; i++) {
		if (!(sh[i].sh_flags & SHF_ALLOC) || sh[i].sh_type == SHT_NOBITS || !sh[i].sh_size)
			continue;
		if (sh[i].sh_offset + sh[i].sh_size > flen)
			die("section %s out of file bounds", shstr + sh[i].sh_name);
		memcpy(img + sh[i].sh_addr, f + sh[i].sh_offset, sh[i].sh_size);
	}

	/* Pass 2: relocations kept by --emit-relocs, against allocated sections only. */
	relocs = calloc(1, flen / sizeof(Elf64_Rela) * sizeof(uint64_t) + 8);
	for (int i = 0; i < eh->e_shnum; i++) {
		Elf64_Rela *r;
		size_t n;

		if (sh[i].sh_type == SHT_REL)
			die("SHT_REL section %s unsupported", shstr + sh[i].sh_name);
		if (sh[i].sh_type != SHT_RELA || sh[i].sh_info >= eh->e_shnum ||
		    !(sh[sh[i].sh_info].sh_flags & SHF_ALLOC))
			continue;
		r = (Elf64_Rela *)(f + sh[i].sh_offset);
		n = sh[i].sh_size / sizeof(*r);
		for (size_t k = 0; k < n; k++) {
			unsigned type = ELF64_R_TYPE(r[k].r_info);

			if (pc_relative(type))
				continue;
			if (type == R_X86_64_64) {
				if (r[k].r_offset + 8 > file_size)
					die("R_X86_64_64 outside the image (section %s) at %#llx",
					    shstr + sh[i].sh_name, (unsigned long long)r[k].r_offset);
				relocs[nr_relocs++] = r[k].r_offset;
				continue;
			}
			fprintf(stderr, "%s: %s: relocation type %u at %#llx in %s cannot be applied at a runtime base\n",
				prog, elf_path, type, (unsigned long long)r[k].r_offset, shstr + sh[i].sh_name);
			return 1;
		}
	}

	c = fopen(c_path, "w");
	h = fopen(h_path, "w");
	if (!c || !h)
		die("cannot write %s or %s", c_path, h_path);
	fprintf(h, "/* Generated by ha_blobgen from %s. Do not edit. */\n#pragma once\n"
		   "#include \"ha/parasite.h\"\n\nextern const struct ha_blob ha_blob_%s;\n\n", name, name);
	/* Symbols named __export_X become HA_BLOB_NAME_X offsets. */
	for (int i = 0; i < eh->e_shnum; i++) {
		Elf64_Sym *sym;
		const char *str;

		if (sh[i].sh_type != SHT_SYMTAB)
			continue;
		sym = (Elf64_Sym *)(f + sh[i].sh_offset);
		str = (const char *)f + sh[sh[i].sh_link].sh_offset;
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++) {
			const char *sn = str + sym[k].st_name;

			if (strncmp(sn, "__export_", 9) || sym[k].st_shndx == SHN_UNDEF)
				continue;
			fprintf(h, "#define HA_BLOB_%s_", uname);
			for (const char *p = sn + 9; *p; p++)
				fputc(toupper((unsigned char)*p), h);
			fprintf(h, " 0x%llxUL\n", (unsigned long long)sym[k].st_value);
		}
	}
	fprintf(c, "/* Generated by ha_blobgen from %s. Do not edit. */\n#include \"ha/parasite.h\"\n\n", name);
	fprintf(c, "static const unsigned char blob_data[%zu] __attribute__((aligned(16))) = {", file_size);
	for (size_t i = 0; i < file_size; i++)
		fprintf(c, "%s0x%02x,", i % 16 ? "" : "\n\t", img[i]);
	fprintf(c, "\n};\n\nstatic const unsigned long blob_relocs[%zu] = {", nr_relocs + 1);
	for (size_t i = 0; i < nr_relocs; i++)
		fprintf(c, "%s0x%llx,", i % 8 ? " " : "\n\t", (unsigned long long)relocs[i]);
	fprintf(c, "\n\t0 /* unused */\n};\n\nconst struct ha_blob ha_blob_%s = {\n"
		   "\t.name = \"%s\",\n\t.data = blob_data,\n\t.size = %zu,\n\t.mem_size = %zu,\n"
		   "\t.relocs = blob_relocs,\n\t.nr_relocs = %zu,\n};\n",
		name, name, file_size, mem_size, nr_relocs);
	if (fclose(c) || fclose(h))
		die("write error on %s or %s", c_path, h_path);
	free(img);
	free(relocs);
	free(f);
	return 0;
}
