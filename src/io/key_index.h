// A hash index from byte-string keys to item numbers, so that looking up the
// names a file declares, or checking them for duplicates, costs time linear in
// the file rather than quadratic. Keys are not copied: they must outlive the
// index. Each index draws a random hash seed, so a crafted file cannot aim
// its keys at one slot. A zeroed KeyIndex is empty and ready to use.
#ifndef DINO_KEY_INDEX_H
#define DINO_KEY_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define KEY_INDEX_NONE SIZE_MAX

typedef struct {
    uint64_t hash;
    uintptr_t ns;
    const void *key;
    size_t len;
    size_t item;  // the caller's item + 1; 0 marks an empty slot
} KeyIndexSlot;

typedef struct {
    KeyIndexSlot *slots;
    size_t cap, count;
    uint64_t seed;
} KeyIndex;

// Adds key -> item unless the key is there already. Returns the item the key
// maps to afterwards: `item`, or the earlier one. `ns` keeps keys of several
// collections apart in one index (0 when there is one collection).
size_t key_index_add(KeyIndex *ix, uintptr_t ns, const void *key, size_t len, size_t item);
// The item stored under key, or KEY_INDEX_NONE.
size_t key_index_get(const KeyIndex *ix, uintptr_t ns, const void *key, size_t len);
void key_index_free(KeyIndex *ix);

#endif
