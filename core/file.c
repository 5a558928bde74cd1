/* core/file.c — see file.h */
#include "core/file.h"
#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *cr_read_file(const char *path, size_t *len, CrError *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cr_error_set(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = cr_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = cr_realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            cr_error_set(e, "%s: read failed: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int cr_fsync_dir(const char *dir, CrError *e) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return cr_error_set(e, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0 && errno != EINVAL)
        return cr_error_set(e, "%s: fsync failed: %s", dir, strerror(errno));
    return 0;
}

int cr_write_file_atomic(const char *path, const void *data, size_t len, CrError *e) {
    size_t plen = strlen(path);
    char *tmp = cr_malloc(plen + 32);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        cr_error_set(e, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            cr_error_set(e, "%s: write failed: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        cr_error_set(e, "%s: fsync/close failed: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        cr_error_set(e, "%s: rename to %s failed: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    char *dir = cr_strdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash) {
        if (slash == dir) slash[1] = 0; else *slash = 0;
        rc = cr_fsync_dir(dir, e);
    } else {
        rc = cr_fsync_dir(".", e);
    }
    free(dir);
    return rc;
}

int cr_mkdir_p(const char *path, CrError *e) {
    char *p = cr_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            cr_error_set(e, "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        cr_error_set(e, "%s: cannot create directory: %s", p, strerror(errno));
        free(p);
        return -1;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cr_error_set(e, "%s: exists and is not a directory", p);
        free(p);
        return -1;
    }
    free(p);
    return 0;
}

char *cr_path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = cr_malloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

int cr_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int cr_atomic_open(CrAtomicFile *f, const char *path, CrError *e) {
    size_t plen = strlen(path);
    f->path = cr_strdup(path);
    f->tmp = cr_malloc(plen + 32);
    snprintf(f->tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        cr_error_set(e, "%s: cannot create: %s", f->tmp, strerror(errno));
        free(f->path);
        free(f->tmp);
        f->path = f->tmp = NULL;
        return -1;
    }
    return 0;
}

void cr_atomic_abort(CrAtomicFile *f) {
    if (!f->tmp) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    f->fd = -1;
}

int cr_atomic_write(CrAtomicFile *f, const void *data, size_t len, CrError *e) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            cr_error_set(e, "%s: write failed: %s", f->tmp, strerror(errno));
            cr_atomic_abort(f);
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int cr_atomic_commit(CrAtomicFile *f, CrError *e) {
    int fd = f->fd;
    f->fd = -1;
    if (fsync(fd) != 0) {
        cr_error_set(e, "%s: fsync failed: %s", f->tmp, strerror(errno));
        close(fd);
        cr_atomic_abort(f);
        return -1;
    }
    if (close(fd) != 0) {
        cr_error_set(e, "%s: close failed: %s", f->tmp, strerror(errno));
        cr_atomic_abort(f);
        return -1;
    }
    if (rename(f->tmp, f->path) != 0) {
        cr_error_set(e, "%s: rename to %s failed: %s", f->tmp, f->path, strerror(errno));
        cr_atomic_abort(f);
        return -1;
    }
    char *dir = f->path;
    char *slash = strrchr(dir, '/');
    int rc;
    if (slash) {
        if (slash == dir) slash[1] = 0; else *slash = 0;
        rc = cr_fsync_dir(dir, e);
    } else {
        rc = cr_fsync_dir(".", e);
    }
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    return rc;
}
