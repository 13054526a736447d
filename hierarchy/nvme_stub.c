/*
 * hierarchy/nvme_stub.c — the NVMe store in a build without liburing: every
 * call that would touch the disk returns STRATA_ERR_UNSUPPORTED (tests
 * skip on it), so the tier manager can be built and run DRAM-only.
 *
 * Threading: pure.
 */
#include "hierarchy/nvme.h"

#include <string.h>

#include "core/status.h"

static strata_status_t nv_unsupported(void)
{
    return core_fail(STRATA_ERR_UNSUPPORTED,
                     "the NVMe tier needs liburing (build with STRATA_WITH_URING=ON)");
}

strata_status_t hier_nvme_open(const hier_nvme_config_t *cfg, hier_nvme_t **store_p)
{
    (void)cfg;
    (void)store_p;
    return nv_unsupported();
}

void hier_nvme_close(hier_nvme_t *store)
{
    (void)store;
}

strata_status_t hier_nvme_put(hier_nvme_t *store, const uint64_t *keys, size_t n,
                              const void *values, const hier_nvme_meta_t *metas, size_t *done)
{
    (void)store, (void)keys, (void)n, (void)values, (void)metas;
    if (done)
        *done = 0;
    return nv_unsupported();
}

strata_status_t hier_nvme_erase(hier_nvme_t *store, const uint64_t *keys, size_t n,
                                size_t *erased)
{
    (void)store, (void)keys, (void)n;
    if (erased)
        *erased = 0;
    return nv_unsupported();
}

strata_status_t hier_nvme_get(hier_nvme_t *store, const uint64_t *keys, size_t n, void *values,
                              hier_nvme_meta_t *metas, uint8_t *status, uint64_t now_ns)
{
    (void)store, (void)keys, (void)values, (void)metas, (void)now_ns;
    memset(status, HIER_NVME_ABSENT, n);
    return nv_unsupported();
}

int hier_nvme_contains(hier_nvme_t *store, uint64_t key)
{
    (void)store, (void)key;
    return 0;
}

strata_status_t hier_nvme_sync(hier_nvme_t *store)
{
    (void)store;
    return nv_unsupported();
}

strata_status_t hier_nvme_gc(hier_nvme_t *store, uint32_t max_victims, uint32_t *freed)
{
    (void)store, (void)max_victims;
    if (freed)
        *freed = 0;
    return nv_unsupported();
}

strata_status_t hier_nvme_expire(hier_nvme_t *store, uint64_t now_ns, size_t *expired)
{
    (void)store, (void)now_ns;
    if (expired)
        *expired = 0;
    return nv_unsupported();
}

strata_status_t hier_nvme_iterate(hier_nvme_t *store, hier_nvme_iter_cb_t cb, void *arg)
{
    (void)store, (void)cb, (void)arg;
    return nv_unsupported();
}

strata_status_t hier_nvme_set_queue_depth(hier_nvme_t *store, uint32_t qd)
{
    (void)store, (void)qd;
    return nv_unsupported();
}

uint32_t hier_nvme_value_bytes(const hier_nvme_t *store)
{
    (void)store;
    return 0;
}

void hier_nvme_get_stats(hier_nvme_t *store, hier_nvme_stats_t *stats)
{
    (void)store;
    memset(stats, 0, sizeof(*stats));
}

uint32_t hier_nvme_segment_paths(hier_nvme_t *store, char *paths, uint32_t cap, size_t path_cap)
{
    (void)store, (void)paths, (void)cap, (void)path_cap;
    return 0;
}

strata_status_t hier_nvme_locate_page(hier_nvme_t *store, uint64_t key, char *path,
                                      size_t path_cap, uint64_t *offset)
{
    (void)store, (void)key, (void)path, (void)path_cap, (void)offset;
    return nv_unsupported();
}
