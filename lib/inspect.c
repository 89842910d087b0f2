/*
 * inspect.c - kvmap_file_*: reading a database file's pages directly, for
 * tools that must look at a damaged file (layout in format.h).  The file is
 * opened read-only and read with pread, only inside the size it had at open;
 * every field is checked (meta.c's kv_meta_decode, node.c's cell decoding)
 * before it is used.  The checker and the rescue walk are in
 * inspect_check.c and inspect_rescue.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>

#include "inspect.h"

static bool valid_page_size(uint64_t ps)
{
    return ps >= KV_MIN_PAGE && ps <= KV_MAX_PAGE && (ps & (ps - 1)) == 0;
}

/* ---- reading ------------------------------------------------------------ */

int kv_file_read(kvmap_file *f, uint64_t pgno, uint8_t *buf)
{
    if (pgno >= f->npages)
        return KVMAP_NOTFOUND;
    int r = kv_os_pread(f->fd, buf, f->psize, pgno * f->psize);
    return r == KVMAP_INVALID ? -EIO : r; /* the file shrank since it was opened */
}

int kv_file_cached(kvmap_file *f, uint64_t pgno, const uint8_t **p)
{
    if (f->page_no != pgno) {
        f->page_no = UINT64_MAX;
        int r = kv_file_read(f, pgno, f->page);
        if (r < 0)
            return r;
        f->page_no = pgno;
    }
    *p = f->page;
    return 0;
}

int kv_file_run_checksum(kvmap_file *f, uint64_t pgno, uint64_t n, uint8_t *buf,
                         uint64_t *sum)
{
    if (n == 0 || pgno >= f->npages || n > f->npages - pgno)
        return KVMAP_NOTFOUND;
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return -ENOMEM;
    XXH3_64bits_reset(st);
    int r = 0;
    for (uint64_t i = 0; i < n && r == 0; i++) {
        r = kv_file_read(f, pgno + i, buf);
        if (r == 0)
            XXH3_64bits_update(st, buf + (i ? 0 : 8), f->psize - (i ? 0 : 8));
    }
    if (r == 0)
        *sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return r;
}

/* ---- opening ------------------------------------------------------------ */

static bool read_meta_at(kvmap_file *f, uint64_t off, uint8_t *buf)
{
    if (off + KV_META_SIZE > f->size)
        return false;
    return kv_os_pread(f->fd, buf, KV_META_SIZE, off) == 0;
}

/* The page size: from a meta that validates (meta 0, else meta 1 looked
 * for at every page size), else meta 0's field, else where a second meta's
 * magic is. */
static int find_page_size(kvmap_file *f)
{
    uint8_t b[KV_META_SIZE];
    kv_meta m;
    uint32_t ps = 0, magic_at = 0;
    bool magic0 = false;
    if (read_meta_at(f, 0, b)) {
        enum kv_meta_state st = kv_meta_decode(b, sizeof b, &m);
        magic0 = st != KV_META_NOT_KVMAP;
        if (st == KV_META_OK)
            ps = m.page_size;
        else if (magic0 && valid_page_size(kv_get32(b + KV_MT_PAGE_SIZE)))
            magic_at = kv_get32(b + KV_MT_PAGE_SIZE);
    }
    for (uint32_t p = KV_MIN_PAGE; ps == 0 && p <= KV_MAX_PAGE; p *= 2) {
        if (!read_meta_at(f, p, b))
            break;
        enum kv_meta_state st = kv_meta_decode(b, sizeof b, &m);
        if (st == KV_META_OK && m.page_size == p)
            ps = p;
        else if (st != KV_META_NOT_KVMAP && magic_at == 0)
            magic_at = p;
    }
    if (ps == 0)
        ps = magic_at;
    if (ps == 0)
        return magic0 ? KV_CORRUPT() : KVMAP_INVALID;
    f->psize = ps;
    return 0;
}

bool kv_file_meta_usable(const kvmap_file *f, int slot)
{
    return slot >= 0 && slot < 2 && f->state[slot] == KV_META_OK &&
           f->meta[slot].page_size == f->psize && f->meta[slot].hwm <= f->npages;
}

