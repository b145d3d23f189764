/*
 * tls.c: the TLS side of replication: TLS 1.3 only, mutual authentication against one
 * configured CA, and the check that the certificate a peer shows names the node we
 * expect.
 *
 * Why both a chain check and a name check: every node's certificate comes from the same
 * CA, so a valid chain only says "some node of this cluster". The sender asks OpenSSL to
 * match the peer's name during the handshake (SSL_set1_host: SAN dNSName, or CN when
 * there is no SAN); the standby does not know who connects, so after the handshake it
 * matches the certificate against every configured peer and refuses the connection when
 * none matches (rep__tls_peer_match).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "replica-int.h"

struct rep_tls {
	SSL_CTX *ctx;
};

void rep__tls_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t off = 0;

	buf[0] = 0;
	while ((e = ERR_get_error()) && off + 2 < len) {
		char one[256];

		ERR_error_string_n(e, one, sizeof(one));
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "; " : "", one);
	}
	if (!buf[0])
		snprintf(buf, len, "no OpenSSL error queued");
}

int rep_tls_new(const char *ca, const char *cert, const char *key, struct rep_tls **out,
		char *err, size_t errlen)
{
	struct rep_tls *t = calloc(1, sizeof(*t));
	char why[512];
	const char *step;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	ERR_clear_error();
	step = "context";
	t->ctx = SSL_CTX_new(TLS_method());
	if (!t->ctx)
		goto err;
	step = "TLS 1.3";
	if (!SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION))
		goto err;
	step = cert;
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1)
		goto err;
	step = key;
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1)
		goto err;
	step = ca;
	if (SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1)
		goto err;
	/* Both directions: a standby refuses a sender without a certificate too. */
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	*out = t;
	return 0;
err:
	rep__tls_errors(why, sizeof(why));
	snprintf(err, errlen, "tls: %s: %s", step, why);
	rep_tls_free(t);
	return -EINVAL;
}

void rep_tls_free(struct rep_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

SSL *rep__tls_ssl(struct rep_tls *t, const char *expect_host)
{
	SSL *ssl = SSL_new(t->ctx);

	if (!ssl)
		return NULL;
	if (expect_host) {
		/* Node names are not DNS names of this host: match them exactly. */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, expect_host) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

int rep__tls_peer_match(SSL *ssl, const char *const *names, size_t n)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	int found = -1;

	if (!cert)
		return -1;
	if (SSL_get_verify_result(ssl) == X509_V_OK)
		for (size_t i = 0; i < n && found < 0; i++)
			if (X509_check_host(cert, names[i], 0,
					    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
				found = (int)i;
	X509_free(cert);
	return found;
}

void rep__tls_peer_subject(SSL *ssl, char *buf, size_t len)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);

	snprintf(buf, len, "(no certificate)");
	if (cert) {
		X509_NAME_oneline(X509_get_subject_name(cert), buf, (int)len);
		X509_free(cert);
	}
}

void rep__bev_errors(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e;
	size_t off = 0;
	int saved = EVUTIL_SOCKET_ERROR();

	buf[0] = 0;
	while ((e = bufferevent_get_openssl_error(bev)) && off + 2 < len) {
		char one[200];

		/* libevent queues SSL_get_error() codes as library 0: SSL_ERROR_SSL (1) comes
		 * with a real entry, SSL_ERROR_SYSCALL (5) means the socket failed. */
		if (!ERR_GET_LIB(e) && ERR_GET_REASON(e) == SSL_ERROR_SYSCALL)
			snprintf(one, sizeof(one), "%s", saved ? evutil_socket_error_to_string(saved)
				 : "connection closed");
		else if (!ERR_GET_LIB(e))
			continue;
		else
			ERR_error_string_n(e, one, sizeof(one));
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "; " : "", one);
	}
	if (!buf[0] && saved)
		snprintf(buf, len, "%s", evutil_socket_error_to_string(saved));
}
