/*
 * fuzz_agent_ctl.c: control socket packets through the decoders of ha/agent.h, the
 * only code that sees what a client sends before hacd acts on it (and what hacd sends
 * before hactl prints it).
 *
 * Beyond "no crash, no leak": a refused packet always gets a message and no object;
 * an accepted request has a known type, and its known fields pack back into a request
 * that decodes to the same type and service.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const Hactl__CtlRequest *req)
{
	Hactl__CtlRequest copy = HACTL__CTL_REQUEST__INIT, *again;
	uint8_t buf[CTL_REQ_MAX];
	size_t len;

	if (!req->has_type || !ctl_type_name(req->type))
		abort();
	/*
	 * Re-encode the known fields only, as hactl builds a request: protobuf-c keeps
	 * unknown fields verbatim, even ones no encoder may write (field number 0).
	 */
	copy.has_version = req->has_version;
	copy.version = req->version;
	copy.has_type = 1;
	copy.type = req->type;
	copy.service = req->service;
	len = hactl__ctl_request__get_packed_size(&copy);
	if (len > sizeof(buf))
		abort();
	hactl__ctl_request__pack(&copy, buf);
	if (ctl_request_decode(buf, len, &again, NULL, 0))
		abort();
	if (again->type != req->type || !again->service != !req->service ||
	    (req->service && strcmp(again->service, req->service)))
		abort();
	hactl__ctl_request__free_unpacked(again, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Hactl__CtlRequest *req;
	Hactl__CtlReply *rep;
	char err[256] = "";
	int rc;

	rc = ctl_request_decode(data, size, &req, err, sizeof(err));
	if (rc && (req || !err[0]))
		abort();
	if (!rc) {
		check_request(req);
		hactl__ctl_request__free_unpacked(req, NULL);
	}
	err[0] = '\0';
	rc = ctl_reply_decode(data, size, &rep, err, sizeof(err));
	if (rc && (rep || !err[0]))
		abort();
	if (!rc)
		hactl__ctl_reply__free_unpacked(rep, NULL);
	return 0;
}
