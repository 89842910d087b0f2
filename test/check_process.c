/*
 * check_process.c - DESIGN 9: handles across fork(), a reader that cannot
 * use the lock file (and one on a read-only medium, which needs none), a
 * thread that begins a second write transaction; the
 * strict mode (KVMAP_STRICT) that aborts a process on a damaged file.
 *
 * Every wait is guarded by an alarm in the child doing it, so that a
 * regression (a wedged file) fails the test instead of hanging it.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvmap.h"
#include "testhook.h"
#include "testutil.h"

/* An alarm that kills only this process (Check's SIGALRM handler, which
 * the test inherited, would kill the whole test). */
static void guard(unsigned seconds)
{
    signal(SIGALRM, SIG_DFL);
    alarm(seconds);
}

/* Run fn(path) in a child with a 10-second alarm; its exit status. */
static int in_child(const char *path, int (*fn)(const char *))
{
    pid_t pid = tu_fork();
    if (pid == 0) {
        guard(10);
        _exit(fn(path));
    }
    int st;
    tu_waitpid(pid, &st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st); /* 142: SIGALRM, it hung */
    return WEXITSTATUS(st);
}

static int open_put_get(const char *path)
{
    kvmap *db;
    if (tu_open(path, 0, 0, &db) != 0)
        return 3;
    kvmap_txn *t;
    if (kvmap_begin(db, 0, &t) != 0 || kvmap_put(t, tu_str("k2"), tu_str("v2"), 0) != 0 ||
        kvmap_commit(t) != 0)
        return 4;
    kvmap_close(db);
    return 0;
}

