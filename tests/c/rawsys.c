/* The path family through syscall(2) with raw numbers, as programs that
 * skip libc's wrappers make them: each must act on the view exactly as its
 * libc wrapper does. Run natively in a copy of the tree and in the view;
 * the printed lines are compared. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

struct how { uint64_t flags, mode, resolve; };

static void report(const char *what, long rc) {
    printf("%-16s %s\n", what, rc < 0 ? strerrorname_np(errno) : "ok");
    errno = 0;
}

static void show(const char *path) {
    struct stat st;
    if (syscall(SYS_lstat, path, &st) != 0) { printf("%-16s %s\n", path, strerrorname_np(errno)); return; }
    printf("%-16s mode %o size %lld\n", path, st.st_mode, (long long)st.st_size);
}

int main(void) {
    /* seed.txt exists on disk in both trees. */
    long fd = syscall(SYS_open, "made.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    report("open creat", fd);
    if (fd >= 0) { write((int)fd, "hello\n", 6); close((int)fd); }
    fd = syscall(SYS_creat, "creat.txt", 0600);
    report("creat", fd);
    if (fd >= 0) close((int)fd);
    struct how h = { O_CREAT | O_WRONLY, 0640, 0 };
    fd = syscall(SYS_openat2, AT_FDCWD, "o2.txt", &h, sizeof h);
    report("openat2", fd);
    if (fd >= 0) { write((int)fd, "o2\n", 3); close((int)fd); }
    fd = syscall(SYS_open, "made.txt", O_RDONLY);
    char buf[32] = {0};
    if (fd >= 0) { read((int)fd, buf, sizeof buf - 1); close((int)fd); }
    printf("%-16s %s", "read back", buf);
    struct stat st;
    report("stat", syscall(SYS_stat, "made.txt", &st));
    printf("%-16s %lld\n", "stat size", (long long)st.st_size);
    report("access", syscall(SYS_access, "made.txt", R_OK));
    report("access missing", syscall(SYS_access, "nope", F_OK));
    report("symlink", syscall(SYS_symlink, "made.txt", "ln"));
    char target[64] = {0};
    report("readlink", syscall(SYS_readlink, "ln", target, sizeof target - 1));
    printf("%-16s %s\n", "link target", target);
    report("link", syscall(SYS_link, "made.txt", "hard.txt"));
    show("hard.txt"); /* (hard links are copies in the rift: see README) */
    report("chmod", syscall(SYS_chmod, "seed.txt", 0600));
    report("chown", syscall(SYS_chown, "seed.txt", getuid(), getgid()));
    report("lchown", syscall(SYS_lchown, "ln", getuid(), getgid()));
    struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};
    report("utimes", syscall(SYS_utimes, "seed.txt", tv));
    struct utimbuf ub = {1000000000, 1000000000};
    report("utime", syscall(SYS_utime, "made.txt", &ub));
    report("futimesat", syscall(SYS_futimesat, AT_FDCWD, "creat.txt", tv));
    fd = syscall(SYS_open, "made.txt", O_RDONLY);
    report("fchmod", syscall(SYS_fchmod, fd, 0700));
    report("fstat", syscall(SYS_fstat, fd, &st));
    printf("%-16s mode %o size %lld\n", "fstat view", st.st_mode, (long long)st.st_size);
    long d = syscall(SYS_dup2, fd, 20);
    report("dup2", d);
    report("fstat dup", syscall(SYS_fstat, 20, &st));
    printf("%-16s mode %o\n", "fstat dup view", st.st_mode);
    close((int)fd);
    close(20);
    report("faccessat2", syscall(SYS_faccessat2, AT_FDCWD, "made.txt", W_OK, 0));
    report("chdir", syscall(SYS_chdir, "sub"));
    report("stat in sub", syscall(SYS_stat, "inner.txt", &st));
    report("chdir back", syscall(SYS_chdir, ".."));
    show("made.txt");
    show("creat.txt");
    show("o2.txt");
    show("seed.txt");
    show("ln");
    return 0;
}
