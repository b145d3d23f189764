/*
 * The process tree below a dumped process: finding it, checking that it held still
 * while we froze it, sharing open files across it, and pstree.img.
 *
 * DESIGN
 * Children are listed through /proc/PID/task/TID/children of every thread (a child
 * belongs to the thread that forked it). The walk is depth first, parents before their
 * children, which is the order pstree.img keeps and restore creates processes in.
 *
 * A running tree can fork and exit under us. dump.c scans it, prepares every process,
 * seizes them in scan order (a parent before its children, so a seized parent can add
 * no child after it was listed), then scans again: only when the frozen tree is the one
 * it prepared does it go on; otherwise it releases everything and starts over.
 *
 * Zombies (exited, not reaped) cannot be seized and need nothing but their place in the
 * tree and the wait status their parent will collect: /proc/PID/stat's exit_code
 * (field 52) is exactly that status while the task is a zombie.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dump.h"
#include "image.h"
#include "log.h"
#include "pstree.pb-c.h"

#define KCMP_FILE 0
#define STAT_EXIT_CODE 52

/* state (3), ppid, pgrp, session, and exit_code (52) from /proc/PID/stat. */
static int read_stat(pid_t pid, struct eng__tree_proc *p, bool may_be_gone)
{
	char *buf, *s;
	int ret = may_be_gone ? eng__proc_read_gone(pid, "stat", &buf, NULL)
			      : eng__proc_read(pid, "stat", &buf, NULL);
	long v[STAT_EXIT_CODE + 1] = { 0 };
	int field = 3;

	if (ret)
		return ret;
	s = strrchr(buf, ')');
	if (!s || sscanf(s + 1, " %c", &p->state) != 1) {
		free(buf);
		return pr_errno(-EPROTO, "pid %d: /proc/%d/stat: no state", pid, pid);
	}
	s += 3;
	while (*s && field < STAT_EXIT_CODE) {
		char *end;

		field++;
		v[field] = strtol(s, &end, 10);
		if (end == s)
			break;
		s = end;
	}
	free(buf);
	if (field < 6)
		return pr_errno(-EPROTO, "pid %d: /proc/%d/stat: too short", pid, pid);
	p->pid = pid;
	p->ppid = v[4];
	p->pgid = v[5];
	p->sid = v[6];
	p->zombie = p->state == 'Z';
	p->exit_status = field == STAT_EXIT_CODE ? (int)v[STAT_EXIT_CODE] : 0;
	return 0;
}

