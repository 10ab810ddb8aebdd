/* Directory reading beyond readdir, printed so the view can be compared with
 * a physical copy: telldir/seekdir positions, dirfd, raw getdents64/getdents
 * (syscall and glibc wrapper), glibc's fts_*, and getcwd after chdir.
 * Usage: dirs MODE DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void print_sorted(const char *tag, char **names, int n) {
    qsort(names, n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) printf("%s %s\n", tag, names[i]);
}

/* telldir before every entry; then seekdir to each position (backwards, so
 * rift and disk phases alternate) must give that entry again. dirfd-relative
 * lstat of every name must agree with lstat of the full path. */
static int seek(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { perror("opendir"); return 1; }
    long pos[512];
    char *names[512];
    int n = 0;
    for (;;) {
        pos[n] = telldir(d);
        struct dirent *e = readdir(d);
        if (!e || n == 511) break;
        names[n++] = strdup(e->d_name);
    }
    long end = telldir(d);
    int bad = 0;
    for (int i = n - 1; i >= 0; i--) {
        seekdir(d, pos[i]);
        struct dirent *e = readdir(d);
        if (!e || strcmp(e->d_name, names[i]) != 0) bad++;
        /* d_off of an entry is the position of the next one */
        if (e && i + 1 < n && e->d_off != pos[i + 1]) bad++;
    }
    seekdir(d, end);
    int past_end = readdir(d) != NULL;
    rewinddir(d);
    int again = 0;
    while (readdir(d)) again++;
    if (again != n) bad++;
    int fd_bad = 0;
    char **lines = calloc(n, sizeof *lines);
    for (int i = 0; i < n; i++) {
        struct stat a, b;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, names[i]);
        int ra = fstatat(dirfd(d), names[i], &a, AT_SYMLINK_NOFOLLOW);
        int rb = lstat(full, &b);
        if (ra != rb || (ra == 0 && (a.st_size != b.st_size || a.st_mode != b.st_mode || a.st_ino != b.st_ino))) fd_bad++;
        char line[512];
        snprintf(line, sizeof line, "%s %o %lld", names[i], a.st_mode, S_ISDIR(a.st_mode) ? 0LL : (long long)a.st_size);
        lines[i] = strdup(line);
    }
    closedir(d);
    printf("seek entries=%d bad=%d past_end=%d dirfd_bad=%d\n", n, bad, past_end, fd_bad);
    print_sorted("entry", lines, n);
    return 0;
}

struct linux_dirent {
    unsigned long d_ino;
    unsigned long d_off;
    unsigned short d_reclen;
    char d_name[];
};

/* Reads the whole directory with raw records through `how` (a small buffer,
 * so several calls are needed); returns the number of names. */
static int read_raw(int fd, int how, char **names, int max) {
    char buf[200];
    int n = 0;
    for (;;) {
        long got;
        if (how == 0) got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        else if (how == 1) got = getdents64(fd, buf, sizeof buf);
        else got = syscall(SYS_getdents, fd, buf, sizeof buf);
        if (got < 0) { perror("getdents"); exit(1); }
        if (got == 0) return n;
        for (long off = 0; off < got;) {
            const char *name;
            unsigned char type;
            unsigned short reclen;
            if (how < 2) {
                struct dirent64 *e = (struct dirent64 *)(buf + off);
                name = e->d_name; type = e->d_type; reclen = e->d_reclen;
            } else {
                struct linux_dirent *e = (struct linux_dirent *)(buf + off);
                name = e->d_name; reclen = e->d_reclen; type = buf[off + reclen - 1];
            }
            if (n < max) {
                char line[300];
                snprintf(line, sizeof line, "%s %d", name, type);
                names[n++] = strdup(line);
            }
            off += reclen;
        }
    }
}

