/* Calls each export of the shim that no other test calls, or whose body is
 * its own rather than a sibling's (exports.txt rows naming
 * exports::the_probe_calls_its_rows_in_the_view_as_on_disk), on files it
 * made itself: in the view they are rift entries. Run natively in a twin
 * directory and under `vrift run` in a project: the lines must match. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

extern char **environ;
extern ssize_t __readlinkat_chk(int, const char *, char *, size_t, size_t);

/* Compiled by glibc before 2.33 into calls of these (compat symbols now). */
extern int __xstat(int, const char *, struct stat *);
extern int __fxstat(int, int, struct stat *);
extern int __fxstat64(int, int, struct stat64 *);
__asm__(".symver __xstat, __xstat@GLIBC_2.2.5");
__asm__(".symver __fxstat, __fxstat@GLIBC_2.2.5");
__asm__(".symver __fxstat64, __fxstat64@GLIBC_2.2.5");

static void show(const char *what, long r) {
    printf("%-28s %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "-");
    fflush(stdout);
}

static void put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0 || close(fd) < 0) {
        perror(path);
        exit(1);
    }
}

static long size_of_fd(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (long)st.st_size : -1;
}

static long mtime_of(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 ? (long)st.st_mtime : -1;
}

static int files;
static int count_nftw(const char *p, const struct stat *s, int t, struct FTW *f) {
    (void)p, (void)s, (void)f;
    files += t == FTW_F;
    return 0;
}
static int count_ftw(const char *p, const struct stat *s, int t) {
    (void)p;
    files += t == FTW_F && s->st_size > 0;
    return 0;
}

