/* Times as the kernel changes them (issue 15): a change of an entry
 * (write, chmod, chown, utimensat, rename, link, truncate) moves its ctime
 * and nothing else; a name made or removed in a directory moves the
 * directory's mtime and ctime; reading changes neither. One line per
 * check, run natively and in the view and compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct stat before, after;

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void pause_a_bit(void) {
    struct timespec t = {0, 20 * 1000 * 1000};
    nanosleep(&t, NULL);
}

/* Stats `path` before and after `what` ran; prints which times moved. */
#define CHECK(label, path, what)                                                        \
    do {                                                                                \
        stat(path, &before);                                                            \
        pause_a_bit();                                                                  \
        long rc = (what);                                                               \
        int got = stat(path, &after);                                               \
        printf("%-26s %s ctime %s mtime %s\n", label, rc < 0 ? "failed" : "ok",        \
               got ? "gone" : ns(after.st_ctim) > ns(before.st_ctim) ? "moved" : "kept", \
               got ? "gone" : ns(after.st_mtim) > ns(before.st_mtim) ? "moved" : "kept"); \
    } while (0)

static long write_to(const char *path) {
    int fd = open(path, O_WRONLY | O_APPEND);
    long n = write(fd, "more\n", 5);
    close(fd);
    return n;
}

static long read_from(const char *path) {
    char b[16];
    int fd = open(path, O_RDONLY);
    long n = read(fd, b, sizeof b);
    close(fd);
    return n;
}

int main(void) {
    mkdir("d", 0755);
    int fd = open("d/f", O_CREAT | O_WRONLY, 0644);
    write(fd, "data\n", 5);
    close(fd);
    pause_a_bit();
    CHECK("read", "d/f", read_from("d/f"));
    CHECK("write", "d/f", write_to("d/f"));
    CHECK("chmod", "d/f", chmod("d/f", 0600));
    CHECK("chown", "d/f", chown("d/f", getuid(), getgid()));
    struct timespec old[2] = {{1000, 0}, {2000, 0}};
    CHECK("utimensat old times", "d/f", utimensat(AT_FDCWD, "d/f", old, 0));
    CHECK("truncate", "d/f", truncate("d/f", 2));
    CHECK("rename (moved file)", "d/f", rename("d/f", "d/g") ? -1 : rename("d/g", "d/f"));
    CHECK("link (source)", "d/f", link("d/f", "d/h"));
    fd = open("d/f", O_RDONLY);
    CHECK("fchmod", "d/f", fchmod(fd, 0640));
    struct stat a, b;
    fstat(fd, &a);
    stat("d/f", &b);
    printf("%-26s %s\n", "fstat ctime = stat ctime", ns(a.st_ctim) == ns(b.st_ctim) ? "yes" : "no");
    close(fd);

    /* Times set through a read fd show in its fstat (gVisor's
     * FutimesatTest.OnNullPath). */
    fd = open("d/f", O_RDONLY);
    struct timeval tv[2] = {{10, 0}, {20, 0}};
    long r = futimesat(fd, NULL, tv);
    fstat(fd, &a);
    printf("%-26s %s atime %lld mtime %lld\n", "futimesat fd, fstat", r ? "failed" : "ok",
           (long long)a.st_atime, (long long)a.st_mtime);
    struct timespec t0;
    clock_gettime(CLOCK_REALTIME, &t0);
    r = futimens(fd, NULL);
    fstat(fd, &a);
    printf("%-26s %s atime %s mtime %s\n", "futimens now, fstat", r ? "failed" : "ok",
           a.st_atime >= t0.tv_sec ? "now" : "stale", a.st_mtime >= t0.tv_sec ? "now" : "stale");
    close(fd);

    CHECK("dir: create", "d", close(open("d/new", O_CREAT | O_WRONLY, 0644)));
    CHECK("dir: open existing", "d", close(open("d/new", O_CREAT | O_WRONLY, 0644)));
    CHECK("dir: write a file", "d", write_to("d/new"));
    CHECK("dir: unlink", "d", unlink("d/new"));
    CHECK("dir: symlink", "d", symlink("f", "d/s"));
    CHECK("dir: rename within", "d", rename("d/s", "d/t"));
    CHECK("dir: rename away (from)", "d", rename("d/t", "t"));
    CHECK("dir: rename in (to)", "d", rename("t", "d/t"));
    CHECK("dir: link", "d", link("d/f", "d/k"));
    CHECK("dir: mkdir", "d", mkdir("d/sub", 0755));
    CHECK("dir: rmdir", "d", rmdir("d/sub"));
    CHECK("dir: chmod a file", "d", chmod("d/f", 0644));
    return 0;
}
