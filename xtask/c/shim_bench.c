/* Per-call cost driver for `cargo xtask bench shim`. Runs one operation N
 * times and prints nanoseconds per call (best of 5 rounds, to shed noise
 * from a shared machine).
 *   shim_bench stat PATH N       stat(2)
 *   shim_bench open PATH N       open + read 4 KiB + close
 *   shim_bench exec PROG N       fork + execv(PROG) + wait; a second line
 *                                gives the children's page faults per exec
 *   shim_bench readdir DIR N     opendir + readdir to the end + closedir */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int op(const char *mode, const char *path) {
    if (!strcmp(mode, "stat")) {
        struct stat st;
        return stat(path, &st);
    }
    if (!strcmp(mode, "open")) {
        char buf[4096];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        int r = read(fd, buf, sizeof buf) < 0;
        close(fd);
        return r;
    }
    if (!strcmp(mode, "exec")) {
        pid_t p = fork();
        if (p == 0) {
            char *argv[] = {(char *)path, NULL};
            execv(path, argv);
            _exit(127);
        }
        int st;
        waitpid(p, &st, 0);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
    }
    if (!strcmp(mode, "readdir")) {
        DIR *d = opendir(path);
        if (!d) return -1;
        while (readdir(d)) {}
        closedir(d);
        return 0;
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s stat|open|exec|readdir PATH N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[3]);
    if (op(argv[1], argv[2]) != 0) {
        fprintf(stderr, "%s %s: fails\n", argv[1], argv[2]);
        return 1;
    }
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) op(argv[1], argv[2]);
        double per = (now_ns() - t0) / n;
        if (per < best) best = per;
    }
    printf("%.1f\n", best);
    if (!strcmp(argv[1], "exec")) {
        /* Deterministic where time is not: what loading costs each child. */
        struct rusage ru;
        getrusage(RUSAGE_CHILDREN, &ru);
        printf("%.1f\n", (double)ru.ru_minflt / (5 * n + 1));
    }
    return 0;
}
