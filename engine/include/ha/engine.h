/*
 * ha/engine.h: the checkpoint/restore engine, the only header other modules include.
 *
 * The engine knows nothing of libevent, sqlite or the config file. Calls return 0 or
 * -errno; constructors fill an out-pointer; every x_open/x_seize has a NULL-tolerant
 * release. Errors are logged once where they happen (eng_set_log) with pid/fd/file.
 */
#ifndef HA_ENGINE_H
#define HA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- logging (engine/log.c) ------------------------------------------------------ */

enum eng_log_level { ENG_LOG_ERR = 3, ENG_LOG_WARN = 4, ENG_LOG_INFO = 6, ENG_LOG_DEBUG = 7 };
typedef void (*eng_log_fn)(int level, const char *msg, void *opaque);
/* Default: "<level>hacd: msg" lines on stderr for levels <= ENG_LOG_INFO. */
void eng_set_log(eng_log_fn fn, int max_level, void *opaque);
/* The last error message the engine logged in this thread, for hactl to print. */
const char *eng_last_error(void);

/* ---- seizing and parasite injection (engine/infect.c) ---------------------------- */
/*
 *   eng_seize()  -> every thread PTRACE_SEIZEd and interrupted, registers saved
 *   eng_infect() -> parasite mapped and talking over its socket
 *   eng_par_*()  -> commands
 *   eng_cure()   -> parasite gone, registers as they were
 *   eng_release()-> detached, running again (cures first if still infected)
 * eng_release() is always safe to call and always leaves the target running.
 */
struct eng_victim;

int eng_seize(pid_t pid, struct eng_victim **out);
int eng_infect(struct eng_victim *v);
int eng_cure(struct eng_victim *v);
void eng_release(struct eng_victim *v);

pid_t eng_victim_pid(const struct eng_victim *v);
int eng_victim_nr_threads(const struct eng_victim *v);
pid_t eng_victim_tid(const struct eng_victim *v, int i);

struct eng_sigaction {
	uint64_t handler, flags, restorer, mask;
};
struct eng_itimer {
	int64_t interval_sec, interval_usec, value_sec, value_usec;
};
struct eng_rseq {
	uint64_t addr;		/* 0: not registered */
	uint32_t len, flags, sig;
};

/* All 64 signal actions; out[i] is signal i + 1. */
int eng_par_sigactions(struct eng_victim *v, struct eng_sigaction out[64]);
/* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF. */
int eng_par_itimers(struct eng_victim *v, struct eng_itimer out[3]);
/* The target's fd `target_fd`, duplicated into this process over SCM_RIGHTS. */
int eng_par_get_fd(struct eng_victim *v, int target_fd, int *local_fd);
/* Thread i's rseq registration (ptrace, no parasite needed). */
int eng_thread_rseq(struct eng_victim *v, int i, struct eng_rseq *out);

/* ---- kernel feature probes (engine/kerndat.c) ------------------------------------ */
/* @@kerndat: owned by the kerndat work; declarations go between these markers. */
/*
 * eng_kerndat_probe() really tries each feature (in a forked child when the try changes
 * process state) and records both what later stages need (methods, sizes, paths) and,
 * per item, a line for hactl check. A missing feature is not an error of the probe:
 * look at items[] or eng_kerndat_nr_missing().
 */
enum eng_dirty_method {
	ENG_DIRTY_HASH,		/* XXH3 of every present page: always available */
	ENG_DIRTY_SOFT_DIRTY,	/* clear_refs "4" + pagemap bit 55; target must be frozen */
	ENG_DIRTY_UFFD_WP,	/* uffd async write-protect + PAGEMAP_SCAN (6.7+) */
	ENG_DIRTY_FULL,		/* no tracking: every page stored again (eng_track only) */
};

