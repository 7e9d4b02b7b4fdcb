/* early.h - marks code that may run before a sanitizer runtime is initialised, and the
 * string helpers such code uses.
 *
 * The shim overrides dlsym, and AddressSanitizer's runtime, preloaded ahead of it in
 * SAN=1 builds, looks up the functions it intercepts with dlsym(RTLD_NEXT, ...) while it
 * starts: before its shadow memory exists (instrumented code would fault) and before its
 * interceptors know the real functions (an intercepted strcmp or dlopen would jump to
 * NULL). Everything dlsym reaches therefore carries QS_EARLY (no effect in normal
 * builds) and calls no libc function the runtime intercepts: only the helpers below,
 * dladdr1 and glibc's own dlsym. */
#ifndef QS_EARLY_H
#define QS_EARLY_H

#include <stdbool.h>
#include <stddef.h>

#define QS_EARLY __attribute__((no_sanitize("address", "undefined")))

/* strcmp's sign, without libc. */
QS_EARLY static inline int qs_strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* Whether s begins with prefix, without libc. */
QS_EARLY static inline bool qs_prefix(const char *s, const char *prefix)
{
    while (*prefix && *s == *prefix) {
        s++;
        prefix++;
    }
    return *prefix == '\0';
}

/* The value of environment variable name in env (a NULL-ended environ), or NULL, without
 * libc. */
QS_EARLY static inline const char *qs_env_value(char *const *env, const char *name)
{
    for (; env && *env; env++) {
        const char *e = *env, *n = name;
        while (*n && *e == *n) {
            e++;
            n++;
        }
        if (!*n && *e == '=')
            return e + 1;
    }
    return NULL;
}

/* Copies the first len bytes of s (or all of it, if shorter) into buf of cap bytes,
 * NUL-terminated; returns false, with buf emptied, when they do not fit. Without libc. */
QS_EARLY static inline bool qs_copy_early(char *buf, size_t cap, const char *s, size_t len)
{
    size_t i = 0;
    for (; i < len && s[i]; i++) {
        if (i + 1 >= cap) {
            buf[0] = '\0';
            return false;
        }
        buf[i] = s[i];
    }
    buf[i] = '\0';
    return true;
}

/* The part of path after its last '/', without libc. */
QS_EARLY static inline const char *qs_basename(const char *path)
{
    const char *base = path;
    for (; *path; path++) {
        if (*path == '/')
            base = path + 1;
    }
    return base;
}

#endif
