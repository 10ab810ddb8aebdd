/* Issue 14's model test (tests/model.rs): one writer of the view.
 *
 *   model_writer OPS RESULTS   runs the operations in OPS, one a line,
 *                              writing each one's errno (0: done) to RESULTS
 *   model_writer dump PATH...  prints each tree below PATH as the view
 *                              shows it: "kind mode size path" lines, then
 *                              the content (files) or target (symlinks) in hex
 *
 * Operations (paths relative to the working directory, without spaces):
 *   c MODE P          open(P, O_CREAT|O_EXCL|O_WRONLY, MODE)
 *   w OFF LEN SEED P  pwrite LEN bytes (SEED + i) at OFF of P (no O_CREAT)
 *   a LEN SEED P      append LEN bytes (SEED + i) to P (O_APPEND)
 *   t LEN P           truncate(P, LEN)
 *   r A B             rename(A, B)
 *   u P               unlink(P)
 *   m MODE P          mkdir(P, MODE)
 *   d P               rmdir(P)
 *   s TARGET P        symlink(TARGET, P)
 *   x MODE P          chmod(P, MODE)
 *   L TEXT P          append "TEXT\n" to P (O_CREAT|O_APPEND), one write
 *   P TMP LEN SEED B  write TMP whole (O_CREAT|O_TRUNC), then rename it to B
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned char buf[1 << 16];

static void fill(long len, long seed) {
    for (long i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed + i);
}

static int write_all(int fd, const unsigned char *p, long n, long off) {
    while (n > 0) {
        ssize_t w = off >= 0 ? pwrite(fd, p, n, off) : write(fd, p, n);
        if (w < 0)
            return -1;
        p += w;
        n -= w;
        if (off >= 0)
            off += w;
    }
    return 0;
}

/* Opens PATH with FLAGS (mode 0644 if it creates it), writes the N bytes
 * at DATA (at OFF, or at the file's offset if OFF < 0), closes: 0, or -1
 * with the errno of the call that failed. */
static int write_file(const char *path, int flags, const unsigned char *data, long n, long off) {
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write_all(fd, data, n, off) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

static int run(char *line) {
    char op, a[4096], b[4096], c[4096];
    long x, y, z;
    int fd;
    op = line[0];
    switch (op) {
    case 'c':
        if (sscanf(line + 2, "%lo %4095s", &x, a) != 2)
            return -2;
        fd = open(a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, (mode_t)x);
        return fd < 0 ? -1 : close(fd);
    case 'w':
        if (sscanf(line + 2, "%ld %ld %ld %4095s", &x, &y, &z, a) != 4)
            return -2;
        fill(y, z);
        return write_file(a, O_WRONLY, buf, y, x);
    case 'a':
        if (sscanf(line + 2, "%ld %ld %4095s", &y, &z, a) != 3)
            return -2;
        fill(y, z);
        return write_file(a, O_WRONLY | O_APPEND, buf, y, -1);
    case 't':
        if (sscanf(line + 2, "%ld %4095s", &x, a) != 2)
            return -2;
        return truncate(a, x);
    case 'r':
        if (sscanf(line + 2, "%4095s %4095s", a, b) != 2)
            return -2;
        return rename(a, b);
    case 'u':
        if (sscanf(line + 2, "%4095s", a) != 1)
            return -2;
        return unlink(a);
    case 'm':
        if (sscanf(line + 2, "%lo %4095s", &x, a) != 2)
            return -2;
        return mkdir(a, (mode_t)x);
    case 'd':
        if (sscanf(line + 2, "%4095s", a) != 1)
            return -2;
        return rmdir(a);
    case 's':
        if (sscanf(line + 2, "%4095s %4095s", a, b) != 2)
            return -2;
        return symlink(a, b);
    case 'x':
        if (sscanf(line + 2, "%lo %4095s", &x, a) != 2)
            return -2;
        return chmod(a, (mode_t)x);
    case 'L':
        if (sscanf(line + 2, "%4094s %4095s", c, a) != 2)
            return -2;
        strcat(c, "\n");
        return write_file(a, O_WRONLY | O_CREAT | O_APPEND, (unsigned char *)c, (long)strlen(c), -1);
    case 'P':
        if (sscanf(line + 2, "%4095s %ld %ld %4095s", a, &y, &z, b) != 4)
            return -2;
        fill(y, z);
        if (write_file(a, O_WRONLY | O_CREAT | O_TRUNC, buf, y, -1) < 0)
            return -1;
        return rename(a, b);
    }
    return -2;
}

static void hex(const unsigned char *p, long n) {
    for (long i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

static void dump(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        printf("? %d %s\n", errno, path);
        return;
    }
    char kind = S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : S_ISREG(st.st_mode) ? 'f' : 'o';
    printf("%c %o %lld %s\n", kind, (unsigned)(st.st_mode & 07777), (long long)st.st_size, path);
    if (kind == 'l') {
        ssize_t n = readlink(path, (char *)buf, sizeof buf);
        hex(buf, n < 0 ? 0 : n);
    } else if (kind == 'f') {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        long n = 0;
        if (fd >= 0) {
            ssize_t r;
            while (n < (long)sizeof buf && (r = read(fd, buf + n, sizeof buf - n)) > 0)
                n += r;
            close(fd);
        }
        hex(buf, n);
    } else if (kind == 'd') {
        DIR *d = opendir(path);
        if (!d)
            return;
        struct dirent *e;
        char child[8192];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            dump(child);
        }
        closedir(d);
    }
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "dump")) {
        for (int i = 2; i < argc; i++)
            dump(argv[i]);
        return 0;
    }
    if (argc != 3)
        return 2;
    umask(0);
    FILE *in = fopen(argv[1], "r");
    FILE *out = fopen(argv[2], "w");
    if (!in || !out)
        return 2;
    static char line[16384];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = 0;
        errno = 0;
        int r = run(line);
        if (r == -2) {
            fprintf(stderr, "bad line: %s\n", line);
            return 2;
        }
        fprintf(out, "%d\n", r == 0 ? 0 : errno);
    }
    return fclose(out) == 0 ? 0 : 1;
}