enum eng_kd_item {
	ENG_KD_DIRTY,		/* dirty-tracking: always ok (hash is the floor) */
	ENG_KD_UFFD,		/* userfaultfd */
	ENG_KD_CLONE3_SET_TID,
	ENG_KD_MM_MAP,		/* PR_SET_MM_MAP */
	ENG_KD_PIDFD_GETFD,
	ENG_KD_CGROUP2,		/* cgroup2 mount point */
	ENG_KD_FREEZER,		/* cgroup2 freezer */
	ENG_KD_TCP_REPAIR,
	ENG_KD_TIMENS,
	ENG_KD_RSEQ,
	ENG_KD_VDSO,
	ENG_KD_XSTATE,
	ENG_KD_CAP_SYS_RESOURCE,
	ENG_KD_NR
};

struct eng_kerndat_item {
	const char *name;	/* "clone3-set-tid": stable, used as the JSON key */
	bool ok;
	bool required;		/* the engine cannot work without it */
	int err;		/* -errno of the failed try; 0 when ok */
	char value[48];		/* "yes", "missing", a path, a method */
	char detail[224];	/* what failed, or what missing means; may be "" */
};

struct eng_kd_map {
	uint64_t start, size;	/* size 0: no such mapping */
};

struct eng_kerndat {
	enum eng_dirty_method dirty_method;	/* best method that worked */
	bool uffd_wp_scan;	/* async WP + PAGEMAP_SCAN reported exactly the written page */
	bool soft_dirty;	/* pagemap bit 55 set by a write after clear_refs */
	bool uffd;		/* userfaultfd + UFFDIO_COPY into a registered range */
	uint64_t uffd_features;	/* what UFFDIO_API offers */
	bool clone3_set_tid;	/* pid 1 of a new pid ns, and a chosen pid inside it */
	bool mm_map;		/* PR_SET_MM_MAP (exe_fd -1) changed the arg area */
	uint32_t mm_map_size;	/* PR_SET_MM_MAP_SIZE */
	bool pidfd_getfd;
	char cgroup2_mnt[256];	/* "" when cgroup2 is not mounted */
	bool cgroup2_freezer;	/* a child cgroup froze and thawed */
	bool tcp_repair;
	bool timens;		/* offsets written and seen by a child's CLOCK_MONOTONIC */
	bool rseq;		/* the kernel has rseq and ptrace reads its configuration */
	uint64_t rseq_addr;	/* the calling thread's registration (0: none) */
	uint32_t rseq_len, rseq_sig;
	uint32_t rseq_feature_size;	/* AT_RSEQ_FEATURE_SIZE, 0 if the kernel lacks it */
	struct eng_kd_map vvar, vvar_vclock, vdso;
	uint64_t xcr0;		/* 0 when the OS has not enabled XSAVE */
	uint32_t xstate_size;	/* CPUID.(0xd,0).EBX: XSAVE area for XCR0 */
	uint32_t xstate_regset_size;	/* NT_X86_XSTATE as ptrace returns it */
	bool cap_sys_resource;	/* a hard rlimit could be raised in a child */
	struct eng_kerndat_item items[ENG_KD_NR];
};

/* 0 when every probe ran, or the first -errno of a probe that could not run (fork,
 * pipe); its item is then marked failed with the reason. */
int eng_kerndat_probe(struct eng_kerndat *kd);
/* Required items that are not ok. */
int eng_kerndat_nr_missing(const struct eng_kerndat *kd);
/* "uffd-wp+pagemap-scan", "soft-dirty", "hash". */
const char *eng_dirty_method_name(enum eng_dirty_method m);
/* @@kerndat-end */

/* ---- images (engine/image.c) ----------------------------------------------------- */
/* @@image: owned by the image work; declarations go between these markers. */
/*
 * A checkpoint is a directory (0700) of image files (0600), each written crash-safe and
 * each self-describing: header (magic "HACD", kind, format version, id), then records
 * (u32 length, u32 checksum, one protobuf message), then an end marker with the record
 * count. Page data and unlinked files' contents are raw kinds (header, then bytes),
 * checked through the XXH3-64 sums their metadata records carry. Every malformed file
 * is refused with a message naming the file, the record and the field.
 */
#include <stdio.h>

struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;

#define ENG_IMG_VERSION 1

