/*
 * Unix sockets, what the files of sk-unix*.c share:
 *   sk-unix-diag.c     sock_diag requests, and the check before the tree is seized
 *   sk-unix-peek.c     receive queues copied without consuming them
 *   sk-unix.c          the dump of one socket, then the tree's sockets together
 *   sk-unix-restore.c  every socket of the image made by the root, in stages
 */
#ifndef HA_ENGINE_SK_UNIX_H
#define HA_ENGINE_SK_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "fd-kinds.h"

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif

/* What sock_diag tells of one unix socket. icons is malloc'ed: the caller frees it. */
struct udiag {
	uint32_t ino, peer;
	int type, state;
	uint8_t name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t name_len;
	bool has_vfs;
	uint32_t vfs_ino, vfs_dev;
	uint32_t *icons;
	size_t nr_icons;
	uint32_t rq, wq;
	uint8_t shutdown;
};

static inline const char *eng__unix_type_name(int t)
{
	return t == SOCK_STREAM ? "stream" : t == SOCK_DGRAM ? "datagram" : t == SOCK_SEQPACKET ? "seqpacket" : "?";
}

/* Everything sock_diag knows of the unix socket with inode ino (in our net namespace);
 * pid and fd only name it in errors. */
int eng__udiag_get(pid_t pid, int fd, uint32_t ino, struct udiag *u);

/* A socket name for messages: "unnamed", a path, or an abstract name with '@' for NULs. */
void eng__unix_name_str(const ProtobufCBinaryData *n, char *out, size_t size);

/* m's receive queue (data, and per message length and sender for datagram kinds), read
 * from sk, the process's own socket, without consuming it. */
int eng__unix_peek_queue(pid_t pid, int fd, int sk, ImgUnixSk *m, const struct udiag *u);

#endif