static char *make_db(char **dir)
{
    *dir = tu_mkdtemp();
    char *p = tu_path(*dir, "db");
    kvmap *db;
    ck_assert_kv_ok(tu_open(p, KVMAP_CREATE, 0, &db));
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("k"), tu_str("v"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    return p;
}

/* The parent closes while a child that inherited the handle lives: later
 * opens, in any process, must not wait. */
START_TEST(test_fork_parent_closes)
{
    char *dir, *p = make_db(&dir);
    kvmap *db;
    ck_assert_kv_ok(tu_open(p, 0, 0, &db));
    kvmap_txn *r = tu_rbegin(db); /* a reader slot and its lock, inherited */
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t child = tu_fork();
    if (child == 0) { /* lives on, holding its copies, until told */
        close(go[1]);
        char c;
        guard(20);
        (void)tu_read_full(go[0], &c, 1);
        _exit(0);
    }
    close(go[0]);
    kvmap_abort(r);
    kvmap_close(db);
    int rc = in_child(p, open_put_get);
    ck_assert_msg(rc == 0, "open after the parent closed, child alive: status %d%s", rc,
                  rc == 142 ? " (hung)" : "");
    ck_assert_kv_ok(tu_open(p, 0, 0, &db)); /* and here too */
    kvmap_close(db);
    ck_assert_int_eq(tu_write_full(go[1], "x", 1), 0);
    close(go[1]);
    int st;
    tu_waitpid(child, &st);
    tu_rmtree(dir);
    free(p);
    free(dir);
}
END_TEST

/* A child whose parent exited (without closing) leaves nothing locked: a
 * writer opens and commits, and the dead parent's reader slot is reclaimed. */
START_TEST(test_fork_parent_exits)
{
    char *dir, *p = make_db(&dir);
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t parent = tu_fork();
    if (parent == 0) {
        kvmap *db;
        if (tu_open(p, 0, 0, &db) != 0)
            _exit(3);
        kvmap_txn *w;
        if (kvmap_begin(db, 0, &w) != 0) /* holds the writer lock at the fork */
            _exit(4);
        if (tu_fork() == 0) { /* the grandchild outlives its parent */
            close(go[1]);
            char c;
            guard(20);
            (void)tu_read_full(go[0], &c, 1);
            _exit(0);
        }
        _exit(0); /* dies holding its write transaction */
    }
    close(go[0]);
    int st;
    tu_waitpid(parent, &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "parent: status %d", st);
    int rc = in_child(p, open_put_get);
    ck_assert_msg(rc == 0, "a writer after the parent died, its child alive: status %d%s", rc,
                  rc == 142 ? " (hung)" : "");
    ck_assert_int_eq(tu_write_full(go[1], "x", 1), 0);
    close(go[1]);
    tu_rmtree(dir);
    free(p);
    free(dir);
}
END_TEST

/* Two children using the inherited handle: every call fails at once with
 * KVMAP_FORKED, the file is untouched, and close frees only their memory. */
static int use_inherited(kvmap *db, kvmap_txn *inherited_read, kvmap_txn *inherited_write)
{
    kvmap_txn *t = (kvmap_txn *)(uintptr_t)1;
    kvmap_val v;
    kvmap_stat st;
    kvmap_rollback rb;
    if (kvmap_begin(db, 0, &t) != KVMAP_FORKED || t != (kvmap_txn *)(uintptr_t)1)
        return 10;
    if (kvmap_begin(db, KVMAP_TXN_RDONLY, &t) != KVMAP_FORKED)
        return 11;
    if (kvmap_get(inherited_read, tu_str("k"), &v) != KVMAP_FORKED)
        return 12;
    if (kvmap_stat_get(inherited_read, &st) != KVMAP_FORKED)
        return 13;
    if (kvmap_put(inherited_write, tu_str("child"), tu_str("x"), 0) != KVMAP_FORKED)
        return 14;
    if (kvmap_del(inherited_write, tu_str("k")) != KVMAP_FORKED)
        return 15;
    if (kvmap_rollback_get(db, &rb) != KVMAP_FORKED)
        return 16;
    if (kvmap_commit(inherited_write) != KVMAP_FORKED) /* frees the child's copy */
        return 17;
    kvmap_abort(inherited_read);
    kvmap_close(db);
    return 0;
}

START_TEST(test_fork_children_use_handle)
{
    char *dir, *p = make_db(&dir);
    kvmap *db;
    ck_assert_kv_ok(tu_open(p, 0, 0, &db));
    kvmap_txn *r = tu_rbegin(db), *w = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(w, tu_str("parent"), tu_str("p"), 0));
    size_t before_len;
    uint8_t *before = tu_read_file(p, &before_len);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = tu_fork();
        if (kids[i] == 0) {
            guard(10);
            _exit(use_inherited(db, r, w));
        }
    }
    for (int i = 0; i < 2; i++) {
        int st;
        tu_waitpid(kids[i], &st);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %d", i, st);
    }
    ck_assert_int_eq(tu_file_equals_buf(p, before, before_len), 1);
    free(before);
    /* the parent's transactions are intact */
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(r, tu_str("k"), &v));
    ck_assert_kv_ok(kvmap_commit(w));
    kvmap_abort(r);
    r = tu_rbegin(db);
    ck_assert_kv_ok(kvmap_get(r, tu_str("parent"), &v));
    ck_assert_kv_rc(kvmap_get(r, tu_str("child"), &v), KVMAP_NOTFOUND);
    kvmap_abort(r);
    tu_check_db(db);
    kvmap_close(db);
    /* a child that opens the database itself works */
    ck_assert_int_eq(in_child(p, open_put_get), 0);
    tu_rmtree(dir);
    free(p);
    free(dir);
}
END_TEST

/* A reader whose lock file it cannot write gets -EACCES; KVMAP_NOLOCK reads. */
static int read_as_nobody(const char *path)
{
    if (setgid(65534) != 0 || setuid(65534) != 0)
        return 77;
    kvmap *db = (kvmap *)(uintptr_t)1;
    kvmap_options o = {.flags = KVMAP_RDONLY};
    int rc = kvmap_open(path, &o, &db);
    if (rc != -EACCES)
        return 20;
    o.flags = KVMAP_RDONLY | KVMAP_NOLOCK;
    if (kvmap_open(path, &o, &db) != 0)
        return 21;
    kvmap_txn *t;
    kvmap_val v;
    if (kvmap_begin(db, KVMAP_TXN_RDONLY, &t) != 0 || kvmap_get(t, tu_str("k"), &v) != 0 ||
        !tu_val_eq_str(v, "v"))
        return 22;
    kvmap_abort(t);
    kvmap_close(db);
    return 0;
}

