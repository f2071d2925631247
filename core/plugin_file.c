/* core/plugin_file.c — what the plugin host checks of plugin_dir and of a plugin file
 * before dlopen, which runs the file's constructors and maps it: by then it is too late.
 *
 * Like sshd's StrictModes: the directory, every directory above it and each file must be
 * owned by the daemon's user or root and writable by nobody else (a directory above may be
 * writable by others when it is sticky, as /tmp is: nobody can rename another's entry out
 * of it). And a file's ELF header and program headers must fit in the file: dlopen maps
 * segments past the end of a truncated file, and the first touch of one is a SIGBUS that
 * kills the daemon. Everything is read with pread from one descriptor, never mapped.
 */
#include "plugin_private.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr elf_ehdr;
typedef Elf64_Phdr elf_phdr;
typedef Elf64_Shdr elf_shdr;
#define HOST_CLASS ELFCLASS64
#define HOST_BITS "64"
#else
typedef Elf32_Ehdr elf_ehdr;
typedef Elf32_Phdr elf_phdr;
typedef Elf32_Shdr elf_shdr;
#define HOST_CLASS ELFCLASS32
#define HOST_BITS "32"
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_DATA ELFDATA2LSB
#else
#define HOST_DATA ELFDATA2MSB
#endif

/* The machine the daemon was built for; 0 where this list does not know it (then any). */
#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__i386__)
#define HOST_MACHINE EM_386
#elif defined(__arm__)
#define HOST_MACHINE EM_ARM
#elif defined(__riscv)
#define HOST_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HOST_MACHINE EM_PPC64
#elif defined(__s390x__)
#define HOST_MACHINE EM_S390
#else
#define HOST_MACHINE 0
#endif

/* Who may own or write plugin files: the daemon's user and root. */
static const char *owner_problem(const struct stat *st, int sticky_ok, char *why, size_t len,
                                 const char *what, const char *path)
{
    uid_t me = geteuid();
    if (st->st_uid != me && st->st_uid != 0) {
        snprintf(why, len, "%s \"%s\" is owned by uid %u, not by the daemon's user (uid %u) "
                 "or root; chown %u \"%s\" or remove it", what, path, (unsigned)st->st_uid,
                 (unsigned)me, (unsigned)me, path);
        return why;
    }
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_ok && (st->st_mode & S_ISVTX))) {
        snprintf(why, len, "%s \"%s\" is writable by %s (mode %04o); chmod go-w \"%s\"", what,
                 path, (st->st_mode & S_IWOTH) ? "everyone" : "its group",
                 (unsigned)(st->st_mode & 07777), path);
        return why;
    }
    return NULL;
}

/* dir (a resolved path) and every directory above it. */
static const char *check_dir_chain(const char *dir, char *why, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (int first = 1;; first = 0) {
        struct stat st;
        if (stat(path, &st) != 0) {
            snprintf(why, len, "could not stat \"%s\": %s", path, strerror(errno));
            return why;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(why, len, "\"%s\" is not a directory", path);
            return why;
        }
        /* plugin_dir itself may not be sticky-writable: anyone could add a file. */
        if (owner_problem(&st, !first, why, len, first ? "plugin_dir" : "directory", path))
            return why;
        char *slash = strrchr(path, '/');
        if (!slash || slash == path) {
            if (strcmp(path, "/") == 0)
                return NULL;
            snprintf(path, sizeof path, "/");
            continue;
        }
        *slash = '\0';
    }
}

int tfs_plugin_dir_check(const char *dir, tfs_error *err)
{
    char real[PATH_MAX], why[PATH_MAX + 200];
    if (!realpath(dir, real))
        return tfs_error_set(err, TFS_EIO, "could not open plugin directory \"%s\": %s", dir,
                             strerror(errno));
    if (check_dir_chain(real, why, sizeof why)) {
        tfs_error_set(err, TFS_EINVAL, "refusing to load plugins from \"%s\": %s", dir, why);
        tfs_error_hint(err, "plugin_dir, the folders above it and its plugins must be writable "
                       "only by the daemon's user or root, or anyone who can write there runs "
                       "code as the daemon");
        return TFS_EINVAL;
    }
    return 0;
}