enum eng_img_kind {		/* file name		records */
	ENG_IMG_INVENTORY = 1,	/* inventory.img	ImgInventory */
	ENG_IMG_PSTREE,		/* pstree.img		ImgPstreeEntry... */
	ENG_IMG_FILES,		/* files.img		ImgFile... */
	ENG_IMG_CORE,		/* core-PID.img		ImgCore, ImgThread... */
	ENG_IMG_MM,		/* mm-PID.img		ImgMm, ImgVma... */
	ENG_IMG_PAGEMAP,	/* pagemap-PID.img	ImgPagemapHead, ImgPagemapEntry... */
	ENG_IMG_FDS,		/* fds-PID.img		ImgFd... */
	ENG_IMG_PAGES,		/* pages-PID.img	raw page data */
	ENG_IMG_GHOST,		/* ghost-ID.img		raw contents of an unlinked file */
	ENG_IMG_SHMEM,		/* shmem.img		ImgShmem... (shared memory objects) */
	ENG_IMG_SHMDATA,	/* shmdata-ID.img	raw data extents of one of them */
	ENG_IMG_NR_KINDS
};

struct eng_img;

/*
 * Writing: create a temp file in dirfd, append records (the first is the kind's head
 * message, if it has one), then commit (fsync, rename into place, fsync the directory)
 * or abort (unlink the temp). Both free img; an error in any write makes commit fail.
 * Each message is checked as a reader would check it before it is written. `id` is the
 * pid (or file id) in the file name; ignored for inventory, pstree and files.
 */
int eng_img_create(int dirfd, enum eng_img_kind kind, uint32_t id, struct eng_img **out);
int eng_img_write(struct eng_img *img, const struct ProtobufCMessage *msg);
int eng_img_write_raw(struct eng_img *img, const void *buf, size_t len);
int eng_img_commit(struct eng_img *img);
void eng_img_abort(struct eng_img *img);
/* eng_img_commit in steps (ha_atomic_sync): sync keeps img (publish or abort it next),
 * publish frees it; the caller fsyncs the directory once all are published. */
int eng_img_sync(struct eng_img *img);
int eng_img_publish(struct eng_img *img);

/*
 * Reading: open checks the header and every record's frame (length, checksum, end
 * marker), so a damaged file is refused before any of it is used. eng_img_read()
 * unpacks the next record, which must be of type `desc`, and checks its fields: 1 and
 * *msg (free it with protobuf_c_message_free_unpacked(msg, NULL)), 0 at the end,
 * -EBADMSG (damaged) or -EINVAL (well-formed but wrong) with eng_last_error() set.
 */
int eng_img_open(int dirfd, enum eng_img_kind kind, uint32_t id, struct eng_img **out);
int eng_img_read(struct eng_img *img, const struct ProtobufCMessageDescriptor *desc,
		 struct ProtobufCMessage **msg);
/* Raw kinds: bytes of data after the header (while writing: so far, i.e. the offset the
 * next write lands at), and a pread at a data offset. */
uint64_t eng_img_raw_size(const struct eng_img *img);
int eng_img_read_raw(struct eng_img *img, uint64_t off, void *buf, size_t len);
/* "core-1234.img", for callers' own messages about what they read. */
const char *eng_img_name(const struct eng_img *img);
/* NULL-tolerant; aborts an image still being written. */
void eng_img_close(struct eng_img *img);

/*
 * hactl image show/verify. show decodes every file in dir (an unknown file is an error
 * too) and prints every record's fields, generically from the protobuf descriptors.
 * verify also checks every page run and ghost file against its checksum and the files
 * against each other. Both go on past a bad file and return its error: -EBADMSG or
 * -EINVAL for bad images, another -errno when dir cannot be read.
 */
struct eng_image_stats {
	unsigned files, records, errors;
	uint64_t data_bytes;	/* page and ghost bytes checksummed */
};
int eng_image_show(const char *dir, FILE *out, bool json);
int eng_image_verify(const char *dir, struct eng_image_stats *st);