static int read_metas(kvmap_file *f)
{
    for (int s = 0; s < 2; s++) {
        memset(f->raw[s], 0, KV_META_SIZE);
        read_meta_at(f, (uint64_t)s * f->psize, f->raw[s]);
        f->state[s] = kv_meta_decode(f->raw[s], KV_META_SIZE, &f->meta[s]);
        if (f->state[s] == KV_META_NEWER)
            return KVMAP_VERSION;
    }
    f->newest = -1;
    for (int s = 0; s < 2; s++)
        if (kv_file_meta_usable(f, s) &&
            (f->newest < 0 || f->meta[s].txnid > f->meta[f->newest].txnid))
            f->newest = s;
    return 0;
}

/* recover.c's page source over pread: a buffer per walk level (a page's
 * cells stay in use while its children are read), one for overflow runs. */
typedef struct pread_src {
    kvmap_file *f;
    uint8_t *lvl;
    uint8_t *run;
} pread_src;

static int pread_page(void *ctx, uint64_t pgno, unsigned level, const uint8_t **p)
{
    pread_src *s = ctx;
    if (level >= KV_WALK_LEVELS)
        return KV_CORRUPT();
    uint8_t *buf = s->lvl + (size_t)level * s->f->psize;
    int r = kv_file_read(s->f, pgno, buf);
    if (r == KVMAP_NOTFOUND)
        return KV_CORRUPT(); /* past the end of the file */
    *p = buf;
    return r;
}

static int pread_run_sum(void *ctx, const uint8_t *p, uint64_t pgno, uint64_t n,
                         uint64_t *sum)
{
    pread_src *s = ctx;
    if (n == 1) {
        *sum = kv_page_checksum(p, s->f->psize);
        return 0;
    }
    int r = kv_file_run_checksum(s->f, pgno, n, s->run, sum);
    return r == KVMAP_NOTFOUND ? KV_CORRUPT() : r;
}

/* The meta kvmap_open would read, chosen by recover.c as kvmap_open chooses
 * it (the newest meta that validates, fits the file and whose commit is
 * whole on disk), and the newer one it would roll back. */
static int choose_current(kvmap_file *f)
{
    kv_meta_scan sc;
    memset(&sc, 0, sizeof sc);
    sc.page_size = f->psize;
    for (int s = 0; s < 2; s++) {
        bool ok = f->state[s] == KV_META_OK && f->meta[s].page_size == f->psize;
        /* as kv_meta_read has it: in a kvmap file, meta 0 without its magic
         * is damaged */
        sc.state[s] = ok ? KV_META_OK
                         : f->state[s] == KV_META_NOT_KVMAP && s == 1 ? KV_META_NOT_KVMAP
                                                                      : KV_META_BAD;
        sc.meta[s] = f->meta[s];
        sc.raw_txnid[s] = kv_get64(f->raw[s] + KV_MT_TXNID);
    }
    pread_src src = {f, malloc((size_t)KV_WALK_LEVELS * f->psize), malloc(f->psize)};
    int r = src.lvl && src.run ? 0 : -ENOMEM;
    if (r == 0) {
        kv_pagesrc ps = {&src, pread_page, pread_run_sum};
        int c = kv_meta_choose(&sc, f->npages, &ps, &f->choice);
        if (c == KVMAP_CORRUPTED) {
            f->choice.slot = -1; /* none qualifies: the tools still look at the file */
        } else if (c < 0) {
            /* a page could not be read (-EIO): claim no rollback; the tools
             * take the newest meta and meet the unreadable page themselves */
            memset(&f->choice, 0, sizeof f->choice);
            f->choice.rejected_slot = -1;
            f->choice.slot = f->newest;
            if (f->newest >= 0)
                f->choice.meta = f->meta[f->newest];
        }
        f->current = f->choice.slot;
    }
    free(src.lvl);
    free(src.run);
    return r;
}

int kvmap_file_open(const char *path, kvmap_file **fp)
{
    if (!path || !fp)
        return KVMAP_BAD_ARG;
    kvmap_file *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->fd = -1;
    f->page_no = UINT64_MAX;
    int r = kv_os_open(path, true, false, 0, &f->fd);
    if (r == 0)
        r = kv_os_size(f->fd, &f->size);
    if (r == 0)
        r = find_page_size(f);
    if (r == 0) {
        f->npages = f->size / f->psize;
        r = read_metas(f);
    }
    if (r == 0)
        r = choose_current(f);
    if (r == 0 && !(f->page = malloc(f->psize)))
        r = -ENOMEM;
    if (r < 0) {
        kvmap_file_close(f);
        return r;
    }
    *fp = f;
    return 0;
}

