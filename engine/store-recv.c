/*
 * store-recv.c: page-store generations crossing nodes (issue 7). The active node's
 * replica sender asks which packs a generation needs (eng_store_gen_packs); the
 * standby's receiver assembles the generation into its own store with the same numbers
 * (page maps name packs by number), through an eng_store_rx that holds the store lock.
 *
 * DESIGN
 * A pack is written by one generation and immutable once that generation is committed
 * (holes punched later read as zeros and are never referenced), so the standby needs,
 * per pack, only the bytes past what it holds. What it holds is one of:
 *   packs/pack-N.pack               complete: the sender's iff size and ident match
 *   packs/.recv-N-IIIIIIIIIIIIIIII  a transfer cut short, of the pack whose ident is I
 *                                   (resumed from its size; any other ident: removed)
 * The ident is the XXH3 of a pack's first 4 KiB (header with its random nonce, the
 * first blob): punching never reaches below 4096 (store.c punch_pack), so it is stable
 * for the pack's life, and another node's pack N differs from it.
 *
 * Invariants:
 *  1. Nothing is appended to a pack file that is not the sender's: a complete pack of
 *     another ident is reported -ESTALE (divergence: the caller retires the local
 *     generations from there on, which frees the pack), a partial one is removed.
 *  2. A generation is committed only after every blob its page maps name was found:
 *     the blobs of packs received now (wholly or a tail) are read whole and their XXH3
 *     checked; blobs of packs complete here before are checked by header only (magic,
 *     pack, length, the XXH3 field against the page map), which costs one 32-byte read
 *     each instead of reading the service's whole memory every generation. They were
 *     checked whole when they arrived.
 *  3. Crash safety as store.c: packs fsynced, renamed into place and packs/ fsynced,
 *     then .gen-N.tmp/ fsynced, renamed to gen-N/, the store fsynced. A crash leaves a
 *     .tmp directory (removed at the next open) and packs no generation names yet
 *     (unlinked by the next open when numbered above every generation, else by GC).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "image.h"
#include "log.h"
#include "track.h"

#define IDENT_BYTES 4096u

struct eng_store_rx {
	struct eng__store st;
	uint32_t gen;			/* being received, 0 = none */
	int tmp_fd;
	int wfd;			/* pack being appended */
	uint32_t wpack;
	uint64_t wsize;
};

static void recv_name(uint32_t pack, uint64_t ident, char *buf, size_t len)
{
	snprintf(buf, len, ".recv-%08u-%016" PRIx64, pack, ident);
}

int eng_store_pack_ident(int fd, uint64_t size, uint64_t *ident)
{
	uint8_t buf[IDENT_BYTES];
	size_t want = size < IDENT_BYTES ? (size_t)size : IDENT_BYTES, got = 0;

	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		got += (size_t)n;
	}
	*ident = XXH3_64bits(buf, want);
	return 0;
}

static int cmp_pack(const void *a, const void *b)
{
	uint32_t x = ((const struct eng_store_pack *)a)->num, y = ((const struct eng_store_pack *)b)->num;

	return x < y ? -1 : x > y;
}

int eng_store_gen_packs(const char *store_dir, uint32_t gen, struct eng_store_pack **out, size_t *nr)
{
	struct eng__blob_ref *v = NULL;
	struct eng_store_pack *p = NULL;
	char path[4200];
	size_t n = 0, np = 0;
	int gfd, ret;

	eng__clear_error();
	*out = NULL;
	*nr = 0;
	ret = eng_store_gen_path(store_dir, gen, path, sizeof(path));
	if (ret)
		return ret;
	gfd = ha_dir_open(path, false);
	if (gfd < 0)
		return pr_errno(gfd, "%s", path);
	ret = eng__gen_blob_refs(gfd, path, &v, &n);
	if (!ret && n && !(p = calloc(n, sizeof(*p))))
		ret = -ENOMEM;
	for (size_t i = 0; !ret && i < n; i++) {
		struct stat sb;
		int fd;

		if (np && p[np - 1].num == v[i].pack)
			continue;
		p[np].num = v[i].pack;
		fd = eng__pack_open(gfd, v[i].pack);
		if (fd < 0) {
			ret = fd;
			break;
		}
		if (fstat(fd, &sb))
			ret = pr_errno(-errno, "%s: pack %u: fstat", store_dir, v[i].pack);
		else
			p[np].size = (uint64_t)sb.st_size;
		if (!ret && (ret = eng_store_pack_ident(fd, p[np].size, &p[np].ident)))
			ret = pr_errno(ret, "%s: pack %u: reading its first bytes", store_dir, v[i].pack);
		close(fd);
		np++;
	}
	close(gfd);
	free(v);
	if (ret) {
		free(p);
		return ret;
	}
	if (np)
		qsort(p, np, sizeof(*p), cmp_pack);
	*out = p;
	*nr = np;
	return 0;
}

