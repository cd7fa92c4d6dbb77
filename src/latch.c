/* latch.c - the distributed reader/writer latch (see latch.h). */
#include <sched.h>

#include "latch.h"

static atomic_uint next_thread_slot;
_Thread_local unsigned latch__thread_slot CELLAR_TLS_IE = ~0u;

void latch_relax(unsigned *spins)
{
	if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
		return;
	}
	*spins = 0;
	/* Waits are short (a writer's in-memory update); let the holder run. */
	sched_yield();
}

void latch_init(latch *l)
{
	atomic_init(&l->writer, 0);
	atomic_init(&l->used, 0);
	for (int i = 0; i < LATCH_SLOTS; i++)
		atomic_init(&l->slot[i].readers, 0);
}

unsigned latch__assign_slot(void)
{
	latch__thread_slot = atomic_fetch_add(&next_thread_slot, 1) % LATCH_SLOTS;
	return latch__thread_slot;
}

unsigned latch_read_lock(latch *l)
{
	unsigned s = latch_thread_slot(), spins = 0;
	uint_fast64_t bit = (uint_fast64_t)1 << s;
	if (!(atomic_load_explicit(&l->used, memory_order_relaxed) & bit))
		atomic_fetch_or(&l->used, bit);
	for (;;) {
		atomic_fetch_add(&l->slot[s].readers, 1);
		if (!atomic_load(&l->writer))
			return s;
		atomic_fetch_sub_explicit(&l->slot[s].readers, 1,
		                          memory_order_release);
		while (atomic_load_explicit(&l->writer, memory_order_acquire))
			latch_relax(&spins);
	}
}

void latch_read_unlock(latch *l, unsigned slot)
{
	atomic_fetch_sub_explicit(&l->slot[slot].readers, 1,
	                          memory_order_release);
}

void latch_write_lock(latch *l)
{
	unsigned spins = 0;

	atomic_store(&l->writer, 1);
	uint_fast64_t used = atomic_load(&l->used);
	while (used) {
		int i = __builtin_ctzll(used);
		used &= used - 1;
		while (atomic_load(&l->slot[i].readers) != 0)
			latch_relax(&spins);
	}
}

void latch_write_unlock(latch *l)
{
	atomic_store_explicit(&l->writer, 0, memory_order_release);
}
