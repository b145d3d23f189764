/*
 * replica-victim RESULT MIB: a process to checkpoint, ship to a standby and restore
 * there. It fills MIB MiB with a pattern derived from its own pid and keeps a journal
 * of a counter it bumps every millisecond, so each generation differs a little. On
 * SIGTERM (after the restore) it checks every word and the journal and writes
 * "ok COUNTER" or "bad WHAT" to RESULT.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL 4096

static volatile sig_atomic_t stop;
static uint64_t journal[JOURNAL];

static void on_term(int sig)
{
	stop = 1;
}

static uint64_t word(uint64_t seed, size_t i)
{
	uint64_t x = seed ^ (i * 0x9e3779b97f4a7c15ull);

	x ^= x >> 31;
	return x * 0xbf58476d1ce4e5b9ull;
}

static void result(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			_exit(2);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	struct timespec ms = { 0, 1000000 };
	uint64_t seed = (uint64_t)getpid(), counter = 0, *mem;
	size_t words;
	char buf[128];

	if (argc != 3)
		return 64;
	/* Whatever the shell handed us (pipes) is not dumpable yet. */
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	words = (size_t)atoi(argv[2]) << 17;
	mem = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < words; i++)
		mem[i] = word(seed, i);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	result(argv[1], "ready\n");
	while (!stop) {
		counter++;
		journal[counter % JOURNAL] = counter;
		nanosleep(&ms, NULL);
	}
	for (size_t i = 0; i < words; i++)
		if (mem[i] != word(seed, i)) {
			snprintf(buf, sizeof(buf), "bad word %zu\n", i);
			result(argv[1], buf);
			return 1;
		}
	for (uint64_t k = counter > JOURNAL ? counter - JOURNAL + 1 : 1; k <= counter; k++)
		if (journal[k % JOURNAL] != k) {
			snprintf(buf, sizeof(buf), "bad journal %llu\n", (unsigned long long)k);
			result(argv[1], buf);
			return 1;
		}
	snprintf(buf, sizeof(buf), "ok %llu\n", (unsigned long long)counter);
	result(argv[1], buf);
	return 0;
}