/*
 * Crash-safe files (engine/fsutil.c), for every module that keeps state on disk: write
 * into a temp file (".NAME.PID.N.tmp", O_EXCL, 0600) in the same directory, then
 * fsync, rename over NAME and fsync the directory, so that NAME is always either the
 * old complete file or the new one (redis rdbSave). Names are relative to dirfd.
 * Failures are logged with the file name (eng_last_error()) and returned as -errno.
 */
struct ha_atomic_file {
	int dirfd;		/* borrowed */
	int fd;			/* write here; -1 once committed or aborted */
	char name[256];
	char tmp[320];
};
int ha_atomic_open(struct ha_atomic_file *af, int dirfd, const char *name);
/* Always closes; on failure the temp is unlinked and NAME is as it was. */
int ha_atomic_commit(struct ha_atomic_file *af);
/* ha_atomic_commit in steps, for many files at once: sync (fsync, close) each, then
 * publish (rename) each, then ha_fsync_dir once. Each fsync is a journal commit, and a
 * commit waits for what others write meanwhile: synced together, the files share one. */
int ha_atomic_sync(struct ha_atomic_file *af);
int ha_atomic_publish(struct ha_atomic_file *af);
/* Idempotent; a no-op after commit. */
void ha_atomic_abort(struct ha_atomic_file *af);
int ha_atomic_write_file(int dirfd, const char *name, const void *buf, size_t len);
/* Directory fd (O_DIRECTORY|O_CLOEXEC) of path or -errno. With create, path is made
 * 0700 if missing, and refused (-EPERM) if it exists with group or other access. */
int ha_dir_open(const char *path, bool create);
/* These two only return -errno; the caller knows what to name in its message. */
int ha_write_full(int fd, const void *buf, size_t len);
int ha_fsync_dir(int dirfd);
/* @@image-end */

/* ---- dump (engine/dump*.c) ------------------------------------------------------- */
/* @@dump: owned by the dump work; declarations go between these markers. */
enum eng_precopy {
	ENG_PRECOPY_AUTO,	/* pre-copy when there are >= 32 MiB of pages */
	ENG_PRECOPY_NEVER,	/* copy every page while the process is frozen */
	ENG_PRECOPY_ALWAYS,
};
struct eng_dump_opts {
	bool leave_running;	/* default: the process is killed once its images are safe */
	/* Copy pages while the process runs first (uffd async write-protect tracks what
	 * it writes meanwhile), so that the freeze only copies those. Falls back to a
	 * frozen copy when the kernel cannot track. */
	enum eng_precopy precopy;
};
/* Where a pause went: the frozen steps in the order met, each with its wall time
 * (a step met more than once, for each process of a tree, adds up). Always filled:
 * a clock read per step. Names are static strings ("seize", "task", "vma-plan", ...). */
#define ENG_PAUSE_STEPS 24
struct eng_pause_steps {
	int n;
	struct {
		const char *what;
		uint32_t us;
	} s[ENG_PAUSE_STEPS];
};

struct eng_dump_stats {
	uint64_t frozen_us;	/* first thread stopped -> released (or killed) */
	uint64_t collect_us;	/* first thread stopped -> all state copied out: what a
				 * --leave-running dump freezes at the least */
	uint64_t arm_us;	/* the earlier short stop that armed pre-copy (0: none) */
	uint64_t total_us;
	uint64_t pages_scanned;	/* pages of the mappings whose contents were looked at */
	uint64_t pages_written;	/* pages stored in pages-PID.img */
	uint64_t pages_zero;	/* present but all zero: recorded, not stored */
	uint64_t pages_precopied; /* taken from the pre-copy instead of copied while frozen */
	uint64_t bytes_written;	/* every image file, headers included */
	struct eng_pause_steps steps;	/* frozen_us step by step */
};
/*
 * Checkpoint process `pid` (all its threads) into directory `dir` (created 0700; an
 * existing one must be 0700 and empty). Fails before touching the process when it
 * holds something we cannot restore (naming pid, fd or mapping, and kind), and always
 * leaves it running unharmed on failure, with no image left in dir. Without
 * leave_running the process stays stopped until every image is committed, then is
 * killed (SIGKILL), so it never runs past its checkpoint. st may be NULL.
 */