static int add(struct eng__tree *t, pid_t pid)
{
	struct eng__tree_proc *p;
	int ret;

	for (int i = 0; i < t->n; i++)
		if (t->p[i].pid == pid)
			return 0;	/* listed by two threads while we read */
	if (t->n == t->cap) {
		int cap = t->cap ? t->cap * 2 : 16;

		p = realloc(t->p, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->p = p;
		t->cap = cap;
	}
	p = &t->p[t->n];
	memset(p, 0, sizeof(*p));
	ret = read_stat(pid, p, t->n > 0);
	/* A child listed a moment ago may have been reaped since: it is simply not in the
	 * tree, and the scan after the freeze tells whether the tree we hold is the one we
	 * prepared. */
	if (t->n > 0 && (ret == -ENOENT || ret == -ESRCH))
		return 0;
	return ret ?: (t->n++, 1);
}

/* Append pid's children (of every thread) after it, then theirs, depth first (or
 * with depth < 0, only its own). */
static int walk(struct eng__tree *t, pid_t pid, int depth)
{
	char path[96];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (depth > 512)
		return pr_errno(-ELOOP, "pid %d: process tree deeper than 512", pid);
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : pr_errno(-errno, "pid %d: %s", pid, path);
	while (!ret && (de = readdir(d))) {
		char name[64], *buf, *s, *end;
		pid_t tid = atoi(de->d_name);

		if (tid <= 0)
			continue;
		snprintf(name, sizeof(name), "task/%d/children", tid);
		if (eng__proc_read(pid, name, &buf, NULL))
			continue;	/* the thread exited meanwhile */
		for (s = buf; !ret; s = end) {
			long c = strtol(s, &end, 10);

			if (end == s)
				break;
			ret = add(t, c);
			if (ret == 1 && depth >= 0)
				ret = walk(t, c, depth + 1);
		}
		free(buf);
	}
	closedir(d);
	return ret < 0 ? ret : 0;
}

/*
 * p is in another session than its parent pp: it was reparented to pp (a child
 * subreaper) after the session's leader exited, as a double-forked daemon is. Restore
 * makes that session again with a helper that takes the leader's pid, calls setsid(),
 * forks p and exits (rst-tree.c). That needs the leader to be gone for good, not alive
 * elsewhere in the tree or outside it.
 */
static int orphan_session(const struct eng__tree *t, const struct eng__tree_proc *p,
			  const struct eng__tree_proc *pp)
{
	for (int i = 0; i < t->n; i++)
		if (t->p[i].pid == p->sid)
			return pr_errno(-ENOTSUP, "pid %d: in session %d, whose leader is in the tree, but its parent %d "
					"is in session %d: not supported yet", p->pid, p->sid, pp->pid, pp->sid);
	if (p->sid <= 0 || !kill(p->sid, 0) || errno != ESRCH)
		return pr_errno(-ENOTSUP, "pid %d: in session %d, led from outside the tree, but its parent %d is "
				"in session %d: not supported", p->pid, p->sid, pp->pid, pp->sid);
	if (p->zombie)
		return pr_errno(-ENOTSUP, "pid %d: a zombie in session %d whose leader exited: not supported yet",
				p->pid, p->sid);
	pr_debug("pid %d: in session %d whose leader exited (its parent %d is in session %d)", p->pid, p->sid,
		 pp->pid, pp->sid);
	return 0;
}

/*
 * What restore cannot build yet, refused before anything is touched (restore checks the
 * same in rst-images.c, but a checkpoint that cannot come back must not be taken).
 */
int eng__tree_check(const struct eng__tree *t)
{
	for (int i = 1; i < t->n; i++) {
		const struct eng__tree_proc *p = &t->p[i];

		for (int j = 0; j < i; j++) {
			const struct eng__tree_proc *pp = &t->p[j];

			if (pp->pid != p->ppid)
				continue;
			if (p->sid != p->pid && p->sid != pp->sid) {
				int ret = orphan_session(t, p, pp);

				if (ret)
					return ret;
			}
			break;
		}
	}
	return 0;
}

int eng__tree_scan(pid_t root, struct eng__tree *t)
{
	int ret;

	memset(t, 0, sizeof(*t));
	ret = add(t, root);
	if (ret == 1)
		ret = walk(t, root, 0);
	if (ret < 0) {
		eng__tree_free(t);
		return ret;
	}
	t->p[0].ppid = 0;	/* the root's parent is not dumped */
	return 0;
}

int eng__tree_add_children(struct eng__tree *t, int i)
{
	return walk(t, t->p[i].pid, -1);
}

int eng__tree_add_root(struct eng__tree *t, pid_t root)
{
	int ret;

	memset(t, 0, sizeof(*t));
	ret = add(t, root);
	if (ret < 0)
		return ret;
	t->p[0].ppid = 0;
	return 0;
}

int eng__tree_restat(struct eng__tree *t, int i)
{
	pid_t ppid = t->p[i].ppid;
	int ret = read_stat(t->p[i].pid, &t->p[i], false);

	t->p[i].ppid = ppid;
	return ret;
}

bool eng__tree_same(const struct eng__tree *a, const struct eng__tree *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (a->p[i].pid != b->p[i].pid || a->p[i].ppid != b->p[i].ppid ||
		    a->p[i].zombie != b->p[i].zombie)
			return false;
	return true;
}

void eng__tree_free(struct eng__tree *t)
{
	if (!t)
		return;
	free(t->p);
	free(t->ids);
	memset(t, 0, sizeof(*t));
}

/*
 * Open file descriptions shared between processes (opened before a fork, or passed
 * over a socket) are one ImgFile: the later process's copy becomes foreign, naming the
 * earlier one's id, so that restore opens it once and every process shares its offset
 * and flags. Only files on the same inode are compared.
 */
int eng__files_share(struct eng__files_dump *const *all, int n)
{
	for (int j = 1; j < n; j++)
		for (int k = 0; k < all[j]->nr_files; k++) {
			struct eng__file_dump *f = &all[j]->files[k];

			for (int i = 0; i < j && !f->foreign; i++)
				for (int m = 0; m < all[i]->nr_files; m++) {
					const struct eng__file_dump *g = &all[i]->files[m];
					long r;

					if (g->foreign || g->dev != f->dev || g->ino != f->ino)
						continue;
					r = syscall(SYS_kcmp, all[i]->pid, all[j]->pid, KCMP_FILE, g->first_fd,
						    f->first_fd);
					if (r < 0)
						return pr_errno(-errno, "kcmp of pid %d fd %d and pid %d fd %d",
								all[i]->pid, g->first_fd, all[j]->pid,
								f->first_fd);
					if (r == 0) {
						f->id = g->id;
						f->foreign = true;
						break;
					}
				}
		}
	return 0;
}

int eng__pstree_write(int dirfd, const struct eng__tree *t, struct eng__task_dump *const *td,
		      struct eng__imgq *q)
{
	struct eng_img *img;
	int ret = eng_img_create(dirfd, ENG_IMG_PSTREE, 0, &img);

	if (!ret)
		ret = eng__imgq_add(q, img);
	for (int i = 0; i < t->n && !ret; i++) {
		const struct eng__tree_proc *p = &t->p[i];
		ImgPstreeEntry e = IMG_PSTREE_ENTRY__INIT;
		uint32_t *tids = NULL;

		e.has_pid = e.has_ppid = e.has_pgid = e.has_sid = 1;
		e.pid = p->pid;
		e.ppid = p->ppid;
		e.pgid = p->pgid;
		e.sid = p->sid;
		/* In a pid namespace of its own: the ids it sees (pidns.c); ours for people. */
		if (t->inner) {
			e.has_outer_pid = 1;
			e.outer_pid = p->pid;
			e.pid = p->ipid;
			e.ppid = i ? eng__tree_inner_id(t, p->ppid) : 0;
			e.pgid = p->ipgid;
			e.sid = p->isid;
		}
		if (p->zombie) {
			e.has_zombie = e.has_exit_status = 1;
			e.zombie = true;
			e.exit_status = p->exit_status;
		} else {
			tids = calloc(td[i]->nr_threads, sizeof(*tids));
			if (!tids)
				return -ENOMEM;
			for (int k = 0; k < td[i]->nr_threads; k++)
				tids[k] = td[i]->th[k].tid;
			e.n_tids = td[i]->nr_threads;
			e.tids = tids;
		}
		ret = eng_img_write(img, &e.base);
		free(tids);
	}
	return ret;
}