/* ---- the standby's side ------------------------------------------------------------ */

int eng_store_rx_open(const char *store_dir, struct eng_store_rx **out)
{
	struct eng_store_rx *r = calloc(1, sizeof(*r));
	int ret;

	eng__clear_error();
	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->tmp_fd = r->wfd = -1;
	/* The agent's worker deletes generations under the same lock: a busy store is
	 * normal, and the caller tries again; not an error worth a log line. */
	eng__log_quiet(true);
	ret = eng__store_open(store_dir, &r->st);
	eng__log_quiet(false);
	if (ret == -EBUSY) {
		eng__store_close(&r->st);
		free(r);
		return -EBUSY;
	}
	if (ret) {
		ret = pr_errno(ret, "%s: opening the page store for receiving", store_dir);
		eng__store_close(&r->st);
		free(r);
		return ret;
	}
	*out = r;
	return 0;
}

static void close_w(struct eng_store_rx *r)
{
	if (r->wfd >= 0)
		close(r->wfd);
	r->wfd = -1;
	r->wpack = 0;
}

void eng_store_rx_abort(struct eng_store_rx *r)
{
	char tmp[64];

	if (!r)
		return;
	close_w(r);
	if (r->tmp_fd >= 0)
		close(r->tmp_fd);
	r->tmp_fd = -1;
	if (r->gen) {
		eng__store_tmp_name(r->gen, tmp, sizeof(tmp));
		eng__store_rm_dir(r->st.fd, tmp);
	}
	r->gen = 0;
}

void eng_store_rx_close(struct eng_store_rx *r)
{
	if (!r)
		return;
	eng_store_rx_abort(r);
	eng__store_close(&r->st);
	free(r);
}

int eng_store_rx_has_gen(struct eng_store_rx *r, uint32_t gen)
{
	char name[64];
	struct stat sb;

	eng__store_gen_name(gen, name, sizeof(name));
	return !fstatat(r->st.fd, name, &sb, AT_SYMLINK_NOFOLLOW) && S_ISDIR(sb.st_mode);
}

int eng_store_rx_list(struct eng_store_rx *r, uint32_t **gens, size_t *n)
{
	return eng_store_list(r->st.path, gens, n);
}

int eng_store_rx_delete(struct eng_store_rx *r, uint32_t gen)
{
	eng__clear_error();
	return eng__store_delete_locked(&r->st, gen, NULL);
}

/* Remove every partial file of `pack` but the one of `keep` (NULL: all). */
static void drop_partials(struct eng_store_rx *r, uint32_t pack, const char *keep)
{
	char prefix[32];
	int dfd = dup(r->st.packs_fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	snprintf(prefix, sizeof(prefix), ".recv-%08u-", pack);
	rewinddir(d);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) && (!keep || strcmp(de->d_name, keep))) {
			pr_info("%s/packs/%s: a partial pack of another origin: removed", r->st.path, de->d_name);
			unlinkat(r->st.packs_fd, de->d_name, 0);
		}
	closedir(d);
}

