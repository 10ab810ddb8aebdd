/* Run under `vrift run`: each mode exercises one way a process can stress
 * the shim. Prints one line per check; the Rust test compares them.
 * argv[1]: mode; argv[2]: a rift file (in the view, not on disk);
 * argv[3]: a rift directory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *file, *dir;

static int sees(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char c;
    int ok = read(fd, &c, 1) == 1;
    close(fd);
    return ok;
}

static int count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* ---- threads: concurrent lookups, opens, listings and chdir */
static void *worker(void *arg) {
    long bad = 0;
    for (int i = 0; i < 3000; i++) {
        if (!sees(file)) bad++;
        if (count_dir(dir) < 3) bad++;
    }
    return (void *)bad;
}

static void *chdirer(void *arg) {
    char here[4096];
    if (!getcwd(here, sizeof here)) return (void *)1;
    for (int i = 0; i < 2000; i++) {
        chdir("/");
        chdir(here);
    }
    return NULL;
}

static int mode_threads(void) {
    pthread_t t[8], c;
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, NULL);
    pthread_create(&c, NULL, chdirer, NULL);
    long bad = 0;
    for (int i = 0; i < 8; i++) { void *r; pthread_join(t[i], &r); bad += (long)r; }
    pthread_join(c, NULL);
    /* Relative lookups use the cwd cache: absolute paths were used above. */
    printf("threads bad=%ld\n", bad);
    return 0;
}

/* ---- first-touch: the table and the cwd are set up on first need; eight
 * threads need them at the same instant, and the process forks meanwhile */
static pthread_barrier_t start_line;
static const char *rel_file;

static void *first_toucher(void *arg) {
    pthread_barrier_wait(&start_line);
    struct stat st;
    long bad = !sees(file) || stat(rel_file, &st) != 0;
    return (void *)bad;
}

static int mode_first_touch(void) {
    char here[4096];
    if (!getcwd(here, sizeof here)) return 1;
    size_t n = strlen(here);
    if (strncmp(file, here, n) || file[n] != '/') return 1;
    rel_file = file + n + 1;
    pthread_t t[8];
    pthread_barrier_init(&start_line, NULL, 9);
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, first_toucher, NULL);
    pthread_barrier_wait(&start_line);
    pid_t p = fork();
    if (p == 0) {
        struct stat st;
        _exit(sees(file) && stat(rel_file, &st) == 0 ? 0 : 1);
    }
    long bad = 0;
    for (int i = 0; i < 8; i++) { void *r; pthread_join(t[i], &r); bad += (long)r; }
    int st;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
    printf("first-touch bad=%ld\n", bad);
    return 0;
}

