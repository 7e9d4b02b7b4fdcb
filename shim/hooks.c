/* hooks.c - the name <-> hook tables for shim/hooks.h. Constant; any thread. */
#include "shim/hooks.h"
#include "shim/early.h"

static const char *const names[QS_ENTRY_COUNT] = {
#define QS_NAME_(name) #name,
    QS_HOOK_LIST(QS_NAME_) QS_CALL_LIST(QS_NAME_)
#undef QS_NAME_
};

/* Addresses as the dynamic linker binds them: the shim's own definitions, which come
 * first in the global scope (it is preloaded). */
static void *const addrs[QS_HOOK_COUNT] = {
#define QS_ADDR_(name) (void *)&name,
    QS_HOOK_LIST(QS_ADDR_)
#undef QS_ADDR_
};

const char *qs_entry_name(int id)
{
    return id >= 0 && id < QS_ENTRY_COUNT ? names[id] : NULL;
}

QS_EARLY void *qs_hook_addr(int id)
{
    return id >= 0 && id < QS_HOOK_COUNT ? addrs[id] : NULL;
}

QS_EARLY int qs_hook_find(const char *symbol)
{
    int lo = 0, hi = QS_HOOK_COUNT;
    if (!symbol)
        return -1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = qs_strcmp(names[mid], symbol);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

QS_EARLY int qs_hook_of(const void *fn)
{
    for (int i = 0; i < QS_HOOK_COUNT; i++) {
        if (addrs[i] == fn)
            return i;
    }
    return -1;
}
