/* A process that changes its credentials is judged by them (issue 15):
 * run as root, the probe makes files and directories of every kind of
 * permission, then children drop to nobody (seteuid, setuid, setresuid,
 * with and without a supplementary group; one thread only, through the
 * raw system call) and try what the kernel allows
 * or refuses a non-owner: creating, writing, truncating, removing (sticky
 * directories too), renaming, linking, chmod, chown and utimes. One line
 * per check, run natively and in the view, compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534
#define GROUP 4321

static void report(const char *what, int rc) {
    printf("%-34s %s\n", what, rc < 0 ? strerrorname_np(errno) : "ok");
}

static int create(const char *path, mode_t mode) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    if (fd < 0) return -1;
    int w = write(fd, "hi\n", 3);
    close(fd);
    return w == 3 ? 0 : -1;
}

/* Runs `path` in a child: 0, or -1 with the exec's errno. */
static int try_exec(const char *path) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        execl(path, path, (char *)0);
        _exit(errno);
    }
    int st;
    waitpid(p, &st, 0);
    errno = WIFEXITED(st) ? WEXITSTATUS(st) : EINTR;
    return errno ? -1 : 0;
}

static int owner(const char *path) {
    struct stat st;
    if (lstat(path, &st)) return -1;
    printf("%-34s %u:%u %04o\n", path, st.st_uid, st.st_gid, st.st_mode & 07777);
    return 0;
}

static int open_w(const char *path, int flags) {
    int fd = open(path, O_WRONLY | flags);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* As nobody (effective only: root stays the saved uid). */
static int read_all(const char *path) {
    char buf[16];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int n = read(fd, buf, sizeof buf);
    close(fd);
    return n == 3 ? 0 : -1;
}

static int stat_of(const char *path) {
    struct stat st;
    return stat(path, &st);
}

static int append(const char *path) {
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0) return -1;
    int w = write(fd, "more\n", 5);
    close(fd);
    return w == 5 ? 0 : -1;
}

static void as_nobody_effective(void) {
    report("write set-uid 04777 root file", append("suid4777"));
    owner("suid4777");
    report("write set-gid 02777 root file", append("sgid2777"));
    owner("sgid2777");
    report("truncate set-uid 04777 file", truncate("suidtrunc", 1));
    owner("suidtrunc");
    report("read root file 0644", read_all("r644"));
    report("read root file 0600", read_all("r600"));
    report("stat below 0700 dir", stat_of("d700/inner"));
    report("stat below 0755 dir", stat_of("d755/f"));
    report("access below 0700 dir", access("d700/inner", F_OK));
    report("readlink below 0700 dir", readlink("d700/link", (char[8]){0}, 8) < 0 ? -1 : 0);
    report("create in 0755 dir", create("d755/new", 0644));
    report("create in 0777 dir", create("d777/new", 0644));
    owner("d777/new");
    report("write-open of 0644 root file", open_w("r644", 0));
    report("write-open of 0666 root file", open_w("w666", O_TRUNC));
    report("write-open below 0700 dir", open_w("d700/inner", 0));
    report("create below 0700 dir", create("d700/new", 0644));
    report("unlink root file, sticky dir", unlink("sticky/rootfile"));
    report("create in sticky dir", create("sticky/mine", 0644));
    report("unlink own file, sticky dir", unlink("sticky/mine"));
    report("unlink in 0755 dir", unlink("d755/f"));
    report("mkdir in 0755 dir", mkdir("d755/sub", 0755));
    report("mkdir in 0777 dir", mkdir("d777/sub", 0750));
    owner("d777/sub");
    report("symlink in 0755 dir", symlink("x", "d755/l"));
    report("symlink in 0777 dir", symlink("x", "d777/l"));
    report("chmod root file", chmod("r644", 0600));
    report("chmod own file", chmod("d777/new", 0600));
    report("chmod own file g+s, not member", chmod("d777/new", 02770));
    owner("d777/new");
    report("chown own file to root", chown("d777/new", 0, -1));
    report("chgrp own file to group 0", chown("d777/new", -1, 0));
    report("chgrp own file to own group", chown("d777/new", -1, NOBODY));
    report("utimes now, root file 0666", utimensat(AT_FDCWD, "w666", NULL, 0));
    report("utimes now, root file 0644", utimensat(AT_FDCWD, "r644", NULL, 0));
    struct timespec t[2] = {{1000, 0}, {2000, 0}};
    report("utimes explicit, root file 0666", utimensat(AT_FDCWD, "w666", t, 0));
    report("utimes explicit, own file", utimensat(AT_FDCWD, "d777/new", t, 0));
    report("truncate root file 0644", truncate("r644", 0));
    report("truncate root file 0666", truncate("w666", 1));
    report("rename into 0755 dir", rename("d777/new", "d755/new"));
    report("rename out of 0755 dir", rename("d755/f", "d777/f"));
    report("rename within 0777 dir", rename("d777/new", "d777/new2"));
    report("rename root dir to other parent", rename("d777/rootdir", "sticky/rootdir"));
    report("link root file 0644", link("r644", "d777/hard"));
    report("rmdir own dir", rmdir("d777/sub"));
    report("rmdir root dir, sticky", rmdir("sticky/rootdir"));
}

