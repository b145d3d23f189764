/*
 * fd-kinds.h: private to the file code. files-dump.c and rst-files.c walk the fd
 * table; each kind of open file that has no path to reopen it by (pipes, event fds,
 * epoll, sockets) lives in its own file, with both halves:
 *
 *   dump     eng__K_check   before seizing: refuse what cannot be restored, naming
 *                           pid, fd, kind and why (the process is left untouched)
 *            eng__K_dump    frozen: fill the kind's sub-message of ImgFile
 *   restore  rst__K_open    create the open file description, once per ImgFile; the
 *                           caller installs it at every fd number that names it, in
 *                           whichever process holds it
 *
 * A description is identified by its ImgFile.id and nothing in a kind's code assumes
 * that one process holds all of its fds; epoll is the exception the kernel imposes
 * (its targets are keyed by fd number in the epoll's owner), so it is filled after
 * the owner's other fds are in place (rst__epoll_fill).
 */
#ifndef HA_ENGINE_FD_KINDS_H
#define HA_ENGINE_FD_KINDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "dump.h"
#include "files.pb-c.h"

struct rst_ctx;

/* What the dump knows of one fd before it decides anything. */
struct eng__fd_probe {
	int fd;
	char link[4096];
	struct stat st;
	uint32_t flags;		/* fdinfo flags (with O_CLOEXEC for FD_CLOEXEC) */
	char *fdinfo;		/* the whole fdinfo text */
	int sk_family, sk_type;	/* sockets: SO_DOMAIN, SO_TYPE; 0 when unknown */
};

/* The open file behind pid's fd, as our own fd (pidfd_getfd: the same description,
 * not a reopened one), or -errno (logged). */
int eng__fd_grab(pid_t pid, int fd);
/* The hex or decimal number after "key:" in fdinfo text; -ENOENT when absent. */
int eng__fdinfo_u64(const char *info, const char *key, int base, uint64_t *out);

/* fd-pipe.c: pipes and FIFOs. `files` are the descriptions collected so far: one of
 * the same pipe already carries its data. */
int eng__pipe_check(pid_t pid, const struct eng__fd_probe *p);
int eng__pipe_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f,
		   const struct eng__files_dump *files);
int rst__pipe_open(struct rst_ctx *c, const ImgFile *f);
void rst__pipes_close(struct rst_ctx *c);

/* fd-anon.c: eventfd, timerfd, signalfd. */
int eng__anon_kind(const char *link);	/* ImgFileKind, or 0 */
int eng__anon_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f);
int rst__anon_open(struct rst_ctx *c, const ImgFile *f);

/* fd-epoll.c */
int eng__epoll_check(pid_t pid, const struct eng__fd_probe *p);
int eng__epoll_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f);
/* After every other fd of the process is at its number. */
int rst__epoll_fill(struct rst_ctx *c, const ImgFile *f, int epfd);

/* sk-inet.c: TCP and UDP sockets. */
int eng__sk_check(pid_t pid, const struct eng__fd_probe *p);
int eng__sk_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f);
int rst__inet_open(struct rst_ctx *c, const ImgFile *f);

/* sk-unix.c: unix sockets. eng__unix_resolve: once every process is collected, the
 * peers (refuses one outside the tree). rst__unix_open makes every unix socket of the
 * image at its first call (they refer to each other); rst__unix_close drops ours. */
int eng__unix_check(pid_t pid, const struct eng__fd_probe *p);
int eng__unix_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f);
void eng__unix_free(ImgUnixSk *m);
int rst__unix_open(struct rst_ctx *c, const ImgFile *f);
void rst__unix_close(struct rst_ctx *c);
/* fd-memfd.c (dump half in dump.h); the object is shmem.c's. */
int rst__memfd_open(struct rst_ctx *c, const ImgFile *f);

/* fd-inotify.c */
int rst__inotify_open(struct rst_ctx *c, const ImgFile *f);

/* rst-files.c: move a new fd above every number the image uses (closing the
 * original); returns the new fd or -errno. */
int rst__fd_high(struct rst_ctx *c, int fd);

#endif
