/*
 * ctl-msg.c: decoding and validation of control messages (ha/agent.h).
 *
 * protobuf-c checks the wire format but not meaning: a proto2 enum field accepts any
 * varint, strings may be empty, and unknown fields are kept. The checks that make a
 * request something the agent may act on live here, once, in the small ha_agent
 * library the fuzzer links.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ha/agent.h"
#include "ha/conf.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *ctl_type_name(int type)
{
	switch (type) {
	case HACTL__CTL_TYPE__CTL_TYPE_STATUS:
		return "status";
	case HACTL__CTL_TYPE__CTL_TYPE_RELOAD:
		return "reload";
	case HACTL__CTL_TYPE__CTL_TYPE_LIST:
		return "list";
	case HACTL__CTL_TYPE__CTL_TYPE_CHECKPOINT:
		return "checkpoint";
	case HACTL__CTL_TYPE__CTL_TYPE_ROLLBACK:
		return "rollback";
	case HACTL__CTL_TYPE__CTL_TYPE_LOG:
		return "log";
	case HACTL__CTL_TYPE__CTL_TYPE_PROMOTE:
		return "promote";
	case HACTL__CTL_TYPE__CTL_TYPE_DEMOTE:
		return "demote";
	default:
		return NULL;
	}
}

static int request_check(const Hactl__CtlRequest *req, char *err, size_t errlen)
{
	if (!req->has_type) {
		set_err(err, errlen, "request: no type");
		return -EPROTO;
	}
	if (!ctl_type_name(req->type)) {
		set_err(err, errlen, "request: unknown type %d", (int)req->type);
		return -EPROTO;
	}
	/* Names go into log lines and, later, paths: only what conf accepts as a name. */
	if (req->service && !conf_name_valid(req->service)) {
		set_err(err, errlen, "request %s: invalid service name",
			ctl_type_name(req->type));
		return -EPROTO;
	}
	if (!req->service && req->type != HACTL__CTL_TYPE__CTL_TYPE_STATUS &&
	    req->type != HACTL__CTL_TYPE__CTL_TYPE_RELOAD) {
		set_err(err, errlen, "request %s: no service", ctl_type_name(req->type));
		return -EPROTO;
	}
	if (req->has_generation && req->generation < 0) {
		set_err(err, errlen, "request %s: negative generation", ctl_type_name(req->type));
		return -EPROTO;
	}
	return 0;
}

int ctl_request_decode(const void *buf, size_t len, Hactl__CtlRequest **out,
		       char *err, size_t errlen)
{
	Hactl__CtlRequest *req;
	int ret;

	*out = NULL;
	if (len > CTL_REQ_MAX) {
		set_err(err, errlen, "request: %zu bytes, more than %d", len, CTL_REQ_MAX);
		return -EMSGSIZE;
	}
	req = hactl__ctl_request__unpack(NULL, len, buf);
	if (!req) {
		set_err(err, errlen, "request: %zu bytes that are not a CtlRequest", len);
		return -EBADMSG;
	}
	ret = request_check(req, err, errlen);
	if (ret) {
		hactl__ctl_request__free_unpacked(req, NULL);
		return ret;
	}
	*out = req;
	return 0;
}

static int reply_check(const Hactl__CtlReply *rep, char *err, size_t errlen)
{
	const Hactl__CtlStatus *st = rep->status_info;

	if (!rep->has_api_version || !rep->has_status) {
		set_err(err, errlen, "reply: no api_version or status");
		return -EPROTO;
	}
	for (size_t i = 0; i < rep->n_generations; i++) {
		if (!rep->generations[i]->has_id || !rep->generations[i]->state) {
			set_err(err, errlen, "reply: generation %zu has no id or state", i);
			return -EPROTO;
		}
	}
	if (!st)
		return 0;
	/* hactl prints these without further checks. */
	for (size_t i = 0; i < st->n_services; i++) {
		if (!st->services[i]->name || !conf_name_valid(st->services[i]->name)) {
			set_err(err, errlen, "reply: service %zu has no valid name", i);
			return -EPROTO;
		}
	}
	for (size_t i = 0; i < st->n_peers; i++) {
		if (!st->peers[i]->name || !conf_name_valid(st->peers[i]->name)) {
			set_err(err, errlen, "reply: peer %zu has no valid name", i);
			return -EPROTO;
		}
	}
	return 0;
}

int ctl_reply_decode(const void *buf, size_t len, Hactl__CtlReply **out,
		     char *err, size_t errlen)
{
	Hactl__CtlReply *rep;
	int ret;

	*out = NULL;
	if (len > CTL_REPLY_MAX) {
		set_err(err, errlen, "reply: %zu bytes, more than %d", len, CTL_REPLY_MAX);
		return -EMSGSIZE;
	}
	rep = hactl__ctl_reply__unpack(NULL, len, buf);
	if (!rep) {
		set_err(err, errlen, "reply: %zu bytes that are not a CtlReply", len);
		return -EBADMSG;
	}
	ret = reply_check(rep, err, errlen);
	if (ret) {
		hactl__ctl_reply__free_unpacked(rep, NULL);
		return ret;
	}
	*out = rep;
	return 0;
}