/* One thread with other ids (the raw system call changes the calling
 * thread's credentials only, as gVisor's tests do): judged by its own. */
static void *thread_as_nobody(void *unused) {
    (void)unused;
    if (syscall(SYS_setresgid, -1, NOBODY, -1) || syscall(SYS_setresuid, -1, NOBODY, -1)) {
        printf("thread drop failed %s\n", strerrorname_np(errno));
        return NULL;
    }
    report("thread: create in 0755 dir", create("d755/thread", 0644));
    report("thread: create in 0777 dir", create("d777/thread", 0644));
    owner("d777/thread");
    report("thread: chown own file to root", chown("d777/thread", 0, -1));
    report("thread: write-open of 0644 root file", open_w("r644", 0));
    return NULL;
}

/* glibc's wrapper (declared by libcap's header, which is not needed). */
extern int capset(cap_user_header_t header, const cap_user_data_t data);

/* Drops capabilities from the calling thread's effective set (this thread
 * only, as the kernel's capset works): through glibc's `capset`, or with
 * `raw` the system call itself, as gVisor's AutoCapability does. */
static int drop_caps(unsigned long long caps, int raw) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d)) return -1;
    for (int i = 0; i < 2; i++) d[i].effective &= ~(unsigned)(caps >> (32 * i));
    return raw ? syscall(SYS_capset, &h, d) : capset(&h, d);
}

#define CAP(c) (1ULL << (c))

static void *thread_without_fowner(void *unused) {
    (void)unused;
    if (drop_caps(CAP(CAP_FOWNER) | CAP(CAP_CHOWN), 1)) {
        printf("thread capset failed %s\n", strerrorname_np(errno));
        return NULL;
    }
    report("no FOWNER: chmod nobody's file", chmod("nob644", 0600));
    report("no FOWNER: utimes nobody's file", utimensat(AT_FDCWD, "nob644",
        (struct timespec[2]){{1, 0}, {2, 0}}, 0));
    report("no CHOWN: chown root file", chown("r644", NOBODY, -1));
    return NULL;
}