int eng_dump(pid_t pid, const char *dir, const struct eng_dump_opts *opts, struct eng_dump_stats *st);
/* @@dump-end */

/* ---- restore (engine/restore*.c, parasite/src/restorer.c) ------------------------ */
/* @@restore: owned by the restore work; declarations go between these markers. */
struct eng_restore_opts {
	bool pidns;		/* into a new pid namespace, under an init of ours */
	uint32_t generation;	/* dir is a page store (eng_track): this generation, 0 the
				 * newest complete one; ignored for a plain image dir */
	int fill_workers;	/* threads putting pages in place; 0: HACD_RESTORE_WORKERS from
				 * the environment, else one per online CPU (at most 8); 1: each
				 * process fills itself */
};
/* Restore the checkpoint in `dir` as a child of the caller, with its PID and TIDs
 * (with pidns: inside a new pid namespace under a minimal init, and *pid is the init).
 * Returns 0 with *pid once the process runs again; on failure no process is left. The
 * caller reaps it (or exits, and it is reparented). Every image is checked before the
 * process is created, every page run before the point of no return. While it runs it
 * waits for any child (waitpid(-1)): call it from a process with no other children to
 * wait for, as hactl and the agent's engine worker are. */
int eng_restore(const char *dir, const struct eng_restore_opts *opts, pid_t *pid);
/* The same, and *root (when not NULL) the restored root process as the caller sees it:
 * the init's child under a pid namespace, else *pid. A checkpoint of a tree that lived
 * in its own pid namespace (dumped through our init) is always restored into a new one,
 * pidns or not. */
int eng_restore_pids(const char *dir, const struct eng_restore_opts *opts, pid_t *pid, pid_t *root);
/* @@restore-end */

/* ---- launch (engine/launch.c) ---------------------------------------------------- */
struct eng_launch_opts {
	bool pidns;		/* new pid, ipc, uts and mount namespaces under a minimal init of ours */
	const char *user;	/* NULL: the caller's credentials; else its uid, gid and groups */
	const char *cwd;	/* NULL: "/" */
	const char *const *env;	/* NULL: PATH, HOME, USER and LANG only */
	const char *log_path;	/* stdout and stderr appended here (0600); NULL: /dev/null */
};
/*
 * Start argv (argv[0] an absolute path, no shell) with stdin on /dev/null and every
 * inherited fd but stdio closed. *init is the process the caller waits for (the init
 * with pidns, which exits with the service's status; else the service itself), *pid the
 * service's main process as the caller sees it (the one to checkpoint); pid may be NULL.
 * Returns 0 once the execve happened, or -errno naming the step that failed, with
 * nothing left running.
 */
int eng_launch(const char *const *argv, const struct eng_launch_opts *opts, pid_t *init,
	       pid_t *pid);

/* ---- incremental checkpoints: tracked targets and the page store (engine/track*.c,
 * engine/store*.c) ------------------------------------------------------------------ */
/* @@track: owned by the incremental work; declarations go between these markers. */
/*
 * A page store is a directory (0700) of generations, each a complete image directory
 * (gen-NNNNNNNN/, restorable, verifiable, deletable and shippable on its own) whose
 * page map points into append-only pack files (packs/pack-NNNNNNNN.pack) of
 * zstd-compressed page runs: unchanged pages point at the pack an older generation
 * wrote. The layout is documented in engine/store.c for replication.
 *
 * Contract of a tracked target:
 *   eng_track_open()        takes the process's measure once: a pidfd, a userfaultfd
 *                           taken from it (a stop of a few ms), the store locked for
 *                           writing (flock); cleans what a crashed writer left there
 *   eng_track_checkpoint()  one generation: register new big mappings (a short stop),
 *                           pre-copy rounds while it runs (repeated while the dirty set
 *                           shrinks), freeze for the last round + metadata (small new
 *                           mappings registered and copied whole here), release,
 *                           compress, commit (atomic:
 *                           the generation exists only once fully written and fsynced).
 *                           The process always keeps running. A failure leaves no
 *                           generation and makes the next one full.
 *   eng_track_close()       unregisters every range (closing the uffd), unlocks.
 * New, moved and grown mappings, mappings whose registration was lost, and the first
 * generation after the process forked are stored whole: never a missed page.
 * Not thread-safe: one caller per tracked target.
 */
