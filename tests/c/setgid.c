/* Set-group-ID on create (issue 15): a file asked for with set-group-ID
 * and group execute in a set-group-ID directory, by a process outside the
 * directory's group and without CAP_FSETID, loses the bit (the kernel's
 * mode_strip_sgid); in a plain directory, or by a member, it keeps it.
 * Run as root: the probe drops CAP_FSETID and its supplementary groups.
 * One line per check, run natively and in the view, compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void made(const char *what, const char *path, mode_t mode) {
    int fd = open(path, O_CREAT | O_WRONLY, mode);
    struct stat st;
    if (fd < 0 || stat(path, &st)) {
        printf("%-28s failed %s\n", what, strerrorname_np(errno));
        return;
    }
    close(fd);
    printf("%-28s %04o\n", what, st.st_mode & 07777);
}

int main(void) {
    umask(0);
    mkdir("sg", 0777);
    mkdir("plain", 0777);
    if (chown("sg", -1, 65534) || chmod("sg", 02777)) {
        printf("setup failed %s\n", strerrorname_np(errno));
        return 1;
    }
    made("CAP_FSETID, setgid dir", "sg/a", 02755);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    syscall(SYS_capget, &h, d);
    d[0].effective &= ~(1u << CAP_FSETID);
    if (setgroups(0, NULL) || syscall(SYS_capset, &h, d)) {
        printf("drop failed %s\n", strerrorname_np(errno));
        return 1;
    }
    made("outsider, setgid dir", "sg/b", 02755);
    made("outsider, no g+x", "sg/c", 02745);
    made("outsider, plain dir", "plain/d", 02755);
    return 0;
}