int main(void) {
    umask(0);
    mkdir("d755", 0755);
    mkdir("d777", 0777);
    mkdir("d700", 0700);
    mkdir("sticky", 01777);
    mkdir("d555", 0555);
    mkdir("d777/rootdir", 0755);
    mkdir("sticky/rootdir", 0755);
    if (create("d755/f", 0644) || create("r644", 0644) || create("w666", 0666) ||
        create("sticky/rootfile", 0666) || create("d700/inner", 0666) ||
        create("g660", 0660) || chown("g660", 0, GROUP) || create("r600", 0600) ||
        symlink("x", "d700/link") || create("suid4777", 04777) || create("sgid2777", 02777) ||
        create("suidtrunc", 04777) || create("suidroot", 04755) || create("r444", 0444) ||
        create("r000", 0) || create("nob644", 0644) || chown("nob644", NOBODY, NOBODY)) {
        printf("setup failed %s\n", strerrorname_np(errno));
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setegid(NOBODY) || seteuid(NOBODY)) {
            printf("drop failed %s\n", strerrorname_np(errno));
            _exit(1);
        }
        as_nobody_effective();
        fflush(stdout);
        /* Back to root (the saved uid), as test harnesses do. */
        report("seteuid back to root", seteuid(0));
        report("create in 0755 dir as root again", create("d755/root2", 0644));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        /* For good: real, effective and saved. */
        gid_t g = GROUP;
        if (setgroups(1, &g) || setresgid(NOBODY, NOBODY, NOBODY) || setuid(NOBODY)) {
            printf("drop failed %s\n", strerrorname_np(errno));
            _exit(1);
        }
        report("member: write-open of group 0660", open_w("g660", 0));
        report("member: create in 0777 dir", create("d777/member", 0644));
        owner("d777/member");
        report("member: seteuid back to root", seteuid(0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setgid(NOBODY) || setresuid(NOBODY, NOBODY, NOBODY)) {
            printf("drop failed %s\n", strerrorname_np(errno));
            _exit(1);
        }
        report("outsider: write-open of group 0660", open_w("g660", 0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setregid(NOBODY, NOBODY) || setreuid(NOBODY, NOBODY)) {
            printf("drop failed %s\n", strerrorname_np(errno));
            _exit(1);
        }
        report("setreuid: create in 0755 dir", create("d755/re", 0644));
        report("setreuid: create in 0777 dir", create("d777/re", 0644));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        /* Root with another group: what it creates has that group. */
        if (setegid(NOBODY)) {
            printf("setegid failed %s\n", strerrorname_np(errno));
            _exit(1);
        }
        report("root, group nobody: create", create("d755/rootgrp", 0644));
        owner("d755/rootgrp");
        report("root, group nobody: mkfifo", mkfifo("d755/fifo", 0600));
        owner("d755/fifo");
        report("root, group nobody: mkdir", mkdir("d755/grpdir", 0755));
        owner("d755/grpdir");
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        /* Enough files that the view's table grows into new generations,
         * which the new credentials cannot open themselves. */
        if (setgroups(0, NULL) || setegid(NOBODY) || seteuid(NOBODY)) {
            printf("drop failed %s\n", strerrorname_np(errno));
            _exit(1);
        }
        int unseen = 0;
        char p[64];
        struct stat st;
        for (int i = 0; i < 400; i++) {
            snprintf(p, sizeof p, "d777/many%03d", i);
            if (create(p, 0644) || stat(p, &st) || st.st_size != 3) unseen++;
        }
        printf("400 files made as nobody, unseen: %d\n", unseen);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_as_nobody, NULL) || pthread_join(t, NULL)) {
            printf("thread failed\n");
            _exit(1);
        }
        report("other thread still root: create", create("d755/unthreaded", 0644));
        owner("d755/unthreaded");
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        /* Root without the capabilities that override the mode bits (a
         * test suite checking its refusals, a hardened service): refused
         * as the bits say. */
        mkdir("d000", 0755);
        create("d000/f", 0644);
        chmod("d000", 0);
        create("x011", 0644);
        chmod("x011", 0011);
        if (drop_caps(CAP(CAP_DAC_OVERRIDE) | CAP(CAP_DAC_READ_SEARCH), 0)) {
            printf("capset failed %s\n", strerrorname_np(errno));
            _exit(1);
        }
        report("no DAC: stat in 0000 dir", stat_of("d000/f"));
        report("no DAC: exec of own 0011 file", try_exec("x011"));
        report("no DAC: write-open of 0444 file", open_w("r444", 0));
        report("no DAC: read of 0000 file", read_all("r000"));
        report("no DAC: create in 0555 dir", create("d555/new", 0644));
        report("no DAC: write-open of own 0644", open_w("r644", 0));
        report("no DAC: access W of 0444 file", access("r444", W_OK));
        fflush(stdout);
        /* One thread drops CAP_FOWNER and CAP_CHOWN: its requests are
         * judged by its own capabilities, the main thread's by its. */
        pthread_t t;
        if (pthread_create(&t, NULL, thread_without_fowner, NULL) || pthread_join(t, NULL)) {
            printf("thread failed\n");
            _exit(1);
        }
        report("main thread: chmod nobody's file", chmod("nob644", 0640));
        owner("nob644");
        fflush(stdout);
        /* A user namespace of its own gives no capability over the
         * project's files (gVisor's TruncateNonWriteable). */
        pid_t ns = fork();
        if (ns == 0) {
            if (syscall(SYS_unshare, CLONE_NEWUSER)) {
                printf("unshare failed %s\n", strerrorname_np(errno));
                _exit(1);
            }
            report("new userns: truncate of 0444 file", syscall(SYS_truncate, "r444", 0));
            fflush(stdout);
            _exit(0);
        }
        waitpid(ns, NULL, 0);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    /* Root (CAP_FSETID) writing its set-uid file keeps the bit. */
    report("root writes set-uid 04755 file", append("suidroot"));
    owner("suidroot");
    /* setfsuid/setfsgid to the ids it has (the daemon learns effective
     * ids, not file-system ones: README, "Conformance"). */
    report("setfsgid to own gid", setfsgid(0) == 0 ? 0 : -1);
    report("setfsuid to own uid", setfsuid(0) == 0 ? 0 : -1);
    report("create after setfsuid", create("d755/fs", 0644));
    return 0;
}
