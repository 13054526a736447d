/*
 * client/trainer_internal.h — what trainer_nccl.c needs of the trainer's
 * private state (client/trainer.c). Not installed.
 *
 * Threading: the trainer's thread.
 */
#ifndef STRATA_CLIENT_TRAINER_INTERNAL_H
#define STRATA_CLIENT_TRAINER_INTERNAL_H

#include <stddef.h>

#include "strata_trainer.h"

/** Floats per dense allreduce bucket (dense_bucket_bytes / 4, >= 1). */
size_t trainer_bucket_elems(const strata_trainer_t *tr);

/** Account one dense allreduce: bytes reduced and seconds spent. */
void trainer_note_allreduce(strata_trainer_t *tr, size_t bytes, double seconds);

#endif