static int dents(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) { perror("open"); return 1; }
    char *a[512], *b[512], *c[512];
    int na = read_raw(fd, 0, a, 512);
    int again = read_raw(fd, 0, b, 512); /* at the end: nothing more */
    lseek(fd, 0, SEEK_SET);              /* a rewind reads it all again */
    int nb = read_raw(fd, 1, b, 512);
    lseek(fd, 0, SEEK_SET);
    int nc = read_raw(fd, 2, c, 512);
    char tiny[8];
    long small = syscall(SYS_getdents64, fd, tiny, sizeof tiny);
    lseek(fd, 0, SEEK_SET);
    long small2 = syscall(SYS_getdents64, fd, tiny, sizeof tiny);
    close(fd);
    printf("getdents64 %d again %d wrapper %d getdents %d small %ld/%ld\n", na, again, nb, nc, small, small2);
    print_sorted("dent", a, na);
    int same = 1;
    qsort(b, nb, sizeof *b, by_name);
    qsort(c, nc, sizeof *c, by_name);
    for (int i = 0; i < na && i < nb && i < nc; i++)
        same &= strcmp(a[i], b[i]) == 0 && strcmp(a[i], c[i]) == 0;
    printf("all three agree %d\n", same && na == nb && na == nc);
    return 0;
}

static int cmp_ent(const FTSENT **a, const FTSENT **b) { return strcmp((*a)->fts_name, (*b)->fts_name); }

static void walk(const char *dir, int options, const char *skip) {
    char *argv[] = {(char *)dir, NULL};
    FTS *fts = fts_open(argv, options, cmp_ent);
    if (!fts) { perror("fts_open"); exit(1); }
    FTSENT *root = fts_children(fts, 0);
    printf("fts children-of-init %s\n", root ? root->fts_name : "(null)");
    FTSENT *e;
    while ((e = fts_read(fts)) != NULL) {
        /* no stat information with FTS_NOSTAT; a directory's size is the file system's */
        int st = !(options & FTS_NOSTAT);
        long long size = st && (e->fts_info == FTS_F || e->fts_info == FTS_SL) ? (long long)e->fts_statp->st_size : 0;
        printf("fts %d %d %s %lld %o\n", e->fts_info, e->fts_level, e->fts_path, size,
               st && e->fts_info != FTS_DP ? e->fts_statp->st_mode : 0);
        if (e->fts_info == FTS_D && e->fts_level == 0) {
            int k = 0;
            for (FTSENT *c = fts_children(fts, FTS_NAMEONLY); c; c = c->fts_link) k++;
            printf("fts names-only %d\n", k);
        }
        if (e->fts_info == FTS_D && skip && strcmp(e->fts_name, skip) == 0)
            fts_set(fts, e, FTS_SKIP);
    }
    fts_close(fts);
}

static int cwd(const char *dir) {
    if (chdir(dir) != 0) { perror("chdir"); return 1; }
    char buf[4096];
    char *p = getcwd(buf, sizeof buf);
    const char *d = p ? strstr(p, "/deps/") : NULL;
    printf("getcwd %s\n", d ? d + 1 : "(none)");
    char *m = getcwd(NULL, 0);
    printf("getcwd-malloc same %d\n", m && p && strcmp(m, p) == 0);
    struct stat st;
    printf("relative stat %d\n", stat("package.json", &st) == 0 ? (int)st.st_size : -1);
    int fd = open(".", O_RDONLY | O_DIRECTORY);
    chdir("/");
    fchdir(fd);
    p = getcwd(buf, sizeof buf);
    d = p ? strstr(p, "/deps/") : NULL;
    printf("after fchdir %s %d\n", d ? d + 1 : "(none)", stat("package.json", &st) == 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    if (strcmp(argv[1], "seek") == 0) return seek(argv[2]);
    if (strcmp(argv[1], "dents") == 0) return dents(argv[2]);
    if (strcmp(argv[1], "fts") == 0) {
        walk(argv[2], FTS_PHYSICAL, "pkg-2");
        walk(argv[2], FTS_LOGICAL, NULL);
        walk(argv[2], FTS_PHYSICAL | FTS_NOSTAT, NULL);
        walk(argv[2], FTS_COMFOLLOW | FTS_PHYSICAL | FTS_SEEDOT, "lib");
        return 0;
    }
    if (strcmp(argv[1], "cwd") == 0) return cwd(argv[2]);
    return 2;
}
