/* sigbus.c - the SIGBUS guard (see sigbus.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sigbus.h"

/*
 * The registry: slots in chunks that are allocated on demand and never
 * freed, so the handler can walk them without a lock.  A slot is in use
 * while start is non-zero; add writes end before start, remove clears
 * start first.
 */
#define SLOTS_PER_CHUNK 4096
#define CHUNKS 64

typedef struct guard_slot {
	_Atomic uintptr_t start, end;
	atomic_int faulted;
} guard_slot;

static guard_slot *_Atomic chunks[CHUNKS];
static atomic_size_t high;           /* slots ever used */
static atomic_uint_fast64_t rescues; /* faults rescued */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct sigaction previous;    /* the handler cellar's replaced */
static uintptr_t page_mask;

static guard_slot *slot_at(size_t i)
{
	guard_slot *c = atomic_load_explicit(&chunks[i / SLOTS_PER_CHUNK],
	                                     memory_order_acquire);
	return c ? &c[i % SLOTS_PER_CHUNK] : NULL;
}

/* The registered mapping holding a, or NULL (safe in the handler). */
static guard_slot *find(uintptr_t a)
{
	size_t n = atomic_load_explicit(&high, memory_order_acquire);

	for (size_t i = 0; i < n; i++) {
		guard_slot *g = slot_at(i);
		if (!g)
			break;
		uintptr_t s = atomic_load_explicit(&g->start, memory_order_acquire);
		if (s && a >= s &&
		    a < atomic_load_explicit(&g->end, memory_order_relaxed))
			return g;
	}
	return NULL;
}

/* Not a fault of cellar's: what would have happened without cellar. */
static void chain(int sig, siginfo_t *info, void *uctx)
{
	struct sigaction dfl;

	if (previous.sa_flags & SA_SIGINFO) {
		if (previous.sa_sigaction) {
			previous.sa_sigaction(sig, info, uctx);
			return;
		}
	} else if (previous.sa_handler != SIG_DFL &&
	           previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* Default (an ignored fault cannot be ignored either): die of it.  A
	 * fault is retried on return and kills; a SIGBUS sent with kill() is
	 * raised again, delivered once this handler returns. */
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGBUS, &dfl, NULL);
	if (info->si_code <= 0)
		raise(sig);
}

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
	int saved = errno;
	uintptr_t a = (uintptr_t)info->si_addr;
	/* si_code > 0: the kernel's, a real access fault. */
	guard_slot *g = info->si_code > 0 ? find(a) : NULL;

	if (g) {
		uintptr_t page = a & page_mask;
		uintptr_t end = atomic_load_explicit(&g->end, memory_order_relaxed);
		end = (end + ~page_mask) & page_mask;
		if (mmap((void *)page, end - page, PROT_READ,
		         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
		    MAP_FAILED) {
			atomic_store_explicit(&g->faulted, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&rescues, 1, memory_order_release);
			errno = saved;
			return;
		}
	}
	chain(sig, info, uctx);
	errno = saved;
}

static void install(void)
{
	struct sigaction sa;
	long ps = sysconf(_SC_PAGESIZE);

	page_mask = ~(uintptr_t)((ps > 0 ? ps : 4096) - 1);
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &previous);
}

/* A free slot (registry mutex held), or NULL when the registry is full. */
static guard_slot *free_slot(void)
{
	size_t n = atomic_load_explicit(&high, memory_order_relaxed);

	for (size_t i = 0; i < n; i++) {
		guard_slot *g = slot_at(i);
		if (!atomic_load_explicit(&g->start, memory_order_relaxed))
			return g;
	}
	if (n == (size_t)CHUNKS * SLOTS_PER_CHUNK)
		return NULL;
	if (n % SLOTS_PER_CHUNK == 0) {
		guard_slot *c = calloc(SLOTS_PER_CHUNK, sizeof *c);
		if (!c)
			return NULL;
		atomic_store_explicit(&chunks[n / SLOTS_PER_CHUNK], c,
		                      memory_order_release);
	}
	atomic_store_explicit(&high, n + 1, memory_order_release);
	return slot_at(n);
}

void fs_sigbus_add(const void *addr, size_t len)
{
	guard_slot *g;

	if (!addr || !len)
		return;
	pthread_once(&once, install);
	pthread_mutex_lock(&reg_mu);
	if ((g = free_slot()) != NULL) {
		atomic_store_explicit(&g->faulted, 0, memory_order_relaxed);
		atomic_store_explicit(&g->end, (uintptr_t)addr + len,
		                      memory_order_relaxed);
		atomic_store_explicit(&g->start, (uintptr_t)addr,
		                      memory_order_release);
	}
	pthread_mutex_unlock(&reg_mu);
}

/* The slot registered at addr, or NULL. */
static guard_slot *slot_of(const void *addr)
{
	size_t n = atomic_load_explicit(&high, memory_order_acquire);

	for (size_t i = 0; i < n; i++) {
		guard_slot *g = slot_at(i);
		if (g && atomic_load_explicit(&g->start, memory_order_acquire) ==
		             (uintptr_t)addr)
			return g;
	}
	return NULL;
}

void fs_sigbus_remove(const void *addr)
{
	guard_slot *g;

	if (!addr)
		return;
	pthread_mutex_lock(&reg_mu);
	if ((g = slot_of(addr)) != NULL)
		atomic_store_explicit(&g->start, 0, memory_order_release);
	pthread_mutex_unlock(&reg_mu);
}

uint64_t fs_sigbus_rescues(void)
{
	return atomic_load_explicit(&rescues, memory_order_acquire);
}

int fs_sigbus_faulted(const void *addr)
{
	guard_slot *g;

	if (!addr || !fs_sigbus_rescues())
		return 0;
	g = slot_of(addr);
	return g && atomic_load_explicit(&g->faulted, memory_order_relaxed);
}
