/* Special files (FIFOs, sockets, device nodes) through every spelling the
 * library serves, printing what a program sees. Run natively in one
 * directory and in the view in another: the outputs must be identical. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, long rc) {
    if (rc < 0)
        printf("%-28s -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%-28s %ld\n", what, rc);
}

static const char *type(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    }
    return "?";
}

static void show(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        printf("stat %-23s -1 %s\n", path, strerrorname_np(errno));
        return;
    }
    printf("stat %-23s %s %04o size %lld rdev %u,%u\n", path, type(st.st_mode),
           st.st_mode & 07777, (long long)st.st_size, major(st.st_rdev), minor(st.st_rdev));
}

static void list(void) {
    DIR *d = opendir(".");
    struct dirent *e;
    char line[4096] = "";
    /* Sorted by a fixed order of names we made. */
    const char *names[] = {"fifo", "fifo2", "at", "reg", "sock", "null", "raw", NULL};
    unsigned char types[7] = {0};
    while ((e = readdir(d)))
        for (int i = 0; names[i]; i++)
            if (strcmp(e->d_name, names[i]) == 0)
                types[i] = e->d_type;
    closedir(d);
    for (int i = 0; names[i]; i++) {
        char part[64];
        snprintf(part, sizeof part, " %s:%d", names[i], types[i]);
        strcat(line, part);
    }
    printf("listing%s\n", line);
}

int main(void) {
    umask(022);
    say("mkfifo fifo", mkfifo("fifo", 0640));
    show("fifo");
    say("mkfifo fifo again", mkfifo("fifo", 0640));
    say("mkfifoat at", mkfifoat(AT_FDCWD, "at", 0600));
    say("mknod reg", mknod("reg", S_IFREG | 0644, 0));
    show("reg");
    say("mknod dir", mknod("d", S_IFDIR | 0755, 0));
    say("mknod no parent", mknod("missing/f", S_IFIFO | 0644, 0));
    say("mknodat raw", syscall(SYS_mknodat, AT_FDCWD, "raw", S_IFIFO | 0604, 0));
    show("raw");
    long dev = mknod("null", S_IFCHR | 0666, makedev(1, 3));
    if (geteuid() == 0) {
        say("mknod null (root)", dev);
        show("null");
        int fd = open("null", O_WRONLY);
        say("write null", write(fd, "abc", 3));
        close(fd);
    } else {
        say("mknod null (user)", dev);
    }
    say("open fifo O_DIRECTORY", open("fifo", O_RDONLY | O_DIRECTORY));
    say("truncate fifo", truncate("fifo", 0));
    say("readlink fifo", readlink("fifo", (char[8]){0}, 8));
    say("chmod fifo 0600", chmod("fifo", 0600));
    show("fifo");

    /* A FIFO carries bytes between two processes. */
    pid_t pid = fork();
    if (pid == 0) {
        int w = open("fifo", O_WRONLY);
        write(w, "through the fifo", 16);
        close(w);
        _exit(0);
    }
    int r = open("fifo", O_RDONLY);
    char buf[64] = {0};
    long n = read(r, buf, sizeof buf - 1);
    printf("fifo read %ld '%s'\n", n, buf);
    struct stat st;
    fstat(r, &st);
    printf("fstat fifo fd %s %04o\n", type(st.st_mode), st.st_mode & 07777);
    close(r);
    waitpid(pid, NULL, 0);
    say("O_NONBLOCK writer, no reader", open("fifo", O_WRONLY | O_NONBLOCK));

    /* A Unix socket bound at a path of the view. */
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, "sock");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    say("bind sock", bind(s, (struct sockaddr *)&a, sizeof a));
    say("listen", listen(s, 1));
    show("sock");
    int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
    say("bind sock again", bind(s2, (struct sockaddr *)&a, sizeof a));
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    say("connect sock", connect(c, (struct sockaddr *)&a, sizeof a));
    int acc = accept(s, NULL, NULL);
    write(c, "ping", 4);
    memset(buf, 0, sizeof buf);
    printf("socket read %ld '%s'\n", read(acc, buf, sizeof buf - 1), buf);
    say("open sock", open("sock", O_RDONLY));
    int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(a.sun_path, "fifo");
    say("connect fifo", connect(c2, (struct sockaddr *)&a, sizeof a));
    strcpy(a.sun_path, "nothing");
    say("connect nothing", connect(c2, (struct sockaddr *)&a, sizeof a));
    list();

    say("rename fifo fifo2", rename("fifo", "fifo2"));
    show("fifo");
    show("fifo2");
    say("unlink fifo2", unlink("fifo2"));
    show("fifo2");
    say("unlink sock", unlink("sock"));

    /* A set-group-ID directory gives its group to what is made in it. */
    say("mkdir sg", mkdir("sg", 0755));
    say("chown sg :4242", chown("sg", -1, 4242));
    int pd = open("sg", O_PATH);
    say("fchownat O_PATH sg", fchownat(pd, "", -1, 4242, AT_EMPTY_PATH));
    close(pd);
    say("chmod sg 02775", chmod("sg", 02775));
    say("mkfifo sg/p", mkfifo("sg/p", 0600));
    int f = open("sg/f", O_CREAT | O_WRONLY, 0600);
    say("create sg/f", f < 0 ? -1 : 0);
    close(f);
    say("symlink sg/l", symlink("f", "sg/l"));
    const char *in_sg[] = {"sg/p", "sg/f", "sg/l"};
    for (int i = 0; i < 3; i++) {
        struct stat g;
        lstat(in_sg[i], &g);
        printf("group of %s %u\n", in_sg[i], (unsigned)g.st_gid);
    }
    return 0;
}
