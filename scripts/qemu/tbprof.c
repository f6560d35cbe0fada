/* TCG plugin for qemu-user 7.2 (plugin API v1): counts executed guest instructions per function
 * symbol and per mnemonic, prints the totals and the top entries to stderr at exit, and writes
 * one line per translated block that ran ("address instructions executions symbol") to the file
 * named by $TBPROF_OUT (default tbprof.txt). ../shared/tools/qemu-insn/insnprof.c with the
 * per-block file added; used by scripts/arm_profile.sh.
 * Options: -plugin libtbprof.so,top=N  (default 25). Needs an unstripped binary for symbols. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb; struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
extern const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

typedef struct { uint64_t count; size_t n; char **mnem; const char *sym; uint64_t va; } TB;
static TB **tbs; static size_t ntbs, cap; static int top = 25;
typedef struct { const char *key; uint64_t v; } KV;
static KV *tab; static size_t tcap;
static size_t h(const char *s) { size_t x = 1469598103934665603ULL; while (*s) x = (x ^ (unsigned char)*s++) * 1099511628211ULL; return x; }
static void add(const char *k, uint64_t v) {
    size_t i = h(k) & (tcap - 1);
    while (tab[i].key && strcmp(tab[i].key, k)) i = (i + 1) & (tcap - 1);
    if (!tab[i].key) tab[i].key = k;
    tab[i].v += v;
}
static int cmp(const void *a, const void *b) { uint64_t x = ((KV *)a)->v, y = ((KV *)b)->v; return x < y ? 1 : x > y ? -1 : 0; }
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    TB *t = calloc(1, sizeof(TB)); t->n = n; t->mnem = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *in = qemu_plugin_tb_get_insn(tb, i);
        char *d = qemu_plugin_insn_disas(in); char *sp = d ? strpbrk(d, " \t") : NULL; if (sp) *sp = 0;
        t->mnem[i] = d ? d : strdup("?");
        if (i == 0) { t->va = qemu_plugin_insn_vaddr(in); const char *s = qemu_plugin_insn_symbol(in); t->sym = s ? strdup(s) : "?"; }
    }
    if (ntbs == cap) { cap = cap ? 2 * cap : 4096; tbs = realloc(tbs, cap * sizeof(TB *)); }
    tbs[ntbs++] = t;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &t->count, 1);
}
static void dump(const char *title, uint64_t total) {
    size_t m = 0; for (size_t i = 0; i < tcap; i++) if (tab[i].key) tab[m++] = tab[i];
    qsort(tab, m, sizeof(KV), cmp);
    fprintf(stderr, "%s\n", title);
    for (size_t i = 0; i < m && i < (size_t)top; i++)
        fprintf(stderr, "  %14llu %5.1f%%  %s\n", (unsigned long long)tab[i].v, 100.0 * tab[i].v / (total ? total : 1), tab[i].key);
}
static void at_exit(qemu_plugin_id_t id, void *p) {
    uint64_t total = 0;
    for (size_t i = 0; i < ntbs; i++) total += tbs[i]->count * tbs[i]->n;
    fprintf(stderr, "insns %llu\n", (unsigned long long)total);
    tcap = 1 << 20; tab = calloc(tcap, sizeof(KV));
    for (size_t i = 0; i < ntbs; i++) add(tbs[i]->sym, tbs[i]->count * tbs[i]->n);
    dump("by function (symbol of each translated block's first instruction):", total);
    memset(tab, 0, tcap * sizeof(KV));
    for (size_t i = 0; i < ntbs; i++) for (size_t j = 0; j < tbs[i]->n; j++) add(tbs[i]->mnem[j], tbs[i]->count);
    dump("by mnemonic:", total);
    FILE *f = fopen(getenv("TBPROF_OUT") ? getenv("TBPROF_OUT") : "tbprof.txt", "w");
    for (size_t i = 0; i < ntbs; i++) if (tbs[i]->count) fprintf(f, "%llx %zu %llu %s\n", (unsigned long long)tbs[i]->va, tbs[i]->n, (unsigned long long)tbs[i]->count, tbs[i]->sym);
    fclose(f);
}
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++) if (!strncmp(argv[i], "top=", 4)) top = atoi(argv[i] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