START_TEST(test_reader_without_lock_access)
{
    char *dir, *p = make_db(&dir);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(chmod(p, 0644), 0);
    char *lp = tu_path(dir, "db-lock");
    kvmap *db;
    ck_assert_kv_ok(tu_open(p, 0, 0, &db)); /* the writer keeps it open: lock file 0644 */
    ck_assert_int_eq(chmod(lp, 0644), 0);
    int rc = in_child(p, read_as_nobody);
    kvmap_close(db);
    ck_assert_msg(rc == 0, "reader as another user: status %d", rc);
    free(lp);
    tu_rmtree(dir);
    free(p);
    free(dir);
}
END_TEST

/* A read-only medium (the lock file's open fails with EROFS, injected at
 * the second open(2), the first being the database's): a reader needs no
 * lock file there, since no writer can exist; a writer gets the error. */
START_TEST(test_reader_on_readonly_medium)
{
    char *dir, *p = make_db(&dir);
    char *lp = tu_path(dir, "db-lock");
    ck_assert_int_eq(unlink(lp), 0);
    kvmap *db = NULL;
    kvmap_options o = {.flags = KVMAP_RDONLY};
    kvmap__fault_set(KVMAP__FAULT_OPEN, 2, EROFS);
    int rc = kvmap_open(p, &o, &db);
    uint64_t hits = kvmap__fault_hits();
    kvmap__fault_set(0, 0, 0);
    ck_assert_kv_ok(rc);
    ck_assert_uint_eq(hits, 1);
    ck_assert_int_lt(tu_file_size(lp), 0); /* no lock file was made */
    kvmap_txn *t = tu_rbegin(db);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("k"), &v));
    ck_assert(tu_val_eq_str(v, "v"));
    kvmap_abort(t);
    kvmap_close(db);
    o.flags = 0; /* a writer: the error */
    kvmap__fault_set(KVMAP__FAULT_OPEN, 2, EROFS);
    rc = kvmap_open(p, &o, &db);
    kvmap__fault_set(0, 0, 0);
    ck_assert_kv_rc(rc, -EROFS);
    free(lp);
    tu_rmtree(dir);
    free(p);
    free(dir);
}
END_TEST

/* Whether a child of this process can become uid 65534 (root can; the
 * suite runs as root on CI): the reader test is registered only then. */
