/*
 * Loading a checkpoint for restore: every metadata image is read and checked here,
 * before any process exists, so that a damaged image is refused with its file and
 * field named and never half-applied. Page data is checked later, run by run, as it is
 * read into the new process's premapped memory: still before the point of no return.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "ha/engine.h"
#include "log.h"
#include "restore.h"

/* Read the rest of img as messages of one type into a growing array. */
static int read_all(struct eng_img *img, const ProtobufCMessageDescriptor *d, void ***out, size_t *n)
{
	ProtobufCMessage *m;
	size_t cap = 0;
	int r;

	*out = NULL;
	*n = 0;
	while ((r = eng_img_read(img, d, &m)) == 1) {
		if (*n == cap) {
			void **p = realloc(*out, (cap = cap ? cap * 2 : 16) * sizeof(void *));

			if (!p) {
				protobuf_c_message_free_unpacked(m, NULL);
				return -ENOMEM;
			}
			*out = p;
		}
		(*out)[(*n)++] = m;
	}
	return r;
}

/* Read exactly one head message of type d. */
static int read_one(struct eng_img *img, const ProtobufCMessageDescriptor *d, void **out)
{
	ProtobufCMessage *m;
	int r = eng_img_read(img, d, &m);

	if (r == 0)
		return pr_errno(-EINVAL, "%s: missing its %s record", eng_img_name(img), d->short_name);
	if (r < 0)
		return r;
	*out = m;
	return 0;
}

static int load_proc(struct rst_ctx *c, struct rst_proc *p)
{
	struct eng_img *img;
	ImgPagemapHead *head;
	uint64_t pages_size = 0;
	int r;

	r = eng_img_open(c->dirfd, ENG_IMG_CORE, p->pid, &img);
	if (r)
		return r;
	r = read_one(img, &img_core__descriptor, (void **)&p->core);
	if (!r)
		r = read_all(img, &img_thread__descriptor, (void ***)&p->threads, &p->nr_threads);
	if (!r && (p->nr_threads != p->pst->n_tids || p->threads[0]->tid != (uint32_t)p->pid))
		r = pr_errno(-EINVAL, "%s: %zu threads, leader %u, but pstree.img lists %zu for pid %d",
			     eng_img_name(img), p->nr_threads, p->nr_threads ? p->threads[0]->tid : 0,
			     p->pst->n_tids, p->pid);
	eng_img_close(img);
	if (r)
		return r;

	r = eng_img_open(c->dirfd, ENG_IMG_MM, p->pid, &img);
	if (r)
		return r;
	r = read_one(img, &img_mm__descriptor, (void **)&p->mm);
	if (!r)
		r = read_all(img, &img_vma__descriptor, (void ***)&p->vmas, &p->nr_vmas);
	eng_img_close(img);
	if (r)
		return r;

	r = eng_img_open(c->dirfd, ENG_IMG_PAGEMAP, p->pid, &img);
	if (r)
		return r;
	r = read_one(img, &img_pagemap_head__descriptor, (void **)&head);
	if (!r) {
		pages_size = head->pages_size;
		protobuf_c_message_free_unpacked(&head->base, NULL);
		r = read_all(img, &img_pagemap_entry__descriptor, (void ***)&p->pm, &p->nr_pm);
	}
	eng_img_close(img);
	if (r)
		return r;

	r = eng_img_open(c->dirfd, ENG_IMG_FDS, p->pid, &img);
	if (r)
		return r;
	r = read_all(img, &img_fd__descriptor, (void ***)&p->fds, &p->nr_fds);
	eng_img_close(img);
	if (r)
		return r;
	r = eng_img_open(c->dirfd, ENG_IMG_PAGES, p->pid, &p->pages);
	/* Every run was checked against pages_size (image-check.c); a shorter file would
	 * fail the fill half way, after processes were made. */
	if (!r && eng_img_raw_size(p->pages) != pages_size)
		r = pr_errno(-EBADMSG, "%s/%s: %llu bytes of pages, but pagemap-%d.img's pages_size says %llu "
			     "(truncated or replaced?)", c->dir, eng_img_name(p->pages),
			     (unsigned long long)eng_img_raw_size(p->pages), p->pid, (unsigned long long)pages_size);
	return r;
}

/* shmem.img is there only when the tree had shared objects. */
static int load_shm(struct rst_ctx *c)
{
	struct eng_img *img;
	int r = 0;

	if (!faccessat(c->dirfd, "shmem.img", F_OK, 0)) {
		r = eng_img_open(c->dirfd, ENG_IMG_SHMEM, 0, &img);
		if (r)
			return r;
		r = read_all(img, &img_shmem__descriptor, (void ***)&c->shm, &c->nr_shm);
		eng_img_close(img);
	}
	if (!r && !(c->keep = malloc((RST_KEEP_SHM + c->nr_shm) * sizeof(*c->keep))))
		r = -ENOMEM;
	for (size_t i = 0; !r && i < RST_KEEP_SHM + c->nr_shm; i++)
		c->keep[i] = -1;
	return r;
}

