/* Extended attributes in the view: never set on the disk's files or the
 * store's blobs. Modes: "prep" (native: give seed.txt user.pre), "view"
 * (in the view: every setter on project paths and fds, fd 3 inherited
 * from the caller on a rift file), "check" (native: what the disk holds).
 * argv[2]: a file outside the project. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static void report(const char *what, long rc) {
    printf("%s %s\n", what, rc < 0 ? strerrorname_np(errno) : "ok");
    errno = 0;
}

int main(int argc, char **argv) {
    const char *mode = argv[1];
    char v[16] = {0};
    if (!strcmp(mode, "prep")) {
        report("prep", setxattr("seed.txt", "user.pre", "p", 1, 0));
    } else if (!strcmp(mode, "view")) {
        report("setxattr disk", setxattr("seed.txt", "user.x", "1", 1, 0));
        report("removexattr disk", removexattr("seed.txt", "user.pre"));
        report("lsetxattr rift", lsetxattr("f", "user.x", "1", 1, 0));
        report("lremovexattr rift", lremovexattr("f", "user.x"));
        int fd = open("seed.txt", O_RDONLY);
        report("fsetxattr disk fd", fsetxattr(fd, "user.x", "1", 1, 0));
        report("fremovexattr disk fd", fremovexattr(fd, "user.pre"));
        int rf = open("f", O_RDONLY);
        report("fsetxattr rift fd", fsetxattr(rf, "user.x", "1", 1, 0));
        report("fsetxattr blob fd", fsetxattr(3, "user.x", "1", 1, 0));
        report("fremovexattr blob fd", fremovexattr(3, "user.x"));
        report("setxattr outside", setxattr(argv[2], "user.o", "1", 1, 0));
        report("getxattr disk", getxattr("seed.txt", "user.pre", v, sizeof v));
    } else {
        report("check pre", getxattr("seed.txt", "user.pre", v, sizeof v));
        report("check x", getxattr("seed.txt", "user.x", v, sizeof v));
        report("check outside", getxattr(argv[2], "user.o", v, sizeof v));
    }
    return 0;
}
