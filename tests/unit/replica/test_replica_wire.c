/*
 * test_replica_wire.c: what rep_wire_check() accepts and refuses, and that every
 * refusal names the message and the field: the standby logs exactly this text.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ha/replica.h"
#include "replica.pb-c.h"

static char err[256];

static int check(const RepMsg *m)
{
	size_t len = rep_msg__get_packed_size(m);
	uint8_t *buf = malloc(len + 1);
	int ret;

	assert_non_null(buf);
	rep_msg__pack(m, buf);
	err[0] = 0;
	ret = rep_wire_check(buf, len, err, sizeof(err));
	free(buf);
	return ret;
}

static void expect_refused(const RepMsg *m, const char *words)
{
	assert_int_equal(check(m), -EBADMSG);
	if (!strstr(err, words))
		fail_msg("refusal \"%s\" does not say \"%s\"", err, words);
}

static void test_names(void **state)
{
	char longname[REP_NAME_MAX + 2];

	assert_true(rep_name_valid("pages-1.img"));
	assert_true(rep_name_valid("a"));
	assert_false(rep_name_valid(""));
	assert_false(rep_name_valid(NULL));
	assert_false(rep_name_valid("."));
	assert_false(rep_name_valid(".."));
	assert_false(rep_name_valid(".hidden"));
	assert_false(rep_name_valid("-opt"));
	assert_false(rep_name_valid("a/b"));
	assert_false(rep_name_valid("a\nb"));
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_false(rep_name_valid(longname));
	longname[REP_NAME_MAX] = 0;
	assert_true(rep_name_valid(longname));
}

static void test_offer(void **state)
{
	RepMsg m = REP_MSG__INIT;
	RepOffer o = REP_OFFER__INIT;
	RepFile f[2] = { REP_FILE__INIT, REP_FILE__INIT }, *pf[2] = { &f[0], &f[1] };

	o.service = "victim";
	o.has_gen = 1;
	o.gen = 3;
	o.files = pf;
	o.n_files = 2;
	for (int i = 0; i < 2; i++) {
		f[i].has_size = f[i].has_xxh3 = 1;
		f[i].size = 4096;
	}
	f[0].name = "core-1.img";
	f[1].name = "pages-1.img";
	m.offer = &o;
	assert_int_equal(check(&m), 0);

	f[1].name = "../../etc/passwd";
	expect_refused(&m, "Offer: files.name is not a plain name");
	f[1].name = "core-1.img";
	expect_refused(&m, "Offer: file core-1.img listed twice");
	f[1].name = "pages-1.img";
	f[1].size = REP_FILE_SIZE_MAX + 1;
	expect_refused(&m, "Offer: files[1] (pages-1.img): size");
	f[1].size = 1;
	f[1].has_xxh3 = 0;
	expect_refused(&m, "xxh3 missing");
	f[1].has_xxh3 = 1;
	o.service = "a/b";
	expect_refused(&m, "Offer: service is not a plain name");
	o.service = "victim";
	o.gen = 0;
	expect_refused(&m, "Offer: gen");
	o.gen = 3;
	o.n_files = 0;
	expect_refused(&m, "Offer: 0 files");
}

static void test_have_data(void **state)
{
	RepMsg m = REP_MSG__INIT;
	RepHave h = REP_HAVE__INIT;
	RepData d = REP_DATA__INIT;
	uint32_t need[3] = { 0, 2, 1 };
	static uint8_t big[REP_CHUNK + 1];

	h.service = "victim";
	h.has_gen = 1;
	h.gen = 2;
	h.need = need;
	h.n_need = 2;
	m.have = &h;
	assert_int_equal(check(&m), 0);
	h.n_need = 3;
	expect_refused(&m, "Have: need[] not increasing at 2");
	h.n_need = 1;
	h.has_present = h.present = 1;
	expect_refused(&m, "Have: present, yet files needed");

	m.have = NULL;
	m.data = &d;
	d.has_file = d.has_offset = d.has_data = d.has_xxh3 = 1;
	d.data.data = big;
	d.data.len = REP_CHUNK;
	assert_int_equal(check(&m), 0);
	d.data.len = REP_CHUNK + 1;
	/* Too big a frame and too big a chunk are both refused; either reason will do. */
	assert_int_equal(check(&m), -EBADMSG);
	d.data.len = 0;
	expect_refused(&m, "Data: 0 bytes");
}

