/*
 * core/table.h — internal access to a strata_table_t for the layers above
 * core (the server serves a table's shards) and for tests.
 *
 * Threading: core_table_shard is any thread; core_table_check takes every
 * shard's writer lock in turn.
 */
#ifndef STRATA_CORE_TABLE_H
#define STRATA_CORE_TABLE_H

#include "core/shard.h"
#include "strata.h"

/** Shard i (< schema.nshards) of the table; borrowed. */
core_shard_t *core_table_shard(strata_table_t *table, uint32_t i);

/** BAD_VALUE (naming the element, with "the batch was rejected") if any of
 *  the count floats v[] is NaN or Inf; what names the buffer. dim only
 *  shapes the message. Any thread. */
strata_status_t core_check_finite(const float *v, size_t count, uint32_t dim, const char *what);

/** core_shard_check on every shard under its writer lock. */
strata_status_t core_table_check(strata_table_t *table);

#endif