/* [off, off + size) inside a file of file_size bytes, without overflow. */
static int fits(uint64_t off, uint64_t size, uint64_t file_size)
{
    return off <= file_size && size <= file_size - off;
}

/* The ELF header and program headers of fd against its size; a reason or NULL. */
static const char *check_elf(int fd, uint64_t size, char *why, size_t len)
{
    elf_ehdr eh;
    if (size < EI_NIDENT || pread(fd, &eh, EI_NIDENT, 0) != EI_NIDENT ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return "not an ELF file (no ELF magic at its start)";
    if (eh.e_ident[EI_CLASS] != HOST_CLASS) {
        snprintf(why, len, "an ELF file of another class (%s-bit), this host is " HOST_BITS
                 "-bit", eh.e_ident[EI_CLASS] == ELFCLASS32 ? "32" : "64");
        return why;
    }
    if (eh.e_ident[EI_DATA] != HOST_DATA)
        return "an ELF file of the other byte order";
    if (size < sizeof eh) {
        snprintf(why, len, "truncated: %llu bytes, shorter than an ELF header (%zu)",
                 (unsigned long long)size, sizeof eh);
        return why;
    }
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh)
        return "could not read its ELF header";
    if (HOST_MACHINE && eh.e_machine != HOST_MACHINE) {
        snprintf(why, len, "built for another machine (ELF machine %u, this host is %u)",
                 (unsigned)eh.e_machine, (unsigned)HOST_MACHINE);
        return why;
    }
    if (eh.e_type != ET_DYN) {
        snprintf(why, len, "not a shared object (ELF type %u)", (unsigned)eh.e_type);
        return why;
    }
    if (eh.e_phnum == 0 || eh.e_phentsize != sizeof(elf_phdr))
        return "its ELF header has no valid program header table";
    uint64_t ph_size = (uint64_t)eh.e_phnum * sizeof(elf_phdr);
    if (!fits(eh.e_phoff, ph_size, size)) {
        snprintf(why, len, "truncated: %llu bytes, its program headers end at byte %llu",
                 (unsigned long long)size, (unsigned long long)eh.e_phoff + ph_size);
        return why;
    }
    if (eh.e_shoff || eh.e_shnum) {
        uint64_t n = eh.e_shnum ? eh.e_shnum : 1; /* 0: the count is in section 0 */
        if (eh.e_shentsize != sizeof(elf_shdr))
            return "its ELF header has an invalid section header size";
        if (!fits(eh.e_shoff, n * sizeof(elf_shdr), size)) {
            snprintf(why, len, "truncated: %llu bytes, its section headers end at byte %llu",
                     (unsigned long long)size,
                     (unsigned long long)eh.e_shoff + n * sizeof(elf_shdr));
            return why;
        }
    }
    elf_phdr *ph = malloc(ph_size);
    if (!ph)
        return "out of memory";
    const char *reason = NULL;
    if (pread(fd, ph, ph_size, (off_t)eh.e_phoff) != (ssize_t)ph_size) {
        reason = "could not read its program headers";
        goto out;
    }
    /* Every segment with bytes in the file must lie inside it: dlopen maps them. */
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_filesz && !fits(ph[i].p_offset, ph[i].p_filesz, size)) {
            snprintf(why, len, "truncated: %llu bytes, its segment %u ends at byte %llu",
                     (unsigned long long)size, i,
                     (unsigned long long)ph[i].p_offset + ph[i].p_filesz);
            reason = why;
            goto out;
        }
    }
out:
    free(ph);
    return reason;
}

const char *tfs_plugin_file_check(const char *path, char *why, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, len, "could not open it: %s", strerror(errno));
        return why;
    }
    const char *reason = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, len, "could not stat it: %s", strerror(errno));
        reason = why;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        reason = "not a regular file";
        goto out;
    }
    if ((reason = owner_problem(&st, 0, why, len, "the file", path)))
        goto out;
    /* A symbolic link to a file elsewhere: that folder must be as safe as plugin_dir. */
    char real[PATH_MAX];
    if (realpath(path, real)) {
        char *slash = strrchr(real, '/');
        if (slash && slash != real) {
            *slash = '\0';
            if ((reason = check_dir_chain(real, why, len)))
                goto out;
        }
    }
    reason = check_elf(fd, (uint64_t)st.st_size, why, len);
out:
    close(fd);
    return reason;
}
