/* Corners LTP's syscall tests found answered differently in the view
 * (issue 15, `cargo xtask conformance`): bad flags (EINVAL), an empty
 * path in a two-path call (ENOENT), O_PATH fds (EBADF for reads and
 * changes), fchmodat2 as a raw syscall, chown keeping a non-executable
 * set-group-ID bit, fstat after fchown, access's directory search and
 * owner/group/other bits for another uid. Prints one line per check, run
 * natively and in the view and compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static void report(const char *what, long rc) {
    printf("%-28s %ld %s\n", what, rc < 0 ? -1L : 0L, rc < 0 ? strerrorname_np(errno) : "-");
    errno = 0;
}

static long write_file(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    long n = write(fd, "x\n", 2);
    close(fd);
    return n;
}

int main(void) {
    struct stat st;
    char b[64];
    int fd = open("f", O_RDWR | O_CREAT, 0644);
    report("write f", write(fd, "data\n", 5));
    close(fd);
    report("unlinkat bad flags", unlinkat(AT_FDCWD, "f", 9999));
    report("fstatat bad flags", fstatat(AT_FDCWD, "f", &st, 9999));
    report("access bad mode", access("f", -1));
    report("faccessat2 bad flags", syscall(439, AT_FDCWD, "f", R_OK, -1));
    report("fchmodat bad flags", fchmodat(AT_FDCWD, "f", 0644, -1));
    report("link empty from", link("", "g"));
    report("rename empty to", rename("f", ""));

    int p = open("f", O_PATH);
    report("open O_PATH", p);
    report("read O_PATH", read(p, b, 1));
    report("fchmod O_PATH", fchmod(p, 0600));
    report("fchown O_PATH", fchown(p, 0, 0));
    report("fgetxattr O_PATH", fgetxattr(p, "user.x", b, sizeof b));
    report("fstatat O_PATH", fstatat(p, "", &st, AT_EMPTY_PATH));
    printf("%-28s %o %lld\n", "O_PATH view", st.st_mode, (long long)st.st_size);
    close(p);

    report("fchmodat2", syscall(452, AT_FDCWD, "f", 0600, 0));
    stat("f", &st);
    printf("%-28s %o\n", "mode after fchmodat2", st.st_mode);
    report("fchmodat2 bad flags", syscall(452, AT_FDCWD, "f", 0600, 9999));
    p = open("f", O_PATH);
    report("fchmodat2 empty O_PATH", syscall(452, p, "", 0640, AT_EMPTY_PATH));
    close(p);
    stat("f", &st);
    printf("%-28s %o\n", "mode after empty path", st.st_mode);

    if (geteuid() == 0) {
        report("chmod 2700", chmod("f", 02700));
        report("chown", chown("f", 0, 0));
        stat("f", &st);
        printf("%-28s %o\n", "setgid kept (no g+x)", st.st_mode);
        report("chmod 6770", chmod("f", 06770));
        report("chown", chown("f", 0, 0));
        stat("f", &st);
        printf("%-28s %o\n", "set-ID cleared (g+x)", st.st_mode);
        fd = open("f", O_RDWR);
        report("fchown", fchown(fd, 700, 701));
        report("fstat", fstat(fd, &st));
        printf("%-28s %u %u\n", "fstat owner", st.st_uid, st.st_gid);
        report("fchown -1", fchown(fd, -1, 702));
        fstat(fd, &st);
        printf("%-28s %u %u\n", "fstat owner", st.st_uid, st.st_gid);
        close(fd);
        report("chown back", chown("f", 0, 0));

        /* access as nobody: search permission on the directory, then
         * the owner/group/other bits. */
        report("mkdir closed", mkdir("closed", 0700));
        fd = open("closed/r", O_RDWR | O_CREAT, 0644);
        close(fd);
        fd = open("own", O_RDWR | O_CREAT, 0600);
        close(fd);
        fd = open("other", O_RDWR | O_CREAT, 0604);
        close(fd);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) || setuid(65534))
                _exit(2);
            report("nobody access closed/r", access("closed/r", F_OK));
            report("nobody access own R", access("own", R_OK));
            report("nobody access other R", access("other", R_OK));
            report("nobody access other W", access("other", W_OK));
            fflush(stdout);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
    }

    /* `name/..` walks `name` first (gVisor's PathNotCleaned,
     * CannotRemoveDots): a missing name is ENOENT, a file ENOTDIR, and
     * nothing is made past it. */
    report("mkdir updir", mkdir("updir", 0755));
    report("stat updir/../f", stat("updir/../f", &st));
    report("lstat missing/../f", lstat("missing/../f", &st));
    report("stat f/../f", stat("f/../f", &st));
    report("open missing/../new creat", open("missing/../new", O_WRONLY | O_CREAT, 0644));
    report("access new", access("new", F_OK));
    report("mkdir missing/../d2", mkdir("missing/../d2", 0755));
    report("unlink f/..", unlink("f/.."));
    report("rename f to f/../g", rename("f", "f/../g"));
    report("stat f", stat("f", &st));

    /* `name/` makes no node and renames only a directory. */
    report("mknod fifo nx/", mknod("nx/", S_IFIFO | 0644, 0));
    report("mknod file rx/", mknod("rx/", S_IFREG | 0644, 0));
    report("mkfifo f/ (a file)", mkfifo("f/", 0644));
    report("rename f to m/", rename("f", "m/"));
    report("access m", access("m", F_OK));
    report("rename updir to upd2/", rename("updir", "upd2/"));
    report("access upd2", access("upd2", F_OK));

    /* `link/..` is the parent of the link's target, not of the link: in
     * the project, and through a link outside that leads in. */
    report("mkdir lk", mkdir("lk", 0755));
    report("mkdir lk/sub", mkdir("lk/sub", 0755));
    report("write lk/only", write_file("lk/only"));
    report("symlink l2 -> lk/sub", symlink("lk/sub", "l2"));
    report("stat l2/../only", stat("l2/../only", &st));
    report("create l2/../made", write_file("l2/../made"));
    report("access lk/made", access("lk/made", F_OK));
    report("access made", access("made", F_OK));
    char here[4096], out[4200];
    if (!getcwd(here, sizeof here)) return 1;
    snprintf(out, sizeof out, "/tmp/vrift-corners-%d", (int)getpid());
    snprintf(here + strlen(here), sizeof here - strlen(here), "/lk/sub");
    report("symlink outside -> lk/sub", symlink(here, out));
    snprintf(out + strlen(out), sizeof out - strlen(out), "/../made2");
    report("create outside/../made2", write_file(out));
    report("access lk/made2", access("lk/made2", F_OK));
    out[strlen(out) - strlen("/../made2")] = 0;
    unlink(out);

    /* O_RDONLY | O_TRUNC truncates (gVisor's CanTruncateReadOnly), a
     * file still open for writing too. */
    int w = open("trunc", O_RDWR | O_CREAT, 0644);
    report("write trunc", write(w, "twelve bytes", 12));
    int t = open("trunc", O_RDONLY | O_TRUNC);
    report("open O_RDONLY|O_TRUNC", t);
    fstat(t, &st);
    printf("%-28s %lld\n", "fstat after O_TRUNC", (long long)st.st_size);
    report("write O_RDONLY fd", write(t, "x", 1));
    stat("trunc", &st);
    printf("%-28s %lld\n", "stat after O_TRUNC", (long long)st.st_size);
    close(t);
    close(w);
    return 0;
}
