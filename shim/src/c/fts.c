/* glibc's fts_* walk directories with libc's internal opendir/stat, out of
 * the shim's sight, so they are rebuilt here on the shim's own exports
 * (opendir, readdir64, stat, lstat: calls from this object bind to the
 * shim's definitions). The algorithm and the FTS/FTSENT contract follow
 * glibc 2.36 (fts_read's pre/post-order visits, fts_children, fts_set,
 * FTS_NOSTAT's link-count shortcut, cycles as FTS_DC), with one difference:
 * the walk never changes directory, as if FTS_NOCHDIR were always set, so
 * fts_accpath is the path relative to the caller's unchanged cwd. Each
 * FTSENT owns its fts_path (glibc's point into one shared buffer), which
 * callers cannot tell apart. On LP64 glibc, FTSENT64 and FTSENT share one
 * layout, so the fts64_* names forward to the same functions. */
#include <dirent.h>
#include <errno.h>
#include <fts.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "LP64 stat layout");

#define BCHILD 1 /* fts_children */
#define BNAMES 2 /* fts_children, names only */
#define BREAD 3  /* fts_read */

#define ISSET(sp, opt) ((sp)->fts_options & (opt))

/* Path of a child: parent path, a slash unless it already ends in one, name. */
static FTSENT *fts_alloc(FTS *sp, const char *dir, size_t dirlen, const char *name, size_t namelen) {
    size_t pathlen = dirlen + (dirlen && dir[dirlen - 1] != '/' ? 1 : 0) + namelen;
    if (pathlen > 0xffff) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    /* One block: the entry (with its name), the stat buffer, the path. */
    size_t base = (offsetof(FTSENT, fts_name) + namelen + 1 + 15) & ~(size_t)15;
    FTSENT *p = calloc(1, base + sizeof(struct stat) + pathlen + 1);
    if (p == NULL)
        return NULL;
    memcpy(p->fts_name, name, namelen);
    p->fts_namelen = namelen;
    p->fts_statp = (struct stat *)((char *)p + base);
    char *path = (char *)p->fts_statp + sizeof(struct stat);
    size_t n = 0;
    if (dirlen) {
        memcpy(path, dir, dirlen);
        n = dirlen;
        if (dir[dirlen - 1] != '/')
            path[n++] = '/';
    }
    memcpy(path + n, name, namelen);
    path[pathlen] = 0;
    p->fts_path = path;
    p->fts_accpath = path;
    p->fts_pathlen = pathlen;
    p->fts_instr = FTS_NOINSTR;
    if (sp && ISSET(sp, FTS_NOSTAT))
        p->fts_statp = NULL;
    return p;
}

static void fts_lfree(FTSENT *head) {
    while (head) {
        FTSENT *next = head->fts_link;
        free(head);
        head = next;
    }
}

static unsigned short fts_stat(FTS *sp, FTSENT *p, int follow) {
    /* As glibc: with FTS_NOSTAT no entry carries stat information. */
    struct stat sb, *sbp = ISSET(sp, FTS_NOSTAT) ? &sb : p->fts_statp;
    int saved_errno;
    if (ISSET(sp, FTS_LOGICAL) || follow) {
        if (stat(p->fts_accpath, sbp) != 0) {
            saved_errno = errno;
            if (errno == ENOENT && lstat(p->fts_accpath, sbp) == 0) {
                errno = 0;
                return FTS_SLNONE;
            }
            p->fts_errno = saved_errno;
            goto err;
        }
    } else if (lstat(p->fts_accpath, sbp) != 0) {
        p->fts_errno = errno;
err:
        memset(sbp, 0, sizeof(struct stat));
        return FTS_NS;
    }
    if (S_ISDIR(sbp->st_mode)) {
        p->fts_dev = sbp->st_dev;
        p->fts_ino = sbp->st_ino;
        p->fts_nlink = sbp->st_nlink;
        if (p->fts_name[0] == '.' && (p->fts_name[1] == 0 || (p->fts_name[1] == '.' && p->fts_name[2] == 0)))
            return FTS_DOT;
        for (FTSENT *t = p->fts_parent; t && t->fts_level >= FTS_ROOTLEVEL; t = t->fts_parent)
            if (p->fts_ino == t->fts_ino && p->fts_dev == t->fts_dev) {
                p->fts_cycle = t;
                return FTS_DC;
            }
        return FTS_D;
    }
    if (S_ISLNK(sbp->st_mode))
        return FTS_SL;
    if (S_ISREG(sbp->st_mode))
        return FTS_F;
    return FTS_DEFAULT;
}