/* ---- fork and vfork */
static int mode_fork(void) {
    pid_t p = fork();
    if (p == 0) _exit(sees(file) && count_dir(dir) >= 3 ? 0 : 1);
    int st;
    waitpid(p, &st, 0);
    printf("fork child sees=%d\n", WIFEXITED(st) && WEXITSTATUS(st) == 0);
    fflush(stdout);
    p = vfork();
    if (p == 0) {
        char *argv[] = {"cat", (char *)file, NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", NULL}; /* scrubbed, as env -i */
        execve("/bin/cat", argv, envp);
        _exit(127);
    }
    waitpid(p, &st, 0);
    printf("vfork exec status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    fflush(stdout);
    /* A vfork child shares the parent's memory, not its cwd: a chdir there
     * must not become the parent's cached cwd. `file` relative to the cwd
     * (the project root), read once so the cache is warm. */
    char here[4096];
    size_t n = getcwd(here, sizeof here) ? strlen(here) : 0;
    const char *rel = n && !strncmp(file, here, n) && file[n] == '/' ? file + n + 1 : NULL;
    int before = rel && sees(rel);
    p = vfork();
    if (p == 0) _exit(chdir("/") == 0 ? 0 : 1);
    waitpid(p, &st, 0);
    printf("after a vfork child's chdir sees=%d/%d\n", before, rel && sees(rel));
    return 0;
}

/* ---- signals: the handler uses the shim while the main loop does too */
static volatile sig_atomic_t handler_bad, handler_runs;
static void on_alarm(int sig) {
    int saved = errno;
    struct stat st;
    if (stat(file, &st) != 0) handler_bad++;
    handler_runs++;
    errno = saved;
}

static int mode_signals(void) {
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    long bad = 0;
    for (int i = 0; i < 20000; i++) if (!sees(file)) bad++;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("signals bad=%ld handler_bad=%d handler_ran=%d\n", bad, (int)handler_bad, handler_runs > 0);
    return 0;
}

/* ---- signals and the cwd cache: the handler changes directory and back
 * (chdir is async-signal-safe) and resolves a relative path, while the main
 * loop does the same: a handler that lands while this very thread updates
 * the cache must neither wait for it forever nor see a stale directory. */
static volatile sig_atomic_t chdir_bad, chdir_runs;
static void on_alarm_chdir(int sig) {
    int saved = errno;
    struct stat st;
    int back = open(".", O_RDONLY | O_DIRECTORY);
    if (chdir(dir) != 0 || stat("package.json", &st) != 0) chdir_bad++;
    if (back < 0 || fchdir(back) != 0) chdir_bad++;
    close(back);
    chdir_runs++;
    errno = saved;
}

static int mode_signals_chdir(void) {
    signal(SIGALRM, on_alarm_chdir);
    struct itimerval it = {{0, 500}, {0, 500}};
    setitimer(ITIMER_REAL, &it, NULL);
    long bad = 0;
    struct stat st;
    for (int i = 0; i < 5000; i++) {
        if (chdir(dir) != 0 || stat("package.json", &st) != 0) bad++;
        if (chdir("/") != 0 || stat("package.json", &st) == 0) bad++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("signals-chdir bad=%ld handler_bad=%d handler_ran=%d\n", bad, (int)chdir_bad, chdir_runs > 0);
    return 0;
}

/* ---- closefrom(3): the shim's own fd (the blobs directory) is forgotten, not used */
static int mode_closefrom(void) {
    closefrom(3);
    printf("after closefrom sees=%d dir=%d\n", sees(file), count_dir(dir) >= 3);
    /* An fd the shim opens for a rift file is never 0-2 while those are open. */
    int fd = open(file, O_RDONLY);
    printf("fd>2=%d cloexec-kept=%d\n", fd > 2, (fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0);
    return 0;
}

/* ---- errno is preserved on success paths */
static int mode_errno(void) {
    errno = 12345;
    struct stat st;
    stat(file, &st);
    int after_hit = errno;
    errno = 12345;
    stat("/", &st);
    printf("errno kept hit=%d miss=%d\n", after_hit == 12345, errno == 12345);
    return 0;
}

/* ---- fds closed behind the shim's back (fclose, closedir, closefrom) must
 * not leave stale knowledge for the next fd with the same number */
static int mode_stale(const char *self) {
    FILE *f = fopen(file, "r");
    int fd1 = fileno(f);
    fclose(f);
    int fd2 = open(self, O_RDONLY);
    struct stat a, b;
    fstat(fd2, &a);
    stat(self, &b);
    printf("fclose same-fd=%d fresh=%d\n", fd1 == fd2, a.st_ino == b.st_ino);
    close(fd2);
    DIR *d = opendir(dir);
    int dfd = dirfd(d);
    closedir(d);
    int root = open("/", O_RDONLY | O_DIRECTORY);
    int proc = openat(root, "proc", O_RDONLY | O_DIRECTORY);
    printf("closedir same-fd=%d fresh=%d\n", dfd == root, proc >= 0);
    int in_dir = open(dir, O_RDONLY | O_DIRECTORY);
    int rel = openat(in_dir, "package.json", O_RDONLY);
    printf("dirfd-relative=%d\n", rel >= 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    file = argv[2];
    dir = argv[3];
    if (!strcmp(argv[1], "threads")) return mode_threads();
    if (!strcmp(argv[1], "fork")) return mode_fork();
    if (!strcmp(argv[1], "first-touch")) return mode_first_touch();
    if (!strcmp(argv[1], "signals")) return mode_signals();
    if (!strcmp(argv[1], "signals-chdir")) return mode_signals_chdir();
    if (!strcmp(argv[1], "closefrom")) return mode_closefrom();
    if (!strcmp(argv[1], "errno")) return mode_errno();
    if (!strcmp(argv[1], "stale")) return mode_stale(argv[0]);
    return 2;
}