int eng_store_rx_pack_have(struct eng_store_rx *r, const struct eng_store_pack *p, uint64_t *have)
{
	char name[64];
	struct stat sb;
	uint64_t ident;
	int fd, ret;

	eng__clear_error();
	*have = 0;
	eng__store_pack_name(p->num, name, sizeof(name));
	fd = openat(r->st.packs_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ret = fstat(fd, &sb) ? -errno : eng_store_pack_ident(fd, (uint64_t)sb.st_size, &ident);
		close(fd);
		if (ret)
			return pr_errno(ret, "%s/packs/%s: reading its first bytes", r->st.path, name);
		if ((uint64_t)sb.st_size != p->size || ident != p->ident)
			return pr_errno(-ESTALE, "%s/packs/%s: %llu bytes, ident %016llx; the sender's has %llu, "
					"%016llx: another node's pack %u", r->st.path, name,
					(unsigned long long)sb.st_size, (unsigned long long)ident,
					(unsigned long long)p->size, (unsigned long long)p->ident, p->num);
		*have = p->size;
		return 0;
	}
	if (errno != ENOENT)
		return pr_errno(-errno, "%s/packs/%s", r->st.path, name);
	recv_name(p->num, p->ident, name, sizeof(name));
	drop_partials(r, p->num, name);
	if (fstatat(r->st.packs_fd, name, &sb, AT_SYMLINK_NOFOLLOW))
		return 0;
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > p->size) {
		unlinkat(r->st.packs_fd, name, 0);
		return 0;
	}
	*have = (uint64_t)sb.st_size;
	return 0;
}

