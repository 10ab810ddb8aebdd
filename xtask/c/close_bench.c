/* Write-path latency driver for `cargo xtask bench build`.
 *   close_bench DIR N
 * creates DIR/f00000 … DIR/f<N-1> (DIR must exist): each is open(O_CREAT |
 * O_WRONLY | O_TRUNC, 0644), write of 4 KiB, close. Every call is timed
 * with CLOCK_MONOTONIC; prints one line per phase:
 *   PHASE p50_us p99_us max_us mean_us
 * for open, write, close and total (open+write+close). Content is
 * deterministic (the file's index in every 8 bytes), so two runs can be
 * compared with cksum. Exits 1 on the first failing call. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIZE 4096

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *phase, double *v, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    qsort(v, n, sizeof *v, cmp);
    int p50 = (n - 1) * 50 / 100, p99 = (n - 1) * 99 / 100;
    printf("%s %.2f %.2f %.2f %.2f\n", phase, v[p50], v[p99], v[n - 1], sum / n);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: close_bench DIR N\n");
        return 2;
    }
    const char *dir = argv[1];
    int n = atoi(argv[2]);
    if (n <= 0) {
        fprintf(stderr, "close_bench: N must be positive\n");
        return 2;
    }
    double *t_open = malloc(n * sizeof(double)), *t_write = malloc(n * sizeof(double));
    double *t_close = malloc(n * sizeof(double)), *t_total = malloc(n * sizeof(double));
    if (!t_open || !t_write || !t_close || !t_total)
        return 1;
    static char buf[SIZE];
    char path[4096];
    for (int i = 0; i < n; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "%07d\n", i % 10000000);
        for (int j = 0; j < SIZE; j += 8)
            memcpy(buf + j, tag, 8);
        snprintf(path, sizeof path, "%s/f%05d", dir, i);
        double t0 = now_us();
        int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        double t1 = now_us();
        if (fd < 0) {
            perror(path);
            return 1;
        }
        ssize_t w = write(fd, buf, SIZE);
        double t2 = now_us();
        if (w != SIZE) {
            perror("write");
            return 1;
        }
        int c = close(fd);
        double t3 = now_us();
        if (c != 0) {
            perror("close");
            return 1;
        }
        t_open[i] = t1 - t0;
        t_write[i] = t2 - t1;
        t_close[i] = t3 - t2;
        t_total[i] = t3 - t0;
    }
    report("open", t_open, n);
    report("write", t_write, n);
    report("close", t_close, n);
    report("total", t_total, n);
    return 0;
}