static int not_dots(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Runs `what` in a child and waits: the child's lines come before ours. */
static void child(const char *what, void (*run)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        run();
        printf("%s failed: %s\n", what, strerrorname_np(errno));
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    show(what, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void run_execvp(void) {
    char *argv[] = {"echo", "execvp ran", NULL};
    execvp("echo", argv);
}

static void run_fexecve(void) {
    char *argv[] = {"echo", "fexecve ran", NULL};
    int fd = open("/bin/echo", O_RDONLY | O_CLOEXEC);
    fexecve(fd, argv, environ);
}

int main(void) {
    char buf[4096];
    struct stat st;

    /* The tree: d/{a,b,c}, d/sub/e, and a link. */
    show("mkdirat d", mkdirat(AT_FDCWD, "d", 0755));
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    show("mkdirat sub", mkdirat(dfd, "sub", 0755));
    put("d/a", "aaaa");
    put("d/b", "bb");
    put("d/c", "");
    put("d/sub/e", "eeeee");
    show("symlinkat", symlinkat("a", dfd, "link"));
    /* readlinkat as _FORTIFY_SOURCE compiles it (a dirfd not opened with
     * O_DIRECTORY, as LTP's readlinkat02 does). */
    int plain = open("d", O_RDONLY);
    long rl = __readlinkat_chk(plain, "link", buf, sizeof buf, sizeof buf);
    show("__readlinkat_chk", rl);
    show("__readlinkat_chk of a file", __readlinkat_chk(plain, "a", buf, sizeof buf, sizeof buf));
    close(plain);
    show("mknodat fifo", mknodat(dfd, "fifo", S_IFIFO | 0600, 0));
    show("mknodat file", mknodat(AT_FDCWD, "d/made", S_IFREG | 0600, 0));
    show("mknodat again", mknodat(AT_FDCWD, "d/made", S_IFREG | 0600, 0));

    /* stat spellings */
    struct statx stx;
    show("statx", statx(AT_FDCWD, "d/a", 0, STATX_SIZE | STATX_MODE, &stx));
    printf("statx size %llu mode %o\n", (unsigned long long)stx.stx_size, stx.stx_mode);
    show("statx missing", statx(AT_FDCWD, "d/none", 0, STATX_SIZE, &stx));
    show("__xstat", __xstat(1, "d/b", &st));
    printf("__xstat size %ld\n", (long)st.st_size);
    int fa = open("d/a", O_RDONLY);
    show("__fxstat", __fxstat(1, fa, &st));
    printf("__fxstat size %ld\n", (long)st.st_size);
    struct stat64 st64;
    show("__fxstat64", __fxstat64(1, fa, &st64));
    printf("__fxstat64 size %ld\n", (long)st64.st_size);
    show("faccessat", faccessat(AT_FDCWD, "d/a", R_OK, AT_EACCESS));
    show("faccessat link nofollow", faccessat(dfd, "link", F_OK, AT_SYMLINK_NOFOLLOW));
    show("faccessat missing", faccessat(dfd, "none", F_OK, 0));

    /* fds: a duplicate reports the file; a closed range forgets it */
    int fb = open("d/b", O_RDONLY);
    show("dup2", dup2(fa, 50));
    printf("dup2 size %ld\n", size_of_fd(50));
    show("dup3", dup3(fb, 51, O_CLOEXEC));
    printf("dup3 size %ld\n", size_of_fd(51));
    show("close_range", close_range(50, 51, 0));
    printf("closed size %ld\n", size_of_fd(50));
    int fe = open("d/sub/e", O_RDONLY);
    show("dup2 over a closed one", dup2(fe, 50));
    printf("reused size %ld\n", size_of_fd(50));
    close(50);

    /* attributes of rift entries: none */
    show("lgetxattr", lgetxattr("d/a", "user.x", buf, sizeof buf));
    show("llistxattr", llistxattr("d/link", buf, sizeof buf));
    show("flistxattr", flistxattr(fa, buf, sizeof buf));

    /* times, by each spelling */
    struct timeval tv[2] = {{1000000000, 0}, {1100000000, 0}};
    show("futimes", futimes(fa, tv));
    printf("futimes mtime %ld\n", mtime_of("d/a"));
    tv[1].tv_sec = 1200000000;
    show("lutimes", lutimes("d/b", tv));
    printf("lutimes mtime %ld\n", mtime_of("d/b"));
    tv[1].tv_sec = 1300000000;
    show("futimesat", futimesat(dfd, "c", tv));
    printf("futimesat mtime %ld\n", mtime_of("d/c"));
    struct timespec ts[2] = {{1000000000, 0}, {1400000000, 0}};
    int fw = open("d/sub/e", O_WRONLY);
    show("futimens", futimens(fw, ts));
    printf("futimens mtime %ld\n", mtime_of("d/sub/e"));
    close(fw);
    show("lchmod", lchmod("d/a", 0600));
    lstat("d/a", &st);
    printf("lchmod mode %o\n", st.st_mode & 07777);

    /* listing and walking */
    DIR *dir = fdopendir(open("d", O_RDONLY | O_DIRECTORY));
    int n = 0;
    struct dirent64 *e64;
    while (dir && (e64 = readdir64(dir)) != NULL)
        n += e64->d_name[0] != '.';
    printf("fdopendir readdir64 %d\n", n);
    if (dir)
        rewinddir(dir);
    struct dirent64 ent, *res;
    n = 0;
    while (dir && readdir64_r(dir, &ent, &res) == 0 && res != NULL)
        n += res->d_name[0] != '.';
    printf("readdir64_r %d\n", n);
    if (dir)
        closedir(dir);
    struct dirent **list;
    n = scandir("d", &list, not_dots, alphasort);
    for (int i = 0; i < n; i++)
        printf("scandir %s\n", list[i]->d_name);
    show("scandir", n);
    n = scandirat(dfd, "sub", &list, not_dots, alphasort);
    for (int i = 0; i < n; i++)
        printf("scandirat %s\n", list[i]->d_name);
    show("scandirat", n);
    glob_t g;
    show("glob", glob("d/[a-c]", 0, NULL, &g));
    for (size_t i = 0; i < g.gl_pathc; i++)
        printf("glob %s\n", g.gl_pathv[i]);
    globfree(&g);
    files = 0;
    show("nftw", nftw("d", count_nftw, 8, FTW_PHYS));
    printf("nftw files %d\n", files);
    files = 0;
    show("ftw", ftw("d", count_ftw, 8));
    printf("ftw non-empty files %d\n", files);

    /* names */
    char *cwd = getcwd(buf, sizeof buf);
    size_t len = cwd ? strlen(cwd) : 0;
    char *real = canonicalize_file_name("d/link");
    printf("canonicalize_file_name %s\n", real && strncmp(real, buf, len) == 0 ? real + len : "(null)");
    free(real);
    real = canonicalize_file_name("d/none");
    show("canonicalize missing", real ? 0 : -1);

    /* a library in a new namespace (dlmopen's body is its own) */
    void *lib = dlmopen(LM_ID_NEWLM, "libm.so.6", RTLD_NOW);
    printf("dlmopen %s\n", lib && dlsym(lib, "cos") ? "cos found" : dlerror());
    lib = dlmopen(LM_ID_NEWLM, "d/a", RTLD_NOW);
    printf("dlmopen not a library %s\n", lib ? "loaded" : "refused");

    /* programs: by PATH and by fd */
    child("execvp", run_execvp);
    child("fexecve", run_fexecve);
    char *argv[] = {"echo", "posix_spawnp ran", NULL};
    pid_t pid;
    fflush(stdout);
    int r = posix_spawnp(&pid, "echo", NULL, NULL, argv, environ);
    int status = 0;
    if (r == 0)
        waitpid(pid, &status, 0);
    show("posix_spawnp", r == 0 ? WEXITSTATUS(status) : -r);
    r = posix_spawnp(&pid, "no-such-program-here", NULL, NULL, argv, environ);
    printf("posix_spawnp missing %s\n", strerrorname_np(r));
    return 0;
}