int eng_store_rx_begin(struct eng_store_rx *r, uint32_t gen, int *dirfd)
{
	char tmp[64];

	eng__clear_error();
	eng_store_rx_abort(r);
	if (!gen)
		return pr_errno(-EINVAL, "%s: generation 0", r->st.path);
	eng__store_tmp_name(gen, tmp, sizeof(tmp));
	eng__store_rm_dir(r->st.fd, tmp);
	if (mkdirat(r->st.fd, tmp, 0700))
		return pr_errno(-errno, "%s/%s: mkdir", r->st.path, tmp);
	r->gen = gen;
	r->tmp_fd = openat(r->st.fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (r->tmp_fd < 0)
		return pr_errno(-errno, "%s/%s: open", r->st.path, tmp);
	*dirfd = r->tmp_fd;
	return 0;
}

int eng_store_rx_pack_write(struct eng_store_rx *r, const struct eng_store_pack *p, uint64_t off,
			    const void *buf, size_t len)
{
	char name[64];
	struct stat sb;
	int ret;

	if (r->wpack != p->num) {
		close_w(r);
		recv_name(p->num, p->ident, name, sizeof(name));
		r->wfd = openat(r->st.packs_fd, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (r->wfd < 0)
			return pr_errno(-errno, "%s/packs/%s: open", r->st.path, name);
		if (fstat(r->wfd, &sb))
			return pr_errno(-errno, "%s/packs/%s: fstat", r->st.path, name);
		r->wpack = p->num;
		r->wsize = (uint64_t)sb.st_size;
	}
	/* Appends only, in order: a gap or an overlap is the caller's bug or a bad peer. */
	if (off != r->wsize || len > p->size - off || off > p->size)
		return pr_errno(-EINVAL, "%s: pack %u: %zu bytes at %llu, it holds %llu of %llu", r->st.path,
				p->num, len, (unsigned long long)off, (unsigned long long)r->wsize,
				(unsigned long long)p->size);
	if ((ret = (int)pwrite(r->wfd, buf, len, (off_t)off)) != (int)len)
		return pr_errno(ret < 0 ? -errno : -EIO, "%s: pack %u: writing at %llu", r->st.path, p->num,
				(unsigned long long)off);
	r->wsize += len;
	return 0;
}

static const struct eng_store_pack *find_pack(const struct eng_store_pack *packs, size_t n, uint32_t num)
{
	struct eng_store_pack key = { .num = num };

	return bsearch(&key, packs, n, sizeof(*packs), cmp_pack);
}

/* The received pack files: fsynced, header and ident as announced. */
static int check_received(struct eng_store_rx *r, const struct eng_store_pack *p, int *fd)
{
	char name[64];
	uint8_t hdr[PACK_HDR_SIZE];
	struct stat sb;
	uint64_t ident;
	int ret;

	recv_name(p->num, p->ident, name, sizeof(name));
	*fd = openat(r->st.packs_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd < 0)
		return pr_errno(-errno, "%s/packs/%s: open", r->st.path, name);
	if (fstat(*fd, &sb) || fsync(*fd))
		return pr_errno(-errno, "%s/packs/%s: fsync", r->st.path, name);
	if ((uint64_t)sb.st_size != p->size)
		return pr_errno(-EBADMSG, "%s/packs/%s: %llu bytes, the sender announced %llu", r->st.path, name,
				(unsigned long long)sb.st_size, (unsigned long long)p->size);
	if (pread(*fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || eng__get32(hdr) != PACK_MAGIC ||
	    eng__get32(hdr + 8) != p->num)
		return pr_errno(-EBADMSG, "%s/packs/%s: no pack header of pack %u", r->st.path, name, p->num);
	ret = eng_store_pack_ident(*fd, p->size, &ident);
	if (!ret && ident != p->ident)
		ret = -EBADMSG;
	if (ret)
		return pr_errno(ret, "%s/packs/%s: its first bytes are not the ones announced", r->st.path, name);
	return 0;
}

/* One blob: whole (received now) or by its header (held before); see invariant 2. */
static int check_blob(const struct eng__blob_ref *b, int fd, bool whole, uint64_t size, uint32_t gen,
		      void *cbuf, uint64_t *bytes)
{
	struct eng__blob_hdr h;
	uint8_t hdr[BLOB_HDR_SIZE];
	char name[64];
	uint64_t sum;
	int ret;

	eng__store_pack_name(b->pack, name, sizeof(name));
	if (whole) {
		ret = eng__blob_read(fd, name, gen, b->off, b->xxh3, cbuf, NULL, &h);
		if (ret)
			return ret;
		*bytes += h.clen;
	} else {
		if (pread(fd, hdr, sizeof(hdr), (off_t)b->off) != (ssize_t)sizeof(hdr))
			return pr_errno(-EBADMSG, "generation %u: %s offset %llu: no blob header", gen, name,
					(unsigned long long)b->off);
		h.nr_pages = eng__get32(hdr + 4);
		h.clen = eng__get32(hdr + 8);
		h.pack = eng__get32(hdr + 12);
		memcpy(&sum, hdr + 16, 8);
		if (eng__get32(hdr) != BLOB_MAGIC || le64toh(sum) != b->xxh3 || !h.nr_pages ||
		    h.nr_pages > TRK_BLOB_PAGES || b->off + BLOB_HDR_SIZE + h.clen > size)
			return pr_errno(-EBADMSG, "generation %u: %s offset %llu: not the blob its page map names",
					gen, name, (unsigned long long)b->off);
		*bytes += h.clen;
	}
	if (h.pack != b->pack || b->last_page >= h.nr_pages)
		return pr_errno(-EBADMSG, "generation %u: %s offset %llu: blob of pack %u with %u pages, the page "
				"map uses page %u of pack %u", gen, name, (unsigned long long)b->off, h.pack,
				h.nr_pages, b->last_page, b->pack);
	return 0;
}

/* Every blob the page maps of the received generation name (invariant 2). fds[k]:
 * packs[k] open for reading; received[k]: it came (wholly or in part) over the wire. */
static int check_blobs(struct eng_store_rx *r, const struct eng_store_pack *packs, const int *fds,
		       const bool *received, size_t np, struct eng_store_rx_stats *st)
{
	struct eng__blob_ref *v = NULL;
	char tmp[64], path[4200];
	void *cbuf = malloc(eng__blob_cbound());
	size_t n = 0;
	int ret;

	eng__store_tmp_name(r->gen, tmp, sizeof(tmp));
	snprintf(path, sizeof(path), "%s/%s", r->st.path, tmp);
	ret = cbuf ? eng__gen_blob_refs(r->tmp_fd, path, &v, &n) : -ENOMEM;
	for (size_t i = 0, j; !ret && i < n; i = j) {
		const struct eng_store_pack *p = find_pack(packs, np, v[i].pack);
		struct eng__blob_ref b = v[i];
		size_t k;

		/* Runs naming one blob: checked once, for the highest page any uses. */
		for (j = i + 1; j < n && v[j].pack == b.pack && v[j].off == b.off; j++) {
			if (v[j].xxh3 != b.xxh3)
				ret = pr_errno(-EBADMSG, "generation %u: two runs name pack %u offset %llu with "
					       "different checksums", r->gen, b.pack, (unsigned long long)b.off);
			b.last_page = v[j].last_page > b.last_page ? v[j].last_page : b.last_page;
		}
		if (!ret && (!p || b.pack > r->gen))
			ret = pr_errno(-EBADMSG, "generation %u: its page map names pack %u, which was not offered",
				       r->gen, b.pack);
		if (ret)
			break;
		k = (size_t)(p - packs);
		ret = check_blob(&b, fds[k], received[k], packs[k].size, r->gen, cbuf,
				 received[k] ? &st->bytes_checked : &st->bytes_headers);
		st->blobs += !ret;
	}
	free(v);
	free(cbuf);
	return ret;
}

/* After generation gen is committed: a partial pack numbered up to gen that it did not
 * need will never be resumed (a later generation needs no pack an earlier one did not
 * name, but its own), so it goes. */
static void drop_dead_partials(struct eng_store_rx *r, uint32_t gen)
{
	int dfd = dup(r->st.packs_fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	unsigned num;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)))
		if (sscanf(de->d_name, ".recv-%8u-", &num) == 1 && num <= gen) {
			pr_info("%s/packs/%s: a partial pack no generation will need: removed", r->st.path,
				de->d_name);
			unlinkat(r->st.packs_fd, de->d_name, 0);
		}
	closedir(d);
}

int eng_store_rx_commit(struct eng_store_rx *r, const struct eng_store_pack *packs, size_t np,
			struct eng_store_rx_stats *st)
{
	struct eng_store_rx_stats local;
	struct eng_image_stats ist;
	int *fds = calloc(np + 1, sizeof(*fds));
	bool *received = calloc(np + 1, sizeof(*received));
	char tmp[64], path[4200], name[64], rname[64];
	int ret = 0;

	eng__clear_error();
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	close_w(r);
	if (!fds || !received) {
		ret = -ENOMEM;
		goto out;
	}
	if (!r->gen) {
		ret = pr_errno(-EINVAL, "%s: no generation being received", r->st.path);
		goto out;
	}
	for (size_t k = 0; k < np; k++)
		fds[k] = -1;
	for (size_t k = 0; !ret && k < np; k++) {
		if (k && packs[k].num <= packs[k - 1].num) {
			ret = pr_errno(-EINVAL, "%s: packs not in increasing order", r->st.path);
			break;
		}
		eng__store_pack_name(packs[k].num, name, sizeof(name));
		fds[k] = openat(r->st.packs_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fds[k] >= 0)
			continue;
		if (errno != ENOENT) {
			ret = pr_errno(-errno, "%s/packs/%s", r->st.path, name);
			break;
		}
		received[k] = true;
		ret = check_received(r, &packs[k], &fds[k]);
	}
	eng__store_tmp_name(r->gen, tmp, sizeof(tmp));
	snprintf(path, sizeof(path), "%s/%s", r->st.path, tmp);
	/* The metadata: every image's own checksums (no page data is read). */
	if (!ret)
		ret = eng_image_verify(path, &ist);
	if (!ret)
		ret = check_blobs(r, packs, fds, received, np, st);
	/* Durable and in place: packs first, the generation last (invariant 3). */
	for (size_t k = 0; !ret && k < np; k++) {
		if (!received[k])
			continue;
		recv_name(packs[k].num, packs[k].ident, rname, sizeof(rname));
		eng__store_pack_name(packs[k].num, name, sizeof(name));
		if (renameat(r->st.packs_fd, rname, r->st.packs_fd, name))
			ret = pr_errno(-errno, "%s/packs: renaming %s to %s", r->st.path, rname, name);
		st->packs_received++;
	}
	if (!ret && ha_fsync_dir(r->st.packs_fd))
		ret = pr_errno(-EIO, "%s/packs: fsync", r->st.path);
	if (!ret && fsync(r->tmp_fd))
		ret = pr_errno(-errno, "%s: fsync", path);
	if (!ret)
		ret = eng__store_commit_gen(&r->st, r->gen);
	if (!ret)
		drop_dead_partials(r, r->gen);
	if (!ret) {
		close(r->tmp_fd);
		r->tmp_fd = -1;
		r->gen = 0;
	}
out:
	for (size_t k = 0; fds && k < np; k++) {
		if (fds[k] >= 0)
			close(fds[k]);
		/* What failed a check is sent again whole, never resumed. */
		if (ret && received && received[k]) {
			recv_name(packs[k].num, packs[k].ident, rname, sizeof(rname));
			unlinkat(r->st.packs_fd, rname, 0);
		}
	}
	free(fds);
	free(received);
	return ret;
}