static int find_proc(const struct rst_ctx *c, uint32_t pid)
{
	for (size_t i = 0; i < c->nr_procs; i++)
		if (c->procs[i].pid == (pid_t)pid)
			return i;
	return -1;
}

/*
 * procs[i] is in a session neither it nor its parent leads: reparented to its parent
 * (a child subreaper) after the session's leader exited. A session helper with the
 * leader's pid makes the session again and forks it (rst-tree.c); its group must be
 * the session's own or its own (a group inside whose leader also exited would need a
 * helper of its own in that session: not supported yet).
 */
static int session_helper(struct rst_ctx *c, size_t i)
{
	struct rst_proc *p = &c->procs[i];
	const ImgPstreeEntry *e = p->pst;
	size_t k = 0;

	if (find_proc(c, e->sid) >= 0 || !e->sid)
		return pr_errno(-ENOTSUP, "pid %u: in session %u, which its parent %u is not in, and whose leader "
				"is %s: not supported yet", e->pid, e->sid, e->ppid,
				e->sid ? "in the tree" : "outside the tree");
	if (p->zombie)
		return pr_errno(-ENOTSUP, "pid %u: a zombie in session %u, whose leader exited: not supported yet",
				e->pid, e->sid);
	if (e->pgid != e->sid && e->pgid != e->pid && find_proc(c, e->pgid) < 0)
		return pr_errno(-ENOTSUP, "pid %u: in process group %u of session %u, both of whose leaders exited: "
				"not supported yet", e->pid, e->pgid, e->sid);
	while (k < c->nr_helpers && c->helpers[k].pgid != (pid_t)e->sid)
		k++;
	if (k < c->nr_helpers && (!c->helpers[k].session || c->helpers[k].host != p->parent))
		return pr_errno(-ENOTSUP, "pid %u: session %u, whose leader exited, has members under several "
				"parents (or its id is a group's too): not supported yet", e->pid, e->sid);
	if (k == c->nr_helpers) {
		void *n = realloc(c->helpers, (k + 1) * sizeof(*c->helpers));

		if (!n)
			return -ENOMEM;
		c->helpers = n;
		c->helpers[c->nr_helpers++] = (struct rst_helper){ e->sid, p->parent, true };
	}
	p->via = k;
	return 0;
}

/*
 * The tree as restore can build it: parents before children, and every session and
 * group reachable from where its members are forked. A process's session is its
 * parent's unless it leads its own or it was reparented after its session's leader
 * exited (a session helper, below); a session or group led from outside the tree is the root's (the
 * restored tree stays in the restorer's own). A group whose leader is gone gets a
 * helper (struct rst_helper).
 */
static int check_tree(struct rst_ctx *c)
{
	const ImgPstreeEntry *root = c->procs[0].pst;

	if (root->ppid || root->zombie)
		return pr_errno(-EINVAL, "pstree.img: the first entry, pid %u, is not a live root", root->pid);
	for (size_t i = 0; i < c->nr_procs; i++)
		c->procs[i].via = -1;
	for (size_t i = 0; i < c->nr_procs; i++) {
		struct rst_proc *p = &c->procs[i];
		const ImgPstreeEntry *e = p->pst;
		const ImgPstreeEntry *pe;

		if (find_proc(c, e->pid) != (int)i)
			return pr_errno(-EINVAL, "pstree.img: pid %u has two entries", e->pid);
		/* Pid 1 of a service's namespace is our init, never dumped: restore makes it. */
		if (c->inv->pidns && (e->pid == 1 || e->pgid == 1 || e->sid == 1))
			return pr_errno(-EINVAL, "pstree.img: pid %u: pid, group or session 1 in a pid namespace's "
					"tree, where 1 is our init", e->pid);
		if (!i) {
			p->parent = -1;
			continue;
		}
		p->parent = find_proc(c, e->ppid);
		if (p->parent < 0 || p->parent >= (int)i || c->procs[p->parent].zombie)
			return pr_errno(-EINVAL, "pstree.img: pid %u: parent %u is not a live process listed before it",
					e->pid, e->ppid);
		pe = c->procs[p->parent].pst;
		if (e->sid != e->pid && e->sid != pe->sid) {
			int r = session_helper(c, i);

			if (r)
				return r;
		}
		if (e->pgid && e->pgid != root->pgid && find_proc(c, e->pgid) < 0) {
			size_t k = 0;

			while (k < c->nr_helpers && c->helpers[k].pgid != (pid_t)e->pgid)
				k++;
			if (k == c->nr_helpers) {
				void *n = realloc(c->helpers, (k + 1) * sizeof(*c->helpers));

				if (!n)
					return -ENOMEM;
				c->helpers = n;
				c->helpers[c->nr_helpers++] = (struct rst_helper){ e->pgid, p->parent, false };
			}
		}
	}
	return 0;
}