struct eng_track;

struct eng_track_opts {
	/* Without force_method: the best the kernel has (uffd-wp, else hash). With it:
	 * exactly `method`, or -EOPNOTSUPP. Soft-dirty is not implemented (no kernel here
	 * has it to test against) and is refused. */
	bool force_method;
	enum eng_dirty_method method;
	int max_rounds;		/* pre-copy rounds per generation (0: 8) */
	uint64_t min_round_pages;	/* stop pre-copying below this dirty set (0: 64) */
	int zstd_level;		/* 0: 1 */
};

struct eng_track_stats {
	uint32_t generation;
	uint64_t pause_us;	/* freeze (first thread stopped) -> released */
	uint64_t precopy_us;	/* the live rounds */
	uint64_t arm_us;	/* a short stop to register new big mappings (0: none) */
	uint32_t precopy_rounds;
	uint64_t pages_scanned;	/* pages of the mappings looked at */
	uint64_t pages_precopied;	/* copied by live rounds (may count a page twice) */
	uint64_t pages_frozen;	/* copied while frozen */
	uint64_t pages_written;	/* new pages stored in this generation's pack */
	uint64_t pages_zero;	/* present but all zero: not stored */
	uint64_t pages_total;	/* pages the generation's map holds (data + zero runs not counted) */
	uint64_t bytes_raw;	/* pages_written * 4096 */
	uint64_t bytes_written;	/* pack + metadata bytes this generation added */
	uint64_t total_us;
	bool full;		/* every page was stored anew (first, after a fork or failure) */
	struct eng_pause_steps steps;	/* pause_us step by step */
};

int eng_track_open(pid_t pid, const char *store_dir, const struct eng_track_opts *opts,
		   struct eng_track **out);
/*
 * Restore generation ropts->generation (0: the newest complete one) of the page store
 * store_dir, as eng_restore_pids does, and go on tracking the restored root: when it
 * resumes, its memory is that generation page for page, so *out starts from its page
 * map and the next eng_track_checkpoint stores only the pages written since the
 * restore (a process restored otherwise gets a full first generation). *out is NULL,
 * with 0, when the process could not be adopted (the store locked by another writer,
 * no uffd async write-protect, ...; logged): the restore stands, and the caller opens
 * a tracker the usual way. topts as for eng_track_open (a forced method other than
 * uffd-wp: no adoption).
 */
int eng_track_restore(const char *store_dir, const struct eng_restore_opts *ropts,
		      const struct eng_track_opts *topts, pid_t *pid, pid_t *root,
		      struct eng_track **out);
/* opts NULL: those given to eng_track_open (only the rounds and zstd level may change). */
int eng_track_checkpoint(struct eng_track *t, const struct eng_track_opts *opts,
			 struct eng_track_stats *st);
/* NULL-tolerant. The process keeps running. */
void eng_track_close(struct eng_track *t);
enum eng_dirty_method eng_track_method(const struct eng_track *t);

/* The store's complete generations in increasing order (malloc'ed; free it). */
int eng_store_list(const char *store_dir, uint32_t **gens, size_t *nr);
/* 1 when dir is a page store, 0 when not (a plain image directory, or nothing). */
int eng_store_is(const char *dir);
/* "STORE/gen-NNNNNNNN" of generation gen (0: newest complete) into buf. */
int eng_store_gen_path(const char *store_dir, uint32_t gen, char *buf, size_t len);
/* eng_image_verify() of the generation, then every pack blob it refers to: header,
 * XXH3 and decompression. Errors name the generation, the pack and the offset. */
