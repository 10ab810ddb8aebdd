/* Moves its cwd below the current directory through a chain of
 * directories whose path is longer than PATH_MAX, with raw chdir system
 * calls (no libc, no shim: the cwd a process can inherit), then creates
 * `f` there through libc. Prints "created" or the errno name. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static long raw_chdir(const char *path) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(SYS_chdir), "D"(path) : "rcx", "r11", "memory");
    return ret;
}

int main(void) {
    char name[201];
    memset(name, 'd', 200);
    name[200] = 0;
    for (int i = 0; i < 25; i++) {
        if (raw_chdir(name) != 0) {
            printf("chdir failed at %d\n", i);
            return 1;
        }
    }
    int fd = open("f", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("%s\n", strerrorname_np(errno));
        return 0;
    }
    write(fd, "x\n", 2);
    close(fd);
    printf("created\n");
    return 0;
}
