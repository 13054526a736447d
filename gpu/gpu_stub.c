/*
 * gpu/gpu_stub.c — gpu/gpu.h without CUDA (STRATA_HAVE_CUDA 0, and the
 * strata_gpu_stub library that tests link everywhere): every call that
 * needs a device returns STRATA_ERR_UNSUPPORTED with a sentence saying
 * so; pure helpers (gpu_score_from_float, gpu_ptr_memtype: everything is
 * host memory) still answer.
 *
 * Threading: pure functions.
 */
#include <stddef.h>
#include <string.h>

#include "core/status.h"
#include "gpu/gpu.h"
#include "gpu/gpu_logic.h"

static strata_status_t no_cuda(const char *what)
{
    return core_fail(STRATA_ERR_UNSUPPORTED,
                     "%s: built without CUDA (STRATA_WITH_CUDA; see docs/gpu.md)", what);
}

strata_status_t gpu_device_count(int *count)
{
    (void)count;
    return no_cuda("gpu_device_count");
}

strata_status_t gpu_stream_create(void **stream_p)
{
    (void)stream_p;
    return no_cuda("gpu_stream_create");
}

void gpu_stream_destroy(void *stream)
{
    (void)stream;
}

strata_status_t gpu_stream_sync(void *stream)
{
    (void)stream;
    return no_cuda("gpu_stream_sync");
}

strata_status_t gpu_malloc(void **ptr_p, size_t bytes)
{
    (void)ptr_p;
    (void)bytes;
    return no_cuda("gpu_malloc");
}

void gpu_free(void *ptr)
{
    (void)ptr;
}

strata_status_t gpu_host_alloc(void **ptr_p, size_t bytes)
{
    (void)ptr_p;
    (void)bytes;
    return no_cuda("gpu_host_alloc");
}

void gpu_host_free(void *ptr)
{
    (void)ptr;
}

strata_status_t gpu_memcpy(void *dst, const void *src, size_t bytes, void *stream)
{
    (void)dst;
    (void)src;
    (void)bytes;
    (void)stream;
    return no_cuda("gpu_memcpy");
}

strata_status_t gpu_memset(void *dst, int byte, size_t bytes, void *stream)
{
    (void)dst;
    (void)byte;
    (void)bytes;
    (void)stream;
    return no_cuda("gpu_memset");
}

strata_status_t gpu_ptr_memtype(const void *ptr, core_memtype_t *type_p)
{
    (void)ptr;
    *type_p = CORE_MEMTYPE_HOST;
    return STRATA_OK;
}

strata_status_t gpu_table_create(const gpu_table_config_t *config, gpu_table_t **table_p)
{
    (void)config;
    (void)table_p;
    return no_cuda("gpu_table_create");
}

void gpu_table_destroy(gpu_table_t *table)
{
    (void)table;
}

void gpu_table_get_info(const gpu_table_t *table, gpu_table_info_t *info)
{
    (void)table;
    memset(info, 0, sizeof(*info));
}

strata_status_t gpu_table_find(gpu_table_t *table, const uint64_t *d_keys, size_t n, float *d_out,
                               uint8_t *d_found, void *stream)
{
    (void)table;
    (void)d_keys;
    (void)n;
    (void)d_out;
    (void)d_found;
    (void)stream;
    return no_cuda("gpu_table_find");
}

strata_status_t gpu_table_insert_or_assign(gpu_table_t *table, const uint64_t *d_keys,
                                           const float *d_values, size_t n,
                                           const gpu_insert_opts_t *opts, void *stream)
{
    (void)table;
    (void)d_keys;
    (void)d_values;
    (void)n;
    (void)opts;
    (void)stream;
    return no_cuda("gpu_table_insert_or_assign");
}

strata_status_t gpu_table_apply(gpu_table_t *table, const uint64_t *d_keys, const float *d_grads,
                                size_t n, uint8_t *d_found, void *stream)
{
    (void)table;
    (void)d_keys;
    (void)d_grads;
    (void)n;
    (void)d_found;
    (void)stream;
    return no_cuda("gpu_table_apply");
}

strata_status_t gpu_table_export_dirty(gpu_table_t *table, uint64_t *d_keys, float *d_values,
                                       float *d_states, uint64_t max_rows, uint64_t *d_count,
                                       void *stream)
{
    (void)table;
    (void)d_keys;
    (void)d_values;
    (void)d_states;
    (void)max_rows;
    (void)d_count;
    (void)stream;
    return no_cuda("gpu_table_export_dirty");
}

