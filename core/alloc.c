/*
 * core/alloc.c — the library's allocator: jemalloc for objects, anonymous
 * NORESERVE mappings for large regions, and the fault-injection hook.
 *
 * Invariant: every allocation the library makes passes core_alloc_should_fail
 * exactly once, so strata_test_fail_alloc(n) fails precisely the nth.
 *
 * Threading: thread-safe; the injection counters are atomics.
 */
#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>

#if !(defined(CORE_ALLOC_SHARED_LIB) && CORE_ALLOC_SHARED_LIB)
#include <jemalloc/jemalloc.h>
#else
/* The shared library does not link jemalloc (see CORE_USE_LIBC below); the
 * jemalloc branches are dead there, and these keep them compiling. */
#define MALLOCX_ZERO 0x40
#define MALLOCX_ALIGN(a) 0
static inline void *mallocx(size_t size, int flags)
{
    return (flags & MALLOCX_ZERO) ? calloc(1, size) : malloc(size);
}
static inline void *rallocx(void *ptr, size_t size, int flags)
{
    (void)flags;
    return realloc(ptr, size);
}
static inline void dallocx(void *ptr, int flags)
{
    (void)flags;
    free(ptr);
}
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/status.h"
#include "strata_config.h"

#define CORE_HUGE_PAGE (2u << 20)

/* Fault injection: countdown to the failing allocation (0: off). */
static uint64_t fail_countdown;   /* allocations left before the failing one */
static int fail_persistent;       /* keep failing after the first */
static uint64_t fail_count;       /* failures injected since last set */

void strata_test_fail_alloc(uint64_t n, int persistent)
{
    __atomic_store_n(&fail_persistent, persistent ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fail_count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fail_countdown, n, __ATOMIC_SEQ_CST);
}

uint64_t strata_test_failed_allocs(void)
{
    return __atomic_load_n(&fail_count, __ATOMIC_RELAXED);
}

int core_alloc_should_fail(void)
{
    uint64_t c = __atomic_load_n(&fail_countdown, __ATOMIC_RELAXED);
    if (CORE_LIKELY(c == 0))
        return 0;
    /* Claim one tick of the countdown. */
    while (c != 0) {
        uint64_t next = c - 1;
        if (c == 1 && __atomic_load_n(&fail_persistent, __ATOMIC_RELAXED))
            next = 1; /* stay armed */
        if (__atomic_compare_exchange_n(&fail_countdown, &c, next, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED)) {
            if (c == 1) {
                __atomic_fetch_add(&fail_count, 1, __ATOMIC_RELAXED);
                return 1;
            }
            return 0;
        }
    }
    return 0;
}

/* Sanitizer builds (STRATA_ALLOC_LIBC) use libc's allocator, which
 * AddressSanitizer intercepts: overruns inside an object and leaks are then
 * visible to it, as they are not inside jemalloc's arenas. So does the
 * shared libstrata.so (CORE_ALLOC_SHARED_LIB): Debian's libjemalloc uses
 * initial-exec TLS, which a library loaded with dlopen (Python's ctypes)
 * cannot get, and it replaces C++ operator new, which breaks C++ programs
 * that load libstrata after their own allocator has started. */
#if defined(CORE_ALLOC_SHARED_LIB) && CORE_ALLOC_SHARED_LIB
#define CORE_USE_LIBC 1
#else
#define CORE_USE_LIBC STRATA_ALLOC_LIBC
#endif

void *core_malloc(size_t size)
{
    if (core_alloc_should_fail())
        return NULL;
    if (CORE_USE_LIBC)
        return malloc(size ? size : 1);
    return mallocx(size ? size : 1, 0);
}

void *core_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    if (core_alloc_should_fail())
        return NULL;
    size_t total = n * size;
    if (CORE_USE_LIBC)
        return calloc(1, total ? total : 1);
    return mallocx(total ? total : 1, MALLOCX_ZERO);
}

void *core_realloc(void *ptr, size_t size)
{
    if (!ptr)
        return core_malloc(size);
    if (core_alloc_should_fail())
        return NULL;
    if (CORE_USE_LIBC)
        return realloc(ptr, size ? size : 1);
    return rallocx(ptr, size ? size : 1, 0);
}

void *core_aligned_alloc(size_t align, size_t size)
{
    if (core_alloc_should_fail())
        return NULL;
    if (CORE_USE_LIBC) {
        void *p = NULL;
        if (align < sizeof(void *))
            align = sizeof(void *);
        return posix_memalign(&p, align, size ? size : 1) == 0 ? p : NULL;
    }
    return mallocx(size ? size : 1, MALLOCX_ALIGN(align));
}

void core_free(void *ptr)
{
    if (!ptr)
        return;
    if (CORE_USE_LIBC)
        free(ptr);
    else
        dallocx(ptr, 0);
}

static strata_status_t region_mmap_alloc(void *arg, size_t len, int huge_pages,
                                         core_region_t *region)
{
    (void)arg;
    if (len == 0)
        return core_fail(STRATA_ERR_INVALID_PARAM, "region of 0 bytes");
    size_t align = huge_pages ? CORE_HUGE_PAGE : 4096;
    size_t rounded = (len + align - 1) & ~(align - 1);
    size_t map_len = rounded + (huge_pages ? align : 0);
    void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return core_fail_errno(errno, "mmap of %zu bytes", map_len);
    uintptr_t base = (uintptr_t)p;
    if (huge_pages) {
        /* Trim to a 2 MiB-aligned window so THP can back it entirely. */
        uintptr_t aligned = (base + align - 1) & ~(uintptr_t)(align - 1);
        if (aligned > base)
            munmap(p, aligned - base);
        uintptr_t end = aligned + rounded;
        uintptr_t map_end = base + map_len;
        if (map_end > end)
            munmap((void *)end, map_end - end);
        base = aligned;
        (void)madvise((void *)base, rounded, MADV_HUGEPAGE); /* advisory */
    }
    region->base = (void *)base;
    region->len = rounded;
    region->handle = NULL;
    return STRATA_OK;
}

static void region_mmap_free(void *arg, core_region_t *region)
{
    (void)arg;
    if (region->base)
        munmap(region->base, region->len);
    region->base = NULL;
    region->len = 0;
}

const core_region_ops_t core_region_ops_default = {
    .alloc = region_mmap_alloc,
    .free = region_mmap_free,
    .arg = NULL,
};

strata_status_t core_region_alloc(const core_region_ops_t *ops, size_t len, int huge_pages,
                                  core_region_t *region)
{
    if (!ops)
        ops = &core_region_ops_default;
    if (core_alloc_should_fail())
        return core_fail(STRATA_ERR_NOMEM, "region of %zu bytes: allocation failed (injected)",
                         len);
    core_region_t r = {0};
    strata_status_t st = ops->alloc(ops->arg, len, huge_pages, &r);
    if (st != STRATA_OK)
        return st;
    *region = r;
    return STRATA_OK;
}

void core_region_free(const core_region_ops_t *ops, core_region_t *region)
{
    if (!ops)
        ops = &core_region_ops_default;
    if (region->base)
        ops->free(ops->arg, region);
    memset(region, 0, sizeof(*region));
}
