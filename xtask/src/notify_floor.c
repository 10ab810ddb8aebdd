/* The floor of seccomp user notification, for `cargo xtask bench unviewed`:
 * runs PROGRAM ARGS under a filter that notifies the same system calls as
 * vrift's supervisor (shim/src/seccomp/filter.rs, SERVED) and a supervisor
 * that reads nothing and answers every notification CONTINUE. What this
 * costs over a native run is what any supervisor of those calls costs
 * before it looks at a single path. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const int served[] = {
    SYS_open, SYS_creat, SYS_openat, SYS_openat2, SYS_stat, SYS_lstat, SYS_fstat,
    SYS_newfstatat, SYS_statx, SYS_access, SYS_faccessat, SYS_faccessat2,
    SYS_readlink, SYS_readlinkat, SYS_getdents, SYS_getdents64, SYS_chdir,
    SYS_execve, SYS_execveat, SYS_mkdir, SYS_mkdirat, SYS_rmdir, SYS_unlink,
    SYS_unlinkat, SYS_rename, SYS_renameat, SYS_renameat2, SYS_link, SYS_linkat,
    SYS_symlink, SYS_symlinkat, SYS_chmod, SYS_fchmodat, SYS_fchmod, SYS_chown,
    SYS_lchown, SYS_fchownat, SYS_fchown, SYS_truncate, SYS_utime, SYS_utimes,
    SYS_futimesat, SYS_utimensat, SYS_mknod, SYS_mknodat, SYS_setxattr,
    SYS_lsetxattr, SYS_fsetxattr, SYS_removexattr, SYS_lremovexattr,
    SYS_fremovexattr,
};
#define N (sizeof served / sizeof served[0])

static int install(void) {
    struct sock_filter prog[N + 4];
    int k = 0;
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < N; i++)
        prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, served[i], N - i, 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    struct sock_fprog fprog = {.len = (unsigned short)k, .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
}

static void send_fd(int sock, int fd) {
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    sendmsg(sock, &msg, 0);
}

static int recv_fd(int sock) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(sock, &msg, 0) != 1)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof fd);
    return fd;
}

static void *serve(void *arg) {
    int listener = (int)(long)arg;
    for (;;) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
            continue;
        struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: notify_floor PROGRAM [ARGS...]\n");
        return 2;
    }
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    pid_t child = fork();
    if (child == 0) {
        int fd = install();
        if (fd < 0) {
            perror("seccomp");
            _exit(126);
        }
        send_fd(sv[1], fd);
        close(fd);
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    int listener = recv_fd(sv[0]);
    if (listener < 0) {
        fprintf(stderr, "notify_floor: no listener\n");
        return 125;
    }
    /* As vrift's supervisor: blocking receives, synchronous wake-ups. */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, 1UL /* SYNC_WAKE_UP */);
    pthread_t t;
    pthread_create(&t, NULL, serve, (void *)(long)listener);
    int st;
    waitpid(child, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
