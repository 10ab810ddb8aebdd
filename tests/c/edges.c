/* POSIX corners the view must answer as the kernel does: bad pointers
 * (EFAULT, never a crash), names past NAME_MAX, paths of about 1 KiB and
 * more in every call, ENOTDIR below a file, getdents into a short or
 * unwritable buffer. Prints one line per check, run
 * natively and in the view and compared line by line. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void report(const char *what, long rc) {
    printf("%-28s %ld %s\n", what, rc < 0 ? -1L : 0L, rc < 0 ? strerrorname_np(errno) : "-");
    errno = 0;
}

#define BAD ((const char *)1)
#define WILD ((const char *)-1L)

int main(void) {
    struct stat st;
    report("open bad", open(BAD, O_RDONLY));
    report("open wild", open(WILD, O_RDONLY));
    report("open creat bad", open(BAD, O_CREAT | O_WRONLY, 0644));
    report("openat bad", openat(AT_FDCWD, BAD, O_RDONLY));
    report("stat bad", stat(BAD, &st));
    report("lstat wild", lstat(WILD, &st));
    report("access bad", access(BAD, F_OK));
    report("mkdir bad", mkdir(BAD, 0755));
    report("rmdir bad", rmdir(BAD));
    report("unlink bad", unlink(BAD));
    report("rename bad from", rename(BAD, "y"));
    report("rename bad to", rename("y", BAD));
    report("symlink bad target", symlink(BAD, "l"));
    report("link bad", link(BAD, "l"));
    report("chmod bad", chmod(BAD, 0644));
    report("truncate bad", truncate(BAD, 0));
    report("chdir bad", chdir(BAD));
    report("readlink bad", readlink(BAD, (char[8]){0}, 8));
    symlink("target", "lnk");
    report("readlink into bad buffer", readlink("lnk", (char *)BAD, 8));
    report("readlink size 0", readlink("lnk", (char[8]){0}, 0));
    report("fopen bad", fopen(BAD, "r") ? 0 : -1);

    char name[300];
    memset(name, 'n', 256);
    name[256] = 0;
    report("creat 256", open(name, O_CREAT | O_WRONLY, 0644));
    report("mkdir 256", mkdir(name, 0755));
    name[255] = 0;
    int fd = open(name, O_CREAT | O_WRONLY, 0644);
    report("creat 255", fd);
    if (fd >= 0) close(fd);
    report("unlink 255", unlink(name));

    /* Eight levels of 128-byte names: about 1,040 bytes. */
    char path[4096] = "";
    char comp[129];
    memset(comp, 'd', 128);
    comp[128] = 0;
    for (int i = 0; i < 8; i++) {
        if (i) strcat(path, "/");
        comp[0] = '0' + i;
        strcat(path, comp);
        report("mkdir deep", mkdir(path, 0755));
    }
    char file[4200];
    snprintf(file, sizeof file, "%s/f", path);
    fd = open(file, O_CREAT | O_WRONLY, 0644);
    report("creat deep", fd);
    if (fd >= 0) { report("write deep", write(fd, "deep\n", 5) == 5 ? 0 : -1); close(fd); }
    report("stat deep", stat(file, &st));
    printf("%-28s %lld\n", "size deep", (long long)st.st_size);
    DIR *d = opendir(path);
    int n = 0;
    if (d) { struct dirent *e; while ((e = readdir(d))) if (e->d_name[0] != '.') n++; closedir(d); }
    printf("%-28s %d %s\n", "list deep", n, d ? "-" : strerrorname_np(errno));
    char moved[4200];
    snprintf(moved, sizeof moved, "%s/g", path);
    report("rename deep", rename(file, moved));
    report("chdir deep", chdir(path));
    report("stat rel deep", stat("g", &st));
    report("chdir back", chdir("..") == 0 ? 0 : -1);
    for (int i = 0; i < 7; i++) chdir("..");

    /* Below a file the view made (the disk has nothing there). */
    fd = open("f", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    report("stat below file", stat("f/x", &st));
    report("creat below file", open("f/x", O_CREAT | O_WRONLY, 0644));
    report("mkdir below file", mkdir("f/x", 0755));
    report("access below file", access("f/x/y", F_OK));

    /* A trailing slash or dot names a directory (gVisor's stat, open and
     * unlink tests): a file there is ENOTDIR, a symlink is followed even
     * by lstat, and O_CREAT makes nothing. */
    fd = open("ts", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    mkdir("pdir", 0755);
    symlink("pdir", "tsl");
    report("lstat file/", lstat("ts/", &st));
    report("stat file/.", stat("ts/.", &st));
    report("open file/", open("ts/", O_RDONLY));
    report("unlink file/", unlink("ts/"));
    report("creat new/", open("newname/", O_CREAT | O_WRONLY, 0644));
    report("stat new after", stat("newname", &st));
    report("lstat symlink-to-dir/", lstat("tsl/", &st));
    printf("%-28s %s\n", "  is a directory", S_ISDIR(st.st_mode) ? "yes" : "no");
    report("lstat file still there", lstat("ts", &st));
    report("link to missing/", link("ts", "linkname/"));
    report("link to existing/", link("ts", "pdir/"));
    report("symlink to missing/", symlink("ts", "symname/"));
    report("stat link not made", lstat("linkname", &st));
    mkdir("pdir/sub", 0755);
    report("rename dir/. away", rename("pdir/sub/.", "moved"));
    report("rename onto dir/..", rename("ts", "pdir/sub/.."));
    report("noreplace onto dir/.", syscall(SYS_renameat2, AT_FDCWD, "ts", AT_FDCWD, "pdir/sub/.", 1));
    report("rmdir dir/.", rmdir("pdir/sub/."));
    report("rmdir dir/..", rmdir("pdir/sub/.."));
    report("rmdir dir itself", rmdir("pdir/sub"));

    /* utimensat's times as the kernel reads them: out of range is
     * EINVAL, unreadable EFAULT, both UTIME_OMIT a no-op even for a
     * missing file (gVisor's utimes tests). */
    struct timespec bad_ns[2] = {{0, 1000000000L}, {0, 0}};
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    struct timeval bad_us[2] = {{0, 0}, {1, -1}};
    report("utimensat nsec 1e9", utimensat(AT_FDCWD, "ts", bad_ns, 0));
    report("utimensat omit missing", utimensat(AT_FDCWD, "no-such-file", omit, 0));
    report("utimensat bad times", utimensat(AT_FDCWD, "ts", (struct timespec *)BAD, 0));
    report("futimesat usec -1", futimesat(AT_FDCWD, "ts", bad_us));
    report("utimes usec -1", utimes("ts", bad_us));

    /* truncate past RLIMIT_FSIZE: SIGXFSZ (ignored here) and EFBIG
     * (LTP's truncate03), for a rift file as for a disk one. */
    struct rlimit old_fsize, small = {1000, RLIM_INFINITY};
    getrlimit(RLIMIT_FSIZE, &old_fsize);
    signal(SIGXFSZ, SIG_IGN);
    small.rlim_max = old_fsize.rlim_max;
    setrlimit(RLIMIT_FSIZE, &small);
    report("truncate past RLIMIT_FSIZE", truncate("ts", 5000));
    report("truncate within it", truncate("ts", 500));
    setrlimit(RLIMIT_FSIZE, &old_fsize);

    /* A mapped page the kernel cannot read (LTP's tst_get_bad_addr), and
     * a string that runs from a readable page into one: EFAULT. */
    long pg = sysconf(_SC_PAGESIZE);
    char *none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    report("PROT_NONE open", open(none, O_RDONLY));
    report("PROT_NONE creat", creat(none, 0644));
    report("PROT_NONE stat", stat(none, &st));
    report("PROT_NONE lstat", lstat(none, &st));
    report("PROT_NONE fstatat", fstatat(AT_FDCWD, none, &st, 0));
    report("PROT_NONE statx", syscall(SYS_statx, AT_FDCWD, none, 0, 0x7ff, (char[256]){0}));
    report("PROT_NONE access", access(none, F_OK));
    report("PROT_NONE faccessat2", syscall(439, AT_FDCWD, none, F_OK, 0));
    report("PROT_NONE mkdir", mkdir(none, 0755));
    report("PROT_NONE rmdir", rmdir(none));
    report("PROT_NONE unlink", unlink(none));
    report("PROT_NONE rename", rename("f", none));
    report("PROT_NONE link", link(none, "l2"));
    report("link to PROT_NONE", link("f", none));
    report("PROT_NONE chdir", chdir(none));
    report("PROT_NONE chmod", fchmodat(AT_FDCWD, none, 0644, 0));
    report("PROT_NONE execve", execve(none, (char *[]){"x", NULL}, (char *[]){NULL}));
    char *two = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(two, 'a', pg);
    mprotect(two + pg, pg, PROT_NONE);
    report("into PROT_NONE stat", stat(two + pg - 3, &st));
    report("into PROT_NONE open", open(two + pg - 3, O_RDONLY));
    /* A page read once as a good path, then unmapped and mapped again
     * unreadable (munmap and mprotect are seen). */
    char *once = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(once, "f");
    report("good page stat", stat(once, &st));
    mprotect(once, pg, PROT_NONE);
    report("then PROT_NONE stat", stat(once, &st));
    munmap(once, pg);
    char *again = mmap(once, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    report("mapped again stat", again == once ? stat(again, &st) : -1);

    /* getdents into a buffer shorter than said (gVisor's PartialBuffer:
     * 256 bytes before an unmapped page, 4096 claimed): every entry comes,
     * a few per call; into an unwritable buffer: EFAULT. */
    mkdir("pb", 0755);
    for (int i = 0; i < 40; i++) {
        char p[32];
        snprintf(p, sizeof p, "pb/file-with-a-longer-name-%02d", i);
        int f = open(p, O_CREAT | O_WRONLY, 0644);
        if (f >= 0) close(f);
    }
    char *page = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(page + pg, pg, PROT_NONE);
    int dfd = open("pb", O_RDONLY | O_DIRECTORY);
    long got, entries = 0, calls = 0;
    while ((got = syscall(SYS_getdents64, dfd, page + pg - 256, pg)) > 0) {
        calls++;
        for (long off = 0; off < got; off += *(unsigned short *)(page + pg - 256 + off + 16))
            entries++;
    }
    printf("%-28s %ld %s\n", "getdents short buffer", entries, got < 0 ? strerrorname_np(errno) : "-");
    printf("%-28s %s\n", "  in several calls", calls > 1 ? "yes" : "no");
    lseek(dfd, 0, SEEK_SET);
    report("getdents into PROT_NONE", syscall(SYS_getdents64, dfd, none, pg));
    close(dfd);
    return 0;
}