typedef int (*fts_cmp)(const FTSENT **, const FTSENT **);

static FTSENT *fts_sort(FTS *sp, FTSENT *head, int nitems) {
    if (nitems > sp->fts_nitems) {
        FTSENT **a = realloc(sp->fts_array, (size_t)(nitems + 40) * sizeof(FTSENT *));
        if (a == NULL) /* glibc: leave the list unsorted */
            return head;
        sp->fts_array = a;
        sp->fts_nitems = nitems + 40;
    }
    FTSENT **ap = sp->fts_array;
    for (FTSENT *p = head; p; p = p->fts_link)
        *ap++ = p;
    qsort(sp->fts_array, nitems, sizeof(FTSENT *), (int (*)(const void *, const void *))sp->fts_compar);
    ap = sp->fts_array;
    head = *ap;
    for (int i = 0; i < nitems - 1; i++)
        ap[i]->fts_link = ap[i + 1];
    ap[nitems - 1]->fts_link = NULL;
    return head;
}

static FTSENT *fts_build(FTS *sp, int type) {
    FTSENT *cur = sp->fts_cur;
    DIR *dirp = opendir(cur->fts_accpath);
    if (dirp == NULL) {
        if (type == BREAD) {
            cur->fts_info = FTS_DNR;
            cur->fts_errno = errno;
        }
        return NULL;
    }
    long nlinks;
    int nostat;
    if (type == BNAMES) {
        nlinks = 0;
        nostat = 0;
    } else if (ISSET(sp, FTS_NOSTAT) && ISSET(sp, FTS_PHYSICAL)) {
        nlinks = cur->fts_nlink - (ISSET(sp, FTS_SEEDOT) ? 0 : 2);
        nostat = 1;
    } else {
        nlinks = -1;
        nostat = 0;
    }
    FTSENT *head = NULL, *tail = NULL;
    int nitems = 0;
    struct dirent64 *dp;
    int saved_errno = 0;
    while ((dp = readdir64(dirp)) != NULL) {
        const char *name = dp->d_name;
        if (!ISSET(sp, FTS_SEEDOT) && name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
            continue;
        FTSENT *p = fts_alloc(sp, cur->fts_path, cur->fts_pathlen, name, strlen(name));
        if (p == NULL) {
            saved_errno = errno;
            fts_lfree(head);
            closedir(dirp);
            cur->fts_info = FTS_ERR;
            sp->fts_options |= FTS_STOP;
            errno = saved_errno;
            return NULL;
        }
        p->fts_level = cur->fts_level + 1;
        p->fts_parent = sp->fts_cur;
        if (nlinks == 0 || (nostat && dp->d_type != DT_DIR && dp->d_type != DT_UNKNOWN)) {
            p->fts_info = FTS_NSOK;
        } else {
            p->fts_info = fts_stat(sp, p, 0);
            if (nlinks > 0 && (p->fts_info == FTS_D || p->fts_info == FTS_DC || p->fts_info == FTS_DOT))
                --nlinks;
        }
        p->fts_link = NULL;
        if (head == NULL)
            head = tail = p;
        else {
            tail->fts_link = p;
            tail = p;
        }
        ++nitems;
    }
    closedir(dirp);
    if (nitems == 0) {
        if (type == BREAD)
            cur->fts_info = FTS_DP;
        return NULL;
    }
    if (sp->fts_compar && nitems > 1)
        head = fts_sort(sp, head, nitems);
    return head;
}

FTS *fts_open(char *const *argv, int options, int (*compar)(const FTSENT **, const FTSENT **)) {
    if (options & ~FTS_OPTIONMASK) {
        errno = EINVAL;
        return NULL;
    }
    FTS *sp = calloc(1, sizeof(FTS));
    if (sp == NULL)
        return NULL;
    sp->fts_compar = (int (*)(const void *, const void *))compar;
    sp->fts_options = options;
    if (ISSET(sp, FTS_LOGICAL))
        sp->fts_options |= FTS_NOCHDIR;
    FTSENT *parent = fts_alloc(sp, "", 0, "", 0);
    if (parent == NULL)
        goto mem1;
    parent->fts_level = FTS_ROOTPARENTLEVEL;
    FTSENT *root = NULL, *tail = NULL;
    int nitems = 0;
    for (; *argv; ++argv, ++nitems) {
        size_t len = strlen(*argv);
        if (len == 0) {
            errno = ENOENT;
            goto mem2;
        }
        FTSENT *p = fts_alloc(sp, "", 0, *argv, len);
        if (p == NULL)
            goto mem2;
        p->fts_level = FTS_ROOTLEVEL;
        p->fts_parent = parent;
        p->fts_accpath = p->fts_path;
        p->fts_info = fts_stat(sp, p, ISSET(sp, FTS_COMFOLLOW) != 0);
        if (p->fts_info == FTS_DOT)
            p->fts_info = FTS_D;
        if (compar) {
            p->fts_link = root;
            root = p;
        } else {
            p->fts_link = NULL;
            if (root == NULL)
                tail = root = p;
            else {
                tail->fts_link = p;
                tail = p;
            }
        }
    }
    if (compar && nitems > 1)
        root = fts_sort(sp, root, nitems);
    /* A dummy current node that fts_read treats as just finished. */
    sp->fts_cur = fts_alloc(sp, "", 0, "", 0);
    if (sp->fts_cur == NULL)
        goto mem2;
    sp->fts_cur->fts_link = root;
    sp->fts_cur->fts_parent = parent; /* where an empty walk ends */
    sp->fts_cur->fts_info = FTS_INIT;
    sp->fts_rfd = -1;
    return sp;
mem2:
    fts_lfree(root);
    free(parent);
mem1:
    free(sp);
    return NULL;
}

FTSENT *fts_read(FTS *sp) {
    if (sp->fts_cur == NULL || ISSET(sp, FTS_STOP))
        return NULL;
    FTSENT *p = sp->fts_cur;
    unsigned short instr = p->fts_instr;
    p->fts_instr = FTS_NOINSTR;
    if (instr == FTS_AGAIN) {
        p->fts_info = fts_stat(sp, p, 0);
        return p;
    }
    if (instr == FTS_FOLLOW && (p->fts_info == FTS_SL || p->fts_info == FTS_SLNONE)) {
        p->fts_info = fts_stat(sp, p, 1);
        return p;
    }
    if (p->fts_info == FTS_D) {
        if (instr == FTS_SKIP || (ISSET(sp, FTS_XDEV) && p->fts_dev != sp->fts_dev)) {
            fts_lfree(sp->fts_child);
            sp->fts_child = NULL;
            p->fts_info = FTS_DP;
            return p;
        }
        if (sp->fts_child != NULL && ISSET(sp, FTS_NAMEONLY)) {
            sp->fts_options &= ~FTS_NAMEONLY;
            fts_lfree(sp->fts_child);
            sp->fts_child = NULL;
        }
        if (sp->fts_child == NULL && (sp->fts_child = fts_build(sp, BREAD)) == NULL) {
            if (ISSET(sp, FTS_STOP))
                return NULL;
            return p;
        }
        p = sp->fts_child;
        sp->fts_child = NULL;
        return sp->fts_cur = p;
    }
next:
    {
        FTSENT *tmp = p;
        if ((p = p->fts_link) != NULL) {
            free(tmp);
            if (p->fts_level == FTS_ROOTLEVEL) {
                sp->fts_dev = p->fts_dev;
                return sp->fts_cur = p;
            }
            if (p->fts_instr == FTS_SKIP)
                goto next;
            if (p->fts_instr == FTS_FOLLOW) {
                p->fts_info = fts_stat(sp, p, 1);
                p->fts_instr = FTS_NOINSTR;
            }
            return sp->fts_cur = p;
        }
        /* The last sibling: up to the parent, visited in post-order. */
        p = tmp->fts_parent;
        sp->fts_cur = p;
        free(tmp);
        if (p->fts_level == FTS_ROOTPARENTLEVEL) {
            free(p);
            errno = 0;
            return sp->fts_cur = NULL;
        }
        p->fts_info = p->fts_errno ? FTS_ERR : FTS_DP;
        return p;
    }
}

FTSENT *fts_children(FTS *sp, int instr) {
    if (instr != 0 && instr != FTS_NAMEONLY) {
        errno = EINVAL;
        return NULL;
    }
    FTSENT *p = sp->fts_cur;
    errno = 0;
    if (ISSET(sp, FTS_STOP))
        return NULL;
    if (p->fts_info == FTS_INIT)
        return p->fts_link;
    if (p->fts_info != FTS_D)
        return NULL;
    fts_lfree(sp->fts_child);
    if (instr == FTS_NAMEONLY) {
        sp->fts_options |= FTS_NAMEONLY;
        instr = BNAMES;
    } else
        instr = BCHILD;
    return sp->fts_child = fts_build(sp, instr);
}

int fts_set(FTS *sp, FTSENT *p, int instr) {
    (void)sp;
    if (instr != 0 && instr != FTS_AGAIN && instr != FTS_FOLLOW && instr != FTS_NOINSTR && instr != FTS_SKIP) {
        errno = EINVAL;
        return 1;
    }
    p->fts_instr = instr;
    return 0;
}

int fts_close(FTS *sp) {
    if (sp->fts_cur) {
        FTSENT *p = sp->fts_cur, *freep;
        while (p->fts_level >= FTS_ROOTLEVEL) {
            freep = p;
            p = p->fts_link != NULL ? p->fts_link : p->fts_parent;
            free(freep);
        }
        free(p);
    }
    fts_lfree(sp->fts_child);
    free(sp->fts_array);
    free(sp);
    return 0;
}

/* fts64_* (glibc 2.23+): the same functions on LP64. */
_Static_assert(sizeof(FTSENT64) == sizeof(FTSENT) && offsetof(FTSENT64, fts_name) == offsetof(FTSENT, fts_name) &&
                   offsetof(FTSENT64, fts_statp) == offsetof(FTSENT, fts_statp) && sizeof(FTS64) == sizeof(FTS),
               "LP64 fts layout");

FTS64 *fts64_open(char *const *argv, int options, int (*compar)(const FTSENT64 **, const FTSENT64 **)) {
    return (FTS64 *)fts_open(argv, options, (fts_cmp)compar);
}
FTSENT64 *fts64_read(FTS64 *sp) { return (FTSENT64 *)fts_read((FTS *)sp); }
FTSENT64 *fts64_children(FTS64 *sp, int instr) { return (FTSENT64 *)fts_children((FTS *)sp, instr); }
int fts64_set(FTS64 *sp, FTSENT64 *p, int instr) { return fts_set((FTS *)sp, (FTSENT *)p, instr); }
int fts64_close(FTS64 *sp) { return fts_close((FTS *)sp); }
