/* Hard links are one inode with several names (issue 15): the link count,
 * the inode number, a write or chmod through one name seen through the
 * others, unlinking one name keeping the rest, rename between two names of
 * one inode doing nothing, a link made while the file is being written, a
 * link to a file of the disk (`disk.txt`, made by the test) and to a
 * symlink. One line per check, run natively and in the view, compared line
 * by line (inode numbers only compared, never printed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *path, const char *text, int flags) {
    int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0 || close(fd)) {
        printf("put %s failed %s\n", path, strerrorname_np(errno));
    }
}

static void show(const char *path) {
    struct stat st;
    char buf[64] = {0};
    if (lstat(path, &st)) {
        printf("%-8s %s\n", path, strerrorname_np(errno));
        return;
    }
    int fd = open(path, O_RDONLY);
    if (S_ISREG(st.st_mode) && fd >= 0) {
        int n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
    }
    if (fd >= 0) close(fd);
    printf("%-8s nlink %lu mode %04o size %ld content %s\n", path, (unsigned long)st.st_nlink,
           st.st_mode & 07777, (long)st.st_size, buf);
}

static void same(const char *a, const char *b) {
    struct stat x, y;
    if (lstat(a, &x) || lstat(b, &y)) {
        printf("same %s %s: %s\n", a, b, strerrorname_np(errno));
        return;
    }
    printf("same inode %s %s: %s\n", a, b, x.st_ino == y.st_ino ? "yes" : "no");
}

static void rc(const char *what, int r) {
    printf("%-28s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
}

int main(void) {
    umask(022);
    put("a", "one", O_TRUNC);
    rc("link a b", link("a", "b"));
    show("a");
    show("b");
    same("a", "b");
    put("b", "two", O_APPEND);
    show("a");
    rc("chmod b 0600", chmod("b", 0600));
    show("a");
    rc("link a c", link("a", "c"));
    show("b");
    rc("link to an existing name", link("a", "b"));
    rc("unlink a", unlink("a"));
    show("a");
    show("b");
    show("c");
    rc("rename b c (one inode)", rename("b", "c"));
    show("b");
    show("c");
    put("d", "dee", O_TRUNC);
    rc("rename d c (replaces)", rename("d", "c"));
    show("b");
    show("c");

    /* A file being written. */
    int fd = open("w", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    rc("write x", write(fd, "x", 1));
    rc("link w w2 while written", link("w", "w2"));
    rc("write y", write(fd, "y", 1));
    struct stat st;
    fstat(fd, &st);
    printf("fstat of the writer: nlink %lu\n", (unsigned long)st.st_nlink);
    close(fd);
    show("w2");
    put("w2", "z", O_APPEND);
    show("w");

    /* A file of the disk. */
    rc("link disk.txt disk2", link("disk.txt", "disk2"));
    show("disk.txt");
    put("disk2", "+more", O_APPEND);
    show("disk.txt");
    same("disk.txt", "disk2");

    /* A symlink (linkat does not follow). */
    rc("symlink", symlink("target", "s"));
    rc("linkat s s2", linkat(AT_FDCWD, "s", AT_FDCWD, "s2", 0));
    show("s2");
    same("s", "s2");

    /* A directory cannot be linked. */
    mkdir("dir", 0755);
    rc("link dir", link("dir", "dir2"));
    return 0;
}