static bool can_switch_uid(void)
{
    if (geteuid() != 0)
        return false;
    pid_t pid = fork();
    if (pid == 0)
        _exit(setgid(65534) == 0 && setuid(65534) == 0 ? 0 : 1);
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* KVMAP_STRICT=1 (bbolt's StrictMode): the checker runs after every
 * commit, and a problem aborts the process with its report on stderr.  A
 * value byte of a leaf that the commit does not touch is damaged first:
 * the commit itself succeeds, the check after it finds the page. */
#define STRICT_MARK "strict-mode-marker-value"

static int strict_put(const char *path)
{
    kvmap *db;
    if (tu_open(path, 0, 0, &db) != 0)
        return 3;
    kvmap_txn *t;
    if (kvmap_begin(db, 0, &t) != 0 || kvmap_put(t, tu_str("zzz"), tu_str("v"), 0) != 0)
        return 4;
    int rc = kvmap_commit(t);
    kvmap_close(db);
    return rc == 0 ? 0 : 5;
}

static int strict_put_unchecked(const char *path)
{
    unsetenv("KVMAP_STRICT"); /* (CI runs this suite in strict mode too) */
    return strict_put(path);
}

static int strict_put_checked(const char *path)
{
    setenv("KVMAP_STRICT", "1", 1);
    return strict_put(path);
}

START_TEST(test_strict_mode_aborts)
{
    char *dir = tu_mkdtemp(), *p = tu_path(dir, "db");
    kvmap *db;
    ck_assert_kv_ok(tu_open(p, KVMAP_CREATE, 0, &db));
    kvmap_txn *t = tu_wbegin(db);
    char k[16], v[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "a%04d", i);
        snprintf(v, sizeof v, "%s-%04d-%080d", i == 0 ? STRICT_MARK : "value", i, 0);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_str(v), 0));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    /* sound: strict mode checks and passes */
    ck_assert_int_eq(in_child(p, strict_put_checked), 0);
    size_t len;
    uint8_t *f = tu_read_file(p, &len);
    ck_assert_ptr_nonnull(f);
    uint8_t *at = memmem(f, len, STRICT_MARK, strlen(STRICT_MARK));
    ck_assert_ptr_nonnull(at);
    at[3] ^= 0x20;
    ck_assert_int_eq(tu_write_file(p, f, len), 0);
    free(f);
    char *copy = tu_path(dir, "copy");
    f = tu_read_file(p, &len);
    ck_assert_int_eq(tu_write_file(copy, f, len), 0);
    free(f);
    /* damaged: without strict mode the commit goes through unnoticed ... */
    ck_assert_int_eq(in_child(copy, strict_put_unchecked), 0);
    /* ... with it, the check after the commit aborts, naming the problem */
    char *errpath = tu_path(dir, "stderr");
    pid_t pid = tu_fork();
    if (pid == 0) {
        guard(10);
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(9);
        _exit(strict_put_checked(p));
    }
    int st;
    tu_waitpid(pid, &st);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                  "strict mode on a damaged file: status %#x, not SIGABRT", st);
    char *err = tu_read_file(errpath, &len);
    ck_assert_ptr_nonnull(err);
    err = realloc(err, len + 1);
    err[len] = 0;
    ck_assert_msg(strstr(err, "kvmap strict mode: page ") && strstr(err, "checksum"),
                  "strict mode's report: %s", err);
    free(err);
    free(errpath);
    free(copy);
    tu_rmtree(dir);
    free(p);
    free(dir);
}
END_TEST

/* A second write transaction in a thread that holds one: an error, at once. */
START_TEST(test_nested_writer)
{
    char *dir, *p = make_db(&dir);
    kvmap *a, *b;
    ck_assert_kv_ok(tu_open(p, 0, 0, &a));
    ck_assert_kv_ok(tu_open(p, 0, 0, &b));
    kvmap_txn *w = tu_wbegin(a), *w2 = (kvmap_txn *)(uintptr_t)1;
    alarm(10); /* a deadlock fails the test (Check reports the signal) */
    ck_assert_kv_rc(kvmap_begin(a, 0, &w2), KVMAP_BAD_TXN);
    ck_assert_kv_rc(kvmap_begin(b, 0, &w2), KVMAP_BAD_TXN);
    ck_assert_ptr_eq(w2, (kvmap_txn *)(uintptr_t)1);
    /* reads are fine meanwhile */
    kvmap_txn *r = tu_rbegin(b);
    kvmap_abort(r);
    ck_assert_kv_ok(kvmap_put(w, tu_str("x"), tu_str("y"), 0));
    ck_assert_kv_ok(kvmap_commit(w));
    w = tu_wbegin(b); /* and once it ended, the thread writes again */
    ck_assert_kv_ok(kvmap_commit(w));
    alarm(0);
    kvmap_close(b);
    kvmap_close(a);
    tu_rmtree(dir);
    free(p);
    free(dir);
}
END_TEST

static Suite *process_suite(void)
{
    Suite *s = suite_create("process");
    TCase *tc = tcase_create("fork");
    tcase_add_test(tc, test_fork_parent_closes);
    tcase_add_test(tc, test_fork_parent_exits);
    tcase_add_test(tc, test_fork_children_use_handle);
    suite_add_tcase(s, tc);
    tc = tcase_create("misuse");
    if (can_switch_uid())
        tcase_add_test(tc, test_reader_without_lock_access);
    else
        fprintf(stderr, "check_process: test_reader_without_lock_access not run: this process"
                " cannot switch to another uid (it needs root)\n");
    tcase_add_test(tc, test_reader_on_readonly_medium);
    tcase_add_test(tc, test_nested_writer);
    tcase_add_test(tc, test_strict_mode_aborts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(process_suite());
}