int eng_store_verify(const char *store_dir, uint32_t gen, struct eng_image_stats *st);
/* Delete a generation (atomically: renamed away first), then free pack data no
 * generation refers to: whole packs are unlinked, unreferenced blobs in packs still
 * used are punched out (FALLOC_FL_PUNCH_HOLE: offsets stay valid, the file stays
 * append-only for replication). Takes the store lock: fails with -EBUSY while a
 * writer holds it. bytes_freed may be NULL. */
int eng_store_delete(const char *store_dir, uint32_t gen, uint64_t *bytes_freed);
/* The same, through a tracker that holds the lock (retention while tracking). Deleting
 * its newest generation makes its next one full (nothing older may be trusted). */
int eng_track_delete(struct eng_track *t, uint32_t gen, uint64_t *bytes_freed);
/*
 * Shipping store generations to a standby (engine/store-recv.c). A pack is named by
 * its number and identified by its size and ident (XXH3-64 of its first 4 KiB, never
 * punched, holding a random nonce): the standby holds another node's pack of the same
 * number after a failover, and must never append to it.
 */
struct eng_store_pack {
	uint32_t num;
	uint64_t size;
	uint64_t ident;
};
int eng_store_pack_ident(int fd, uint64_t size, uint64_t *ident);
/* The packs generation gen's page maps name, increasing (malloc'ed; free it). */
int eng_store_gen_packs(const char *store_dir, uint32_t gen, struct eng_store_pack **packs, size_t *n);

/*
 * The receiving side: a store opened (created if missing) and locked like a writer's,
 * one generation at a time:
 *   eng_store_rx_open       -EBUSY while another writer (the agent's worker deleting a
 *                           generation) holds the lock: try again shortly
 *   eng_store_rx_pack_have  bytes of the sender's pack already here (0..size);
 *                           -ESTALE when this store holds another node's pack of that
 *                           number: retire (eng_store_rx_delete) the generations from
 *                           that number on, then ask again
 *   eng_store_rx_begin      makes .gen-N.tmp/; the caller writes the metadata files
 *                           into the returned directory fd (and fsyncs each)
 *   eng_store_rx_pack_write appends the next bytes of a pack (in order, from `have`)
 *   eng_store_rx_commit     checks the received packs (size, header, ident), the
 *                           images' checksums, and every blob the page maps name
 *                           (received ones whole, held ones by header), then makes it
 *                           durable and renames it to gen-N/; partial packs numbered up
 *                           to N that it did not need are dropped (none later will)
 *   eng_store_rx_abort      drops .gen-N.tmp/; partial packs stay, to be resumed
 */
struct eng_store_rx;
struct eng_store_rx_stats {
	uint64_t blobs;			/* distinct blobs checked */
	uint64_t bytes_checked;		/* blob bytes read and hashed (received packs) */
	uint64_t bytes_headers;		/* blob bytes trusted by their header (held packs) */
	uint32_t packs_received;
};
int eng_store_rx_open(const char *store_dir, struct eng_store_rx **out);
void eng_store_rx_close(struct eng_store_rx *r);
int eng_store_rx_has_gen(struct eng_store_rx *r, uint32_t gen);
int eng_store_rx_list(struct eng_store_rx *r, uint32_t **gens, size_t *n);
int eng_store_rx_delete(struct eng_store_rx *r, uint32_t gen);
int eng_store_rx_pack_have(struct eng_store_rx *r, const struct eng_store_pack *p, uint64_t *have);
int eng_store_rx_begin(struct eng_store_rx *r, uint32_t gen, int *dirfd);
int eng_store_rx_pack_write(struct eng_store_rx *r, const struct eng_store_pack *p, uint64_t off,
			    const void *buf, size_t len);
int eng_store_rx_commit(struct eng_store_rx *r, const struct eng_store_pack *packs, size_t n,
			struct eng_store_rx_stats *st);
void eng_store_rx_abort(struct eng_store_rx *r);
/* @@track-end */

#endif
