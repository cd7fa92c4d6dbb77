/* bucket.c - the out-of-line parts of the bucket codec (see bucket.h). */
#include "bucket.h"

int bucket_free_slot(const uint8_t *b)
{
	for (int i = 0; i < BUCKET_SLOTS; i++)
		if (!bucket_slot_used(b, i))
			return i;
	return -1;
}

int bucket_used(const uint8_t *b)
{
	int n = 0;

	for (int i = 0; i < BUCKET_SLOTS; i++)
		n += bucket_slot_used(b, i);
	return n;
}
