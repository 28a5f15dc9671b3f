// A safe reader for the subset of Python's pickle that torch.save writes
// (docs/FORMATS.md §2): it builds an inert tree of values and never calls anything.
// GLOBAL/STACK_GLOBAL must name one of a short allow-list (OrderedDict, the
// torch tensor/parameter rebuild functions, torch storage classes,
// argparse.Namespace, numpy scalars, dtypes and 1-D arrays (as lists),
// _codecs.encode, set/bytes);
// everything else (os.system, builtins.eval, ...) is refused before any value
// is built from it. Tensors come out as PV_TENSOR values that reference a
// PV_STORAGE (the persistent id of a zip entry); their offsets, sizes and
// strides are checked against the storage's element count.
#ifndef DINO_PICKLE_H
#define DINO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"

typedef enum {
    PV_NONE,
    PV_BOOL,
    PV_INT,
    PV_FLOAT,
    PV_STR,      // text (UTF-8), NUL-terminated
    PV_BYTES,
    PV_TUPLE,
    PV_LIST,     // also sets
    PV_DICT,     // dict and OrderedDict, in insertion order
    PV_GLOBAL,   // an allow-listed class or function
    PV_STORAGE,  // a torch storage (persistent id)
    PV_TENSOR,
    PV_OBJECT,   // an inert instance: argparse.Namespace, numpy.dtype
} PickleType;


typedef struct PickleValue PickleValue;
struct PickleValue {
    PickleType type;
    int64_t i;          // PV_BOOL, PV_INT
    double f;           // PV_FLOAT
    char *s;            // PV_STR, PV_BYTES (NUL-terminated), PV_GLOBAL ("module.name"),
                        // PV_OBJECT (class name), PV_STORAGE (the key)
    size_t len;         // bytes in s
    PickleValue **items;  // PV_TUPLE, PV_LIST; PV_DICT: key, value, key, value...
    size_t n, cap;        // items (pairs for a dict)
    int global_id;        // PV_GLOBAL: which allow-listed name (internal)
    // PV_STORAGE
    DType st;             // element type of the storage
    uint64_t numel;       // elements, as recorded in the persistent id
    // PV_TENSOR
    PickleValue *storage;
    int64_t offset;       // in elements
    int ndim;
    int64_t shape[8], stride[8];
    // PV_OBJECT: attributes (a dict) for Namespace, descr for numpy.dtype
    PickleValue *state;
};

typedef struct PickleDoc PickleDoc;

// Parses a whole pickle. NULL with err filled ("...: <problem>", prefixed
// with `what`, usually the file name) on anything unsupported or malformed.
PickleDoc *pickle_parse(const uint8_t *data, size_t n, const char *what, char *err,
                        size_t errlen);
void pickle_free(PickleDoc *d);
const PickleValue *pickle_root(const PickleDoc *d);

// Dict lookup by string key (NULL when absent or when v is not a dict).
const PickleValue *pickle_dict_get(const PickleValue *v, const char *key);
// Object/Namespace attribute (NULL when absent).
const PickleValue *pickle_attr(const PickleValue *obj, const char *name);
// A short human-readable rendering (tensors as "tensor float32[3, 4]"),
// truncated to buflen.
void pickle_repr(const PickleValue *v, char *buf, size_t buflen);

#endif
