/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of the fuzz harnesses, their replay driver and the
 * seed corpus generator. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The libFuzzer entry point each harness defines; fuzz_main.c calls it
 * once per corpus file when we are not linked with libFuzzer. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional: a harness may define it to check, after fuzz_main.c has
 * replayed its corpus, that the corpus still does its job (non-zero
 * fails the run). Not called under libFuzzer. */
int fuzz_replay_done(long inputs) __attribute__((weak));

#define FUZZ_KEK_LEN 32

/* The KEK that gen_corpus wraps the seed disks' keys with. The harness
 * must use the same one: with any other key every seed stops at the
 * unwrap and nothing behind the MAC check is ever reached. */
static inline void fuzz_kek_fill(uint8_t out[FUZZ_KEK_LEN])
{
	for (int i = 0; i < FUZZ_KEK_LEN; i++)
		out[i] = (uint8_t)(0x5a ^ (i * 37));
}

/* A broken invariant, as opposed to an input that was rightly refused:
 * abort so that libFuzzer (and the replay test) reports the input. */
#define FUZZ_CHECK(cond, ...)                                               \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
				__LINE__, #cond);                           \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
			abort();                                            \
		}                                                           \
	} while (0)

#endif
