/*
 * ha/agent.h: the control protocol of hacd, shared by the daemon, hactl and the fuzzer.
 *
 * hactl and hacd exchange one protobuf-c message per SOCK_SEQPACKET packet
 * (agent/rpc/ctl.proto): a CtlRequest, answered by exactly one CtlReply. Sequenced
 * packets keep message boundaries, so there is no length prefix to trust; a packet
 * larger than the limit below is seen truncated (MSG_TRUNC) and refused unread.
 *
 * Everything that crosses the socket is checked here, at the boundary, so the rest of
 * the agent handles only well-formed requests.
 */
#ifndef HA_AGENT_H
#define HA_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "ctl.pb-c.h"

/* Bumped when a reply changes meaning; hactl --json prints it as "api_version". */
#define CTL_API_VERSION		1

/* Requests are a few bytes: anything near this is garbage or an attack. */
#define CTL_REQ_MAX		4096
/* A status of a few hundred services fits; a reply never exceeds it. */
#define CTL_REPLY_MAX		(256 * 1024)

/*
 * Decode and validate one request packet. Returns 0 and *out (free it with
 * hactl__ctl_request__free_unpacked(*out, NULL)), or -EMSGSIZE (too large), -EBADMSG
 * (not a CtlRequest), -EPROTO (no or unknown type, invalid field); err then says which.
 */
int ctl_request_decode(const void *buf, size_t len, Hactl__CtlRequest **out,
		       char *err, size_t errlen);

/* Same for a reply packet (hactl's side): -EMSGSIZE, -EBADMSG or -EPROTO. */
int ctl_reply_decode(const void *buf, size_t len, Hactl__CtlReply **out,
		     char *err, size_t errlen);

/* "status", "reload", or NULL for a type this version does not know. */
const char *ctl_type_name(int type);

#endif /* HA_AGENT_H */
