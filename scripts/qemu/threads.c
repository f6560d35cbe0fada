/* TCG plugin for qemu-user 7.2 (plugin API v1): where a multi-threaded edgenet inference spends
 * its instructions, per guest thread, and what that bounds the speed-up to.
 *
 * The program must be built with the cargo feature `insn-marks`: the int8 kernels' thread pool
 * then executes marker no-ops (aarch64 `hint #124..#127`, x86-64 `nopl 0x5eed007c..f(%rax)`) at
 * the start and end of every parallel job (on the calling thread) and of every task (on
 * whichever thread runs it). Every instruction is then either
 *   serial: the calling thread outside a job (tract's ops, edgenet's element-wise int8 ops ...),
 *   task:   inside a task of a job, on any thread,
 *   pool:   the rest (the pool's posting, claiming, waiting and spinning, worker start-up).
 * At exit it prints, on stderr, lines of `key value`:
 *   threads_serial S   threads_task T   threads_pool P   threads_jobs J   threads_tasks K
 *   threads_bound_N B  for N in 1..8: S + the sum over jobs of the job's tasks replayed, in the
 *                      order they began, on N equal threads (each next task to the thread free
 *                      first, as the pool's atomic counter hands them out).
 * All of them are sums, so the difference between two runs of different length (bench --runs 1
 * and --runs 3) divided by the difference in inferences is per inference.
 * Declarations written out: Debian ships no qemu-plugin.h; they follow the v1 ABI. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb; struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb, enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb, enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum { JOB_BEGIN, JOB_END, TASK_BEGIN, TASK_END };
enum { SERIAL, POOL, TASK };
#define MAXV 1024
#define MAXN 8
typedef struct { uint64_t count, mark, by[3]; int mode, before, task; } Vcpu; /* task: its slot in tasks[] */
static Vcpu v[MAXV];
static uint64_t sum[3];
static uint64_t *tasks; static size_t ntasks, cap;  /* task instruction counts, in begin order */
static size_t job_first; static int in_job;          /* the open job's first task */
static uint64_t bound[MAXN + 1], njobs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The open job's tasks replayed on 1..MAXN threads. */
static void close_job(void) {
    uint64_t spans[MAXN + 1] = {0};
    for (int n = 1; n <= MAXN; n++) {
        uint64_t free_at[MAXN] = {0}, span = 0;
        for (size_t t = job_first; t < ntasks; t++) {
            int best = 0;
            for (int i = 1; i < n; i++) if (free_at[i] < free_at[best]) best = i;
            free_at[best] += tasks[t];
            if (free_at[best] > span) span = free_at[best];
        }
        bound[n] += span;
        spans[n] = span;
    }
    if (getenv("THREADS_JOBS")) { /* one line per job: its tasks, their sum, the replay on 4 threads */
        uint64_t all = 0;
        for (size_t t = job_first; t < ntasks; t++) all += tasks[t];
        fprintf(stderr, "job %llu tasks %zu work %llu span4 %llu\n", (unsigned long long)njobs, ntasks - job_first, (unsigned long long)all, (unsigned long long)spans[4]);
    }
    njobs++;
}

static void tb_exec(unsigned int i, void *n) { if (i < MAXV) v[i].count += (uintptr_t)n; }

static void mark(unsigned int i, void *ud) {
    if (i >= MAXV) return;
    uintptr_t kind = (uintptr_t)ud & 0xff, after = (uintptr_t)ud >> 8;
    Vcpu *c = &v[i];
    uint64_t now = c->count - after, d = now - c->mark;  /* instructions since the last mark */
    c->mark = now;
    c->by[kind == TASK_END ? TASK : c->mode] += d;
    pthread_mutex_lock(&lock);
    switch (kind) {
    case JOB_BEGIN: sum[c->mode] += d; c->mode = POOL; job_first = ntasks; in_job = 1; break;
    case JOB_END:
        sum[c->mode] += d; c->mode = i == 0 ? SERIAL : POOL;
        if (in_job) close_job();
        in_job = 0; break;
    case TASK_BEGIN:
        sum[c->mode] += d; c->before = c->mode; c->mode = TASK;
        if (ntasks == cap) { cap = cap ? 2 * cap : 65536; tasks = realloc(tasks, cap * sizeof *tasks); }
        c->task = (int)ntasks; tasks[ntasks++] = 0; break;
    case TASK_END:
        sum[TASK] += d; tasks[c->task] += d; c->mode = c->before; break;
    }
    pthread_mutex_unlock(&lock);
}

/* The marker kind of an instruction, or -1. */
static int kind_of(const unsigned char *b, size_t len) {
    if (len == 4) { /* aarch64 hint #124..#127: 0xd503201f | imm << 5 */
        uint32_t w = b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
        for (int k = 0; k < 4; k++) if (w == (0xd503201fu | (uint32_t)(124 + k) << 5)) return k;
    }
    if (len == 7 && b[0] == 0x0f && b[1] == 0x1f && b[2] == 0x80 && b[5] == 0xed && b[6] == 0x5e && b[4] == 0 && b[3] >= 0x7c && b[3] <= 0x7f)
        return b[3] - 0x7c; /* x86-64 nopl 0x5eed007c+k(%rax) */
    return -1;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)n);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *in = qemu_plugin_tb_get_insn(tb, i);
        int k = kind_of(qemu_plugin_insn_data(in), qemu_plugin_insn_size(in));
        /* The block's count is added when it starts: the instructions after the marker are not
         * executed yet when the marker is. */
        if (k >= 0) qemu_plugin_register_vcpu_insn_exec_cb(in, mark, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)(k | (n - i - 1) << 8));
    }
}

static void at_exit(qemu_plugin_id_t id, void *p) {
    uint64_t tail[3] = {0};
    for (int i = 0; i < MAXV; i++) tail[v[i].mode] += v[i].count - v[i].mark;
    fprintf(stderr, "threads_serial %llu\nthreads_task %llu\nthreads_pool %llu\nthreads_jobs %llu\nthreads_tasks %llu\n",
            (unsigned long long)(sum[SERIAL] + tail[SERIAL]), (unsigned long long)sum[TASK], (unsigned long long)(sum[POOL] + tail[POOL] + tail[TASK]),
            (unsigned long long)njobs, (unsigned long long)ntasks);
    if (getenv("THREADS_VERBOSE"))
        for (int i = 0; i < MAXV; i++)
            if (v[i].count) fprintf(stderr, "vcpu %d: serial %llu pool %llu task %llu tail %llu mode %d\n", i, (unsigned long long)v[i].by[SERIAL],
                                    (unsigned long long)v[i].by[POOL], (unsigned long long)v[i].by[TASK], (unsigned long long)(v[i].count - v[i].mark), v[i].mode);
    for (int n = 1; n <= MAXN; n++)
        fprintf(stderr, "threads_bound_%d %llu\n", n, (unsigned long long)(sum[SERIAL] + tail[SERIAL] + bound[n]));
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 1; i < MAXV; i++) v[i].mode = POOL; /* threads other than the first start in the pool */
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