void kvmap_file_close(kvmap_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->page);
    free(f);
}

int kvmap_file_info_get(kvmap_file *f, kvmap_file_info *info)
{
    if (!f || !info)
        return KVMAP_BAD_ARG;
    memset(info, 0, sizeof *info);
    info->file_size = f->size;
    info->page_size = f->psize;
    info->pages = f->npages;
    info->meta_slot = f->current;
    if (f->current >= 0) {
        info->txnid = f->meta[f->current].txnid;
        info->hwm = f->meta[f->current].hwm;
    }
    info->rollback_slot = f->choice.rejected_slot;
    if (f->choice.rejected_slot >= 0) {
        info->rollback_txnid = f->choice.rejected_txnid;
        info->rollback_reason = f->choice.reason;
        info->rollback_problem = kv_rollback_problem(f->choice.reason);
    }
    return 0;
}

/* ---- meta pages --------------------------------------------------------- */

void kv_file_tree_fields(const kv_tree *k, kvmap_file_tree *t)
{
    t->root = k->root;
    t->depth = k->depth;
    t->entries = k->entries;
    t->branch_pages = k->branch_pages;
    t->leaf_pages = k->leaf_pages;
    t->overflow_pages = k->overflow_pages;
}

static void meta_verdict(const kvmap_file *f, unsigned s, kvmap_file_meta *m)
{
    switch (f->state[s]) {
    case KV_META_NOT_KVMAP:
        m->status = KVMAP_INVALID;
        m->problem = (uint64_t)s * f->psize + KV_META_SIZE > f->size
                         ? "missing: the file ends before it"
                         : "no kvmap magic: not a meta page";
        return;
    case KV_META_NEWER:
        m->status = KVMAP_VERSION;
        m->problem = "written by a newer format version";
        return;
    case KV_META_BAD:
        m->status = KVMAP_CORRUPTED;
        m->problem = m->checksum_ok ? "impossible field values (page size, "
                                      "high-water mark or a tree descriptor)"
                                    : "checksum mismatch";
        return;
    case KV_META_OK:
        break;
    }
    if (f->meta[s].page_size != f->psize) {
        m->status = KVMAP_CORRUPTED;
        m->problem = "page size differs from the file's";
    } else if (f->meta[s].hwm > f->npages) {
        m->status = KVMAP_CORRUPTED;
        m->problem = "high-water mark past the end of the file (truncated file)";
    }
}

int kvmap_file_meta_get(kvmap_file *f, unsigned slot, kvmap_file_meta *m)
{
    if (!f || !m || slot > 1)
        return KVMAP_BAD_ARG;
    const uint8_t *b = f->raw[slot];
    memset(m, 0, sizeof *m);
    m->slot = slot;
    m->checksum = kv_get64(b + KV_MT_CHECKSUM);
    m->checksum_ok = m->checksum == kv_page_checksum(b, KV_META_SIZE);
    kv_meta raw;
    kv_meta_fields(b, &raw);
    m->version = raw.version;
    m->page_size = raw.page_size;
    m->txnid = raw.txnid;
    m->hwm = raw.hwm;
    m->commit_pages = raw.commit_pages;
    m->commit_sum = raw.commit_sum;
    m->free_pages = raw.free_pages;
    kv_file_tree_fields(&raw.main, &m->main);
    kv_file_tree_fields(&raw.free, &m->free);
    kv_file_tree_fields(&raw.catalog, &m->catalog);
    m->commit_synced = (raw.flags & KV_MF_SYNCED) != 0;
    m->commit_list = raw.list;
    meta_verdict(f, slot, m);
    return 0;
}

/* ---- pages and cells ---------------------------------------------------- */