/* v3: a page-store generation's packs, what the standby holds of them, their Data. */
static void test_store(void **state)
{
	RepMsg m = REP_MSG__INIT;
	RepOffer o = REP_OFFER__INIT;
	RepFile f = REP_FILE__INIT, *pf[1] = { &f };
	RepPack p[2] = { REP_PACK__INIT, REP_PACK__INIT }, *pp[2] = { &p[0], &p[1] };
	RepHave h = REP_HAVE__INIT;
	RepData d = REP_DATA__INIT;
	uint64_t have[2] = { 64, 100 };
	uint8_t byte = 1;

	o.service = "victim";
	o.has_gen = 1;
	o.gen = 9;
	o.files = pf;
	o.n_files = 1;
	f.name = "pagemap-1.img";
	f.has_size = f.has_xxh3 = 1;
	o.has_store_gen = 1;
	o.store_gen = 5;
	o.packs = pp;
	o.n_packs = 2;
	for (int i = 0; i < 2; i++) {
		p[i].has_num = p[i].has_size = p[i].has_ident = 1;
		p[i].num = (uint32_t)(2 * i + 3);
		p[i].size = 4096;
	}
	m.offer = &o;
	assert_int_equal(check(&m), 0);
	p[0].num = 0;
	expect_refused(&m, "Offer: packs[0]: number 0 not in 1..store_gen (5)");
	p[0].num = 6;
	expect_refused(&m, "Offer: packs[0]: number 6 not in 1..store_gen (5)");
	p[0].num = 5;
	expect_refused(&m, "Offer: packs[1]: number 5 not increasing");
	p[0].num = 3;
	p[1].size = REP_FILE_SIZE_MAX + 1;
	expect_refused(&m, "Offer: packs[1] (pack 5): size missing or not in");
	p[1].size = 10;
	expect_refused(&m, "Offer: packs[1] (pack 5): size missing or not in");
	p[1].size = 4096;
	p[1].has_ident = 0;
	expect_refused(&m, "Offer: packs[1] (pack 5): ident missing");
	p[1].has_ident = 1;
	o.store_gen = REP_STORE_GEN_MAX + 1;
	expect_refused(&m, "Offer: store_gen 100000000 above 99999999");
	o.store_gen = 0;
	o.has_store_gen = 0;
	expect_refused(&m, "Offer: packs without a store_gen");

	m.offer = NULL;
	m.have = &h;
	h.service = "victim";
	h.has_gen = 1;
	h.gen = 9;
	h.pack_have = have;
	h.n_pack_have = 2;
	assert_int_equal(check(&m), 0);
	have[1] = REP_FILE_SIZE_MAX + 1;
	expect_refused(&m, "Have: pack_have[1] above");
	have[1] = 1;
	h.has_present = h.present = 1;
	expect_refused(&m, "Have: present, yet pack bytes listed");

	m.have = NULL;
	m.data = &d;
	d.has_offset = d.has_data = d.has_xxh3 = 1;
	d.data.data = &byte;
	d.data.len = 1;
	expect_refused(&m, "Data: none of file and pack set");
	d.has_file = d.has_pack = 1;
	expect_refused(&m, "Data: both of file and pack set");
	d.has_file = 0;
	assert_int_equal(check(&m), 0);
	d.pack = REP_PACKS_MAX;
	expect_refused(&m, "Data: file or pack index out of range");
}

static void test_frame(void **state)
{
	RepMsg m = REP_MSG__INIT;
	RepCommit c = REP_COMMIT__INIT;
	RepAck a = REP_ACK__INIT;

	expect_refused(&m, "frame carries 0 messages");
	c.service = "victim";
	c.has_gen = 1;
	c.gen = 1;
	a.service = "victim";
	a.has_gen = a.has_ok = 1;
	a.gen = 1;
	m.commit = &c;
	m.ack = &a;
	expect_refused(&m, "frame carries 2 messages");
	m.commit = NULL;
	assert_int_equal(check(&m), 0);
	a.has_ok = 0;
	expect_refused(&m, "Ack: ok missing");
	assert_int_equal(rep_wire_check("\xff\xff\xff", 3, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "does not decode"));
}

static void test_gen_path(void **state)
{
	char buf[32];

	assert_int_equal(rep_gen_path(buf, sizeof(buf), "/s", "svc", 12), 0);
	assert_string_equal(buf, "/s/svc/gen-12");
	assert_int_equal(rep_gen_path(buf, 8, "/s", "svc", 12), -ENAMETOOLONG);
	assert_int_equal(rep_store_path(buf, sizeof(buf), "/s", "svc"), 0);
	assert_string_equal(buf, "/s/svc/store");
	assert_int_equal(rep_store_path(buf, 8, "/s", "svc"), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_offer),
		cmocka_unit_test(test_have_data),
		cmocka_unit_test(test_store),
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_gen_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
