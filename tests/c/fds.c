/* File descriptors in the view as on disk (issue 15; LTP open04, creat05,
 * dup06, dup205): many files held open for writing by several processes
 * at once, more than the daemon's own fd limit (it is started from here,
 * under the limit set first); then a process that fills its fd table gets
 * EMFILE for an open, and still unlinks, renames and stats. One line per
 * check, run natively and in the view and compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KIDS 3
#define HELD 60

static void report(const char *what, long rc) {
    printf("%-28s %ld %s\n", what, rc < 0 ? -1L : 0L, rc < 0 ? strerrorname_np(errno) : "-");
    errno = 0;
}

static int free_slots(int limit) {
    int n = 0;
    for (int fd = 0; fd < limit; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF)
            n++;
    errno = 0;
    return n;
}

int main(void) {
    /* The daemon (started by the first write below) inherits this. */
    struct rlimit rl = {100, 100};
    report("setrlimit 100", setrlimit(RLIMIT_NOFILE, &rl));

    int ready[2], go[2];
    if (pipe(ready) || pipe(go))
        return 2;
    for (int k = 0; k < KIDS; k++) {
        if (fork() == 0) {
            int fds[HELD], ok = 0;
            char name[32];
            close(ready[0]);
            close(go[1]);
            for (int i = 0; i < HELD; i++) {
                snprintf(name, sizeof name, "h%d_%d", k, i);
                fds[i] = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (fds[i] >= 0 && write(fds[i], name, strlen(name)) == (ssize_t)strlen(name))
                    ok++;
            }
            char c = 'x';
            if (write(ready[1], &c, 1) != 1)
                _exit(3);
            (void)!read(go[0], &c, 1); /* every child holds its files now */
            for (int i = 0; i < HELD; i++)
                if (fds[i] >= 0)
                    close(fds[i]);
            _exit(ok == HELD ? 0 : 1);
        }
    }
    close(ready[1]);
    close(go[0]);
    char c;
    int held = 0;
    while (held < KIDS && read(ready[0], &c, 1) == 1)
        held++;
    close(go[1]);
    int good = 0;
    for (int k = 0; k < KIDS; k++) {
        int status;
        if (wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            good++;
    }
    printf("%-28s %d of %d\n", "writers holding 60 files", good, KIDS);
    int same = 0;
    for (int k = 0; k < KIDS; k++)
        for (int i = 0; i < HELD; i++) {
            char name[32], got[32] = {0};
            snprintf(name, sizeof name, "h%d_%d", k, i);
            int fd = open(name, O_RDONLY);
            if (fd >= 0 && read(fd, got, sizeof got - 1) == (ssize_t)strlen(name) &&
                strcmp(got, name) == 0)
                same++;
            if (fd >= 0)
                close(fd);
        }
    printf("%-28s %d of %d\n", "files read back", same, KIDS * HELD);

    /* A full fd table: open gives EMFILE, the rest still works. */
    rl.rlim_cur = 40;
    report("setrlimit 40", setrlimit(RLIMIT_NOFILE, &rl));
    int before = free_slots(40), opened = 0, fds[64], err = 0;
    for (int i = 0; i < 64; i++) {
        char name[32];
        snprintf(name, sizeof name, "e%d", i);
        fds[i] = open(name, O_RDWR | O_CREAT, 0644);
        if (fds[i] < 0) {
            err = errno;
            break;
        }
        opened++;
    }
    printf("%-28s %s %s\n", "opened every free slot", opened == before ? "yes" : "no",
           strerrorname_np(err));
    errno = 0;
    report("creat when full", creat("another", 0644));
    report("dup when full", dup(0));
    report("unlink when full", unlink("e0"));
    report("rename when full", rename("e1", "e1b"));
    report("mkdir when full", mkdir("dfull", 0755));
    struct stat st;
    report("stat when full", stat("e1b", &st));
    report("stat another", stat("another", &st));
    int low = fds[opened / 2];
    close(low);
    int again = open("e2", O_WRONLY);
    printf("%-28s %s\n", "open takes the freed slot", again == low ? "yes" : "no");
    close(again);
    for (int i = 0; i < opened; i++)
        if (i != opened / 2)
            close(fds[i]);
    printf("%-28s %s\n", "free slots after", free_slots(40) == before ? "same" : "differ");
    return 0;
}
