// The key index (key_index.h): open addressing with linear probing, kept at
// most 3/4 full, over XXH64 of the key with a per-index random seed.
#include "io/key_index.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "io/xxh64.h"

static uint64_t random_seed(const KeyIndex *ix) {
    uint64_t s;
    if (getentropy(&s, sizeof s) == 0) return s;
    // No entropy source: the clock and the index's address still vary by run.
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)ix;
}

static uint64_t key_hash(const KeyIndex *ix, uintptr_t ns, const void *key, size_t len) {
    return xxh64(key, len, ix->seed ^ ((uint64_t)ns * 0xC2B2AE3D27D4EB4FULL));
}

static int same_key(const KeyIndexSlot *s, uint64_t h, uintptr_t ns, const void *key, size_t len) {
    return s->hash == h && s->ns == ns && s->len == len && (len == 0 || memcmp(s->key, key, len) == 0);
}

// The slot holding the key, or the empty slot where it would go.
static KeyIndexSlot *probe(const KeyIndex *ix, uint64_t h, uintptr_t ns, const void *key, size_t len) {
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        KeyIndexSlot *s = &ix->slots[i];
        if (!s->item || same_key(s, h, ns, key, len)) return s;
    }
}

static void grow(KeyIndex *ix) {
    KeyIndex bigger = {NULL, ix->cap ? 2 * ix->cap : 64, ix->count, ix->seed};
    bigger.slots = callocCheck(bigger.cap, sizeof *bigger.slots);
    for (size_t i = 0; i < ix->cap; i++) {
        const KeyIndexSlot *s = &ix->slots[i];
        if (s->item) *probe(&bigger, s->hash, s->ns, s->key, s->len) = *s;
    }
    free(ix->slots);
    *ix = bigger;
}

size_t key_index_add(KeyIndex *ix, uintptr_t ns, const void *key, size_t len, size_t item) {
    DINO_ASSERT(item != KEY_INDEX_NONE);
    if (!ix->cap) ix->seed = random_seed(ix);
    if (4 * (ix->count + 1) > 3 * ix->cap) grow(ix);
    uint64_t h = key_hash(ix, ns, key, len);
    KeyIndexSlot *s = probe(ix, h, ns, key, len);
    if (s->item) return s->item - 1;
    *s = (KeyIndexSlot){h, ns, key, len, item + 1};
    ix->count++;
    return item;
}

size_t key_index_get(const KeyIndex *ix, uintptr_t ns, const void *key, size_t len) {
    if (!ix->count) return KEY_INDEX_NONE;
    const KeyIndexSlot *s = probe(ix, key_hash(ix, ns, key, len), ns, key, len);
    return s->item ? s->item - 1 : KEY_INDEX_NONE;
}

void key_index_free(KeyIndex *ix) {
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}
