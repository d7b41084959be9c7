#include "io/ioutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum td_status td_io_errf(enum td_status status, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

enum td_status td_io_tmp_path(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen)
{
    int n = snprintf(tmp, tmplen, "%s.tmp", path);
    if (n < 0 || (size_t)n >= tmplen)
        return td_io_errf(TD_ERR_ARG, err, errlen, "%s: path too long", path);
    return TD_OK;
}

enum td_status td_io_write_file(const char *path, const void *const *bufs, const size_t *lens,
                                int n, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot create: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) {
        const unsigned char *p = bufs[i];
        for (size_t done = 0; done < lens[i];) {
            ssize_t w = write(fd, p + done, lens[i] - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int saved = w < 0 ? errno : EIO;
                close(fd);
                return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot write: %s", path,
                                  strerror(saved));
            }
            done += (size_t)w;
        }
    }
    /* Some file systems (NFS) report write errors only here. */
    if (close(fd) != 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot write: %s", path, strerror(errno));
    return TD_OK;
}

static enum td_status sync_path(const char *path, int flags, char *err, size_t errlen)
{
    int fd = open(path, flags);
    if (fd < 0)
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot open for fsync: %s", path,
                          strerror(errno));
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    /* Some file systems cannot fsync a directory; the rename is still atomic. */
    if (rc != 0 && !(flags & O_DIRECTORY))
        return td_io_errf(TD_ERR_IO, err, errlen, "%s: fsync failed: %s", path, strerror(saved));
    return TD_OK;
}

enum td_status td_io_commit(const char *tmp, const char *path, char *err, size_t errlen)
{
    enum td_status st = sync_path(tmp, O_RDONLY, err, errlen);
    if (st != TD_OK) {
        remove(tmp);
        return st;
    }
    if (rename(tmp, path) != 0) {
        st = td_io_errf(TD_ERR_IO, err, errlen, "%s: cannot rename %s over it: %s", path, tmp,
                        strerror(errno));
        remove(tmp);
        return st;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t len = (size_t)(slash - path);
        if (len == 0) len = 1;
        if (len >= sizeof(dir)) return TD_OK; /* the rename is done; skip the directory sync */
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    /* Best effort: the new file is already in place; syncing the directory
     * only makes the rename itself survive a power loss. */
    sync_path(dir, O_RDONLY | O_DIRECTORY, NULL, 0);
    return TD_OK;
}