static bool all_zero(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void node_header(kvmap_file *f, const uint8_t *p, kvmap_file_page *pg)
{
    if (kv_node_check_header(p, f->psize) < 0) {
        pg->problem = pg->type == KV_BRANCH && pg->count == 0
                          ? "branch page without cells"
                          : "cell count or cell area does not fit the page";
        return;
    }
    pg->used = kv_node_used(p, f->psize);
    pg->fill = (unsigned)((uint64_t)pg->used * 100 / (f->psize - KV_PAGE_HDR));
}

static int overflow_header(kvmap_file *f, uint64_t pgno, kvmap_file_page *pg)
{
    uint64_t n = pg->count, sum;
    if (n == 0) {
        pg->problem = "overflow run of zero pages";
        return 0;
    }
    if (n > f->npages - pgno) {
        pg->problem = "overflow run goes past the end of the file";
        return 0;
    }
    uint8_t *buf = malloc(f->psize);
    if (!buf)
        return -ENOMEM;
    int r = kv_file_run_checksum(f, pgno, n, buf, &sum);
    free(buf);
    if (r == 0)
        pg->checksum_ok = sum == pg->checksum;
    return r;
}

int kvmap_file_page_get(kvmap_file *f, uint64_t pgno, kvmap_file_page *pg)
{
    if (!f || !pg)
        return KVMAP_BAD_ARG;
    memset(pg, 0, sizeof *pg);
    pg->pgno = pgno;
    pg->checksum_ok = -1;
    const uint8_t *p;
    int r = kv_file_cached(f, pgno, &p);
    if (r < 0)
        return r;
    pg->zero = all_zero(p, f->psize);
    if (pgno < KV_FIRST_PGNO) {
        kvmap_file_meta m;
        kvmap_file_meta_get(f, (unsigned)pgno, &m);
        pg->type = KVMAP_PAGE_META;
        pg->header_pgno = pgno;
        pg->txnid = m.txnid;
        pg->checksum = m.checksum;
        pg->checksum_ok = m.checksum_ok;
        pg->problem = m.problem;
        return 0;
    }
    pg->header_pgno = kv_pg_pgno(p);
    pg->txnid = kv_pg_txnid(p);
    pg->checksum = kv_get64(p + KV_PG_CHECKSUM);
    pg->type = kv_pg_type(p);
    pg->tree = kv_get16(p + KV_PG_TREE);
    pg->count = kv_pg_count(p);
    pg->upper = kv_pg_upper(p);
    if (pg->zero) {
        pg->problem = "all zero: never written";
        return 0;
    }
    if (pg->type == KV_BRANCH || pg->type == KV_LEAF) {
        pg->checksum_ok = pg->checksum == kv_page_checksum(p, f->psize);
        node_header(f, p, pg);
    } else if (pg->type == KV_OVERFLOW) {
        r = overflow_header(f, pgno, pg);
        if (r < 0)
            return r;
    } else {
        pg->problem = "unknown page type";
    }
    if (pg->tree > KV_TREE_NAMED)
        pg->problem = "unknown tree";
    if (pg->header_pgno != pgno)
        pg->problem = "its header records another page number (misplaced page)";
    return 0;
}

int kvmap_file_page_read(kvmap_file *f, uint64_t pgno, void *buf)
{
    if (!f || !buf)
        return KVMAP_BAD_ARG;
    return kv_file_read(f, pgno, buf);
}

int kvmap_file_cell_get(kvmap_file *f, uint64_t pgno, unsigned i, kvmap_file_cell *c)
{
    if (!f || !c)
        return KVMAP_BAD_ARG;
    memset(c, 0, sizeof *c);
    const uint8_t *p;
    int r = kv_file_cached(f, pgno, &p);
    if (r < 0)
        return r;
    int type = kv_pg_type(p);
    if (pgno < KV_FIRST_PGNO || (type != KV_BRANCH && type != KV_LEAF))
        return KVMAP_BAD_ARG;
    if (kv_node_check_header(p, f->psize) < 0)
        return KVMAP_CORRUPTED;
    if (i >= kv_pg_count(p))
        return KVMAP_NOTFOUND;
    kv_cell cell;
    if (kv_node_cell(p, f->psize, i, &cell) < 0)
        return KVMAP_CORRUPTED;
    c->offset = kv_get16(p + KV_PAGE_HDR + KV_SLOT_SIZE * i);
    c->size = kv_node_cell_size(p, f->psize, i);
    c->key = (kvmap_val){cell.key, cell.ksize};
    if (type == KV_BRANCH) {
        c->child = cell.child;
        return 0;
    }
    c->vsize = cell.vsize;
    if (cell.big)
        c->overflow = kv_get64(cell.val);
    else
        c->val = (kvmap_val){cell.val, cell.vsize};
    return 0;
}