int rst__load(struct rst_ctx *c, const char *dir)
{
	struct eng_img *img;
	ImgPstreeEntry **pst = NULL;
	size_t nr_pst = 0, live = 0;
	int r;

	memset(c, 0, sizeof(*c));
	c->me = -1;
	c->status_w = c->phase_r[0] = c->phase_r[1] = -1;
	c->dir = dir;
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return pr_errno(-errno, "%s: cannot open the image directory", dir);
	r = eng_img_open(c->dirfd, ENG_IMG_INVENTORY, 0, &img);
	if (r)
		return r;
	r = read_one(img, &img_inventory__descriptor, (void **)&c->inv);
	eng_img_close(img);
	if (r)
		return r;
	r = eng_img_open(c->dirfd, ENG_IMG_PSTREE, 0, &img);
	if (r)
		return r;
	r = read_all(img, &img_pstree_entry__descriptor, (void ***)&pst, &nr_pst);
	eng_img_close(img);
	if (!r && !nr_pst)
		r = pr_errno(-EINVAL, "pstree.img: no process");
	if (!r && !(c->procs = calloc(nr_pst, sizeof(*c->procs))))
		r = -ENOMEM;
	if (r) {
		for (size_t i = 0; i < nr_pst; i++)
			protobuf_c_message_free_unpacked(&pst[i]->base, NULL);
		free(pst);
		return r;
	}
	for (size_t i = 0; i < nr_pst; i++) {
		c->procs[i].pst = pst[i];
		c->procs[i].pid = pst[i]->pid;
		c->procs[i].zombie = pst[i]->zombie;
		live += !pst[i]->zombie;
	}
	c->nr_procs = nr_pst;
	free(pst);
	r = check_tree(c);
	if (r)
		return r;
	/* inventory.img lists the live processes, in pstree.img's order. */
	if (live != c->inv->n_pids)
		return pr_errno(-EINVAL, "inventory.img: %zu pids, pstree.img has %zu live processes", c->inv->n_pids,
				live);
	for (size_t i = 0, k = 0; i < c->nr_procs; i++)
		if (!c->procs[i].zombie && c->inv->pids[k++] != (uint32_t)c->procs[i].pid)
			return pr_errno(-EINVAL, "inventory.img: pids[%zu] is %u, pstree.img says %d", k - 1,
					c->inv->pids[k - 1], c->procs[i].pid);
	r = eng_img_open(c->dirfd, ENG_IMG_FILES, 0, &img);
	if (r)
		return r;
	r = read_all(img, &img_file__descriptor, (void ***)&c->files, &c->nr_files);
	eng_img_close(img);
	for (size_t i = 0; i < c->nr_procs && !r; i++)
		if (!c->procs[i].zombie)
			r = load_proc(c, &c->procs[i]);
	if (!r)
		r = load_shm(c);
	return r;
}

#define FREE_ARRAY(arr, n)                                                        \
	do {                                                                       \
		for (size_t i_ = 0; i_ < (n); i_++)                                \
			protobuf_c_message_free_unpacked(&(arr)[i_]->base, NULL);  \
		free(arr);                                                         \
	} while (0)
#define FREE_ONE(m)                                                       \
	do {                                                               \
		if (m)                                                     \
			protobuf_c_message_free_unpacked(&(m)->base, NULL); \
	} while (0)

void rst__free(struct rst_ctx *c)
{
	FREE_ONE(c->inv);
	FREE_ARRAY(c->files, c->nr_files);
	FREE_ARRAY(c->shm, c->nr_shm);
	free(c->keep);
	for (size_t i = 0; i < c->nr_procs; i++) {
		struct rst_proc *p = &c->procs[i];

		FREE_ONE(p->pst);
		FREE_ONE(p->core);
		FREE_ONE(p->mm);
		FREE_ARRAY(p->threads, p->nr_threads);
		FREE_ARRAY(p->vmas, p->nr_vmas);
		FREE_ARRAY(p->pm, p->nr_pm);
		FREE_ARRAY(p->fds, p->nr_fds);
		eng_img_close(p->pages);
	}
	free(c->procs);
	free(c->helpers);
	free(c->shared_fd);
	if (c->dirfd > 0)
		close(c->dirfd);
	memset(c, 0, sizeof(*c));
}