strata_status_t gpu_table_size(gpu_table_t *table, uint64_t *size, void *stream)
{
    (void)table;
    (void)size;
    (void)stream;
    return no_cuda("gpu_table_size");
}

strata_status_t gpu_table_clear(gpu_table_t *table, void *stream)
{
    (void)table;
    (void)stream;
    return no_cuda("gpu_table_clear");
}

strata_status_t gpu_table_memdesc(const gpu_table_t *table, gpu_region_t which,
                                  core_memdesc_t *desc)
{
    (void)table;
    (void)which;
    (void)desc;
    return no_cuda("gpu_table_memdesc");
}

uint64_t gpu_score_from_float(float f, uint32_t step)
{
    return gpu_score_of_float(f, step);
}

strata_status_t gpu_dedup_create(size_t max_n, gpu_dedup_t **dedup_p)
{
    (void)max_n;
    (void)dedup_p;
    return no_cuda("gpu_dedup_create");
}

void gpu_dedup_destroy(gpu_dedup_t *dedup)
{
    (void)dedup;
}

strata_status_t gpu_dedup_run(gpu_dedup_t *dedup, const uint64_t *d_keys, size_t n,
                              uint64_t *d_unique, uint32_t *d_inverse, uint32_t *d_n_unique,
                              void *stream)
{
    (void)dedup;
    (void)d_keys;
    (void)n;
    (void)d_unique;
    (void)d_inverse;
    (void)d_n_unique;
    (void)stream;
    return no_cuda("gpu_dedup_run");
}

strata_status_t gpu_dedup_sum_rows(gpu_dedup_t *dedup, const float *d_rows, uint32_t dim,
                                   float *d_out, void *stream)
{
    (void)dedup;
    (void)d_rows;
    (void)dim;
    (void)d_out;
    (void)stream;
    return no_cuda("gpu_dedup_sum_rows");
}

strata_status_t gpu_bounce_create(size_t bytes, gpu_bounce_t **bounce_p)
{
    (void)bytes;
    (void)bounce_p;
    return no_cuda("gpu_bounce_create");
}

void gpu_bounce_destroy(gpu_bounce_t *bounce)
{
    (void)bounce;
}

void *gpu_bounce_host(const gpu_bounce_t *bounce)
{
    (void)bounce;
    return NULL;
}

size_t gpu_bounce_size(const gpu_bounce_t *bounce)
{
    (void)bounce;
    return 0;
}

void gpu_bounce_memdesc(const gpu_bounce_t *bounce, core_memdesc_t *desc)
{
    (void)bounce;
    memset(desc, 0, sizeof(*desc));
    desc->device = -1;
}

strata_status_t gpu_bounce_to_device(gpu_bounce_t *bounce, size_t offset, void *d_dst,
                                     size_t bytes, void *stream)
{
    (void)bounce;
    (void)offset;
    (void)d_dst;
    (void)bytes;
    (void)stream;
    return no_cuda("gpu_bounce_to_device");
}

strata_status_t gpu_bounce_from_device(gpu_bounce_t *bounce, size_t offset, const void *d_src,
                                       size_t bytes, void *stream)
{
    (void)bounce;
    (void)offset;
    (void)d_src;
    (void)bytes;
    (void)stream;
    return no_cuda("gpu_bounce_from_device");
}

strata_status_t gpu_table_mirror(const gpu_table_t *table, gpu_region_t which,
                                 gpu_bounce_t *bounce, void *stream)
{
    (void)table;
    (void)which;
    (void)bounce;
    (void)stream;
    return no_cuda("gpu_table_mirror");
}

strata_status_t gpu_measure_bandwidth(size_t bytes, int iters, gpu_bandwidth_t *bw)
{
    (void)bytes;
    (void)iters;
    (void)bw;
    return no_cuda("gpu_measure_bandwidth");
}

strata_status_t gpu_device_describe(char *name, size_t name_len, uint64_t *mem_bytes,
                                    int *cc_major, int *cc_minor, int *sm_count)
{
    (void)name;
    (void)name_len;
    (void)mem_bytes;
    (void)cc_major;
    (void)cc_minor;
    (void)sm_count;
    return no_cuda("gpu_device_describe");
}
