/* Reaches a file through the spellings that bypass a lexical domain test,
 * on fd 3 inherited from the caller (the shim of this process never saw it
 * opened). Prints one line per attempt: rc and errno name. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static void report(const char *what, long rc) {
    printf("%s %s\n", what, rc < 0 ? strerrorname_np(errno) : "ok");
    errno = 0;
}

int main(int argc, char **argv) {
    const char *outside = argc > 1 ? argv[1] : "/tmp/vrift-reach-outside";
    report("fchmod", fchmod(3, 0777));
    report("fchown", fchown(3, 1, 1));
    report("reopen-write", open("/proc/self/fd/3", O_WRONLY | O_TRUNC));
    report("devfd-write", open("/dev/fd/3", O_WRONLY | O_APPEND));
    report("linkat-empty", linkat(3, "", AT_FDCWD, outside, AT_EMPTY_PATH));
    report("linkat-proc", linkat(AT_FDCWD, "/proc/self/fd/3", AT_FDCWD, outside, AT_SYMLINK_FOLLOW));
    report("truncate-proc", truncate("/proc/self/fd/3", 0));
    report("chmod-proc", chmod("/proc/self/fd/3", 0777));
    int flags = FS_NOATIME_FL;
    report("setflags", ioctl(3, FS_IOC_SETFLAGS, &flags));
    int fd = open("/proc/self/fd/3", O_RDONLY);
    char buf[64] = {0};
    report("reopen-read", fd < 0 ? -1 : read(fd, buf, sizeof buf - 1));
    printf("content %s", buf);
    return 0;
}
