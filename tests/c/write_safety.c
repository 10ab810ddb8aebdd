/* The write side under threads, fork and vfork: 8 threads create files at
 * once, a forked child and a vfork child each write one, and the parent
 * reads everything back. Prints one summary line; any hang is a deadlock. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 8
#define FILES 25

static void *writer(void *arg) {
    long t = (long)arg;
    char path[64], text[64];
    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "t/%ld-%d", t, i);
        snprintf(text, sizeof text, "%ld:%d\n", t, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0) {
            fprintf(stderr, "thread %ld file %d: %s\n", t, i, strerror(errno));
            exit(1);
        }
    }
    return NULL;
}

static int check(const char *path, const char *want) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n == (ssize_t)strlen(want) && memcmp(buf, want, n) == 0;
}

int main(void) {
    if (mkdir("t", 0755) != 0) { perror("mkdir"); return 1; }
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, writer, (void *)t);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);

    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("t/forked", O_WRONLY | O_CREAT, 0644);
        _exit(fd >= 0 && write(fd, "fork\n", 5) == 5 && close(fd) == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int forked_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;

    /* A vfork child may only call async-signal-safe functions before exec:
     * open/write/close are, and must not deadlock in the shim. */
    pid = vfork();
    if (pid == 0) {
        int fd = open("t/vforked", O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) {
            write(fd, "vfork\n", 6);
            close(fd);
        }
        _exit(fd >= 0 ? 0 : 1);
    }
    waitpid(pid, &st, 0);
    int vforked_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;

    int good = 0;
    char path[64], text[64];
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < FILES; i++) {
            snprintf(path, sizeof path, "t/%d-%d", t, i);
            snprintf(text, sizeof text, "%d:%d\n", t, i);
            good += check(path, text);
        }
    printf("threads %d/%d fork %d vfork %d readback %d %d\n", good, THREADS * FILES, forked_ok,
           vforked_ok, check("t/forked", "fork\n"), check("t/vforked", "vfork\n"));
    return 0;
}
