/* assets.h - the dashboard's files (arbiter/dashboard/), embedded into qarbiter at build
 * time by scripts/gen-assets.sh: the table is generated, read-only, any thread. */
#ifndef QA_ASSETS_H
#define QA_ASSETS_H

#include <stddef.h>

typedef struct qa_asset {
    const char *path;          /* URL path: "/" for index.html, else "/NAME" */
    const char *type;          /* Content-Type */
    const unsigned char *data; /* the file's bytes (NUL-terminated, the NUL not counted) */
    size_t len;                /* bytes */
} qa_asset_t;

extern const qa_asset_t qa_assets[];
extern const size_t qa_nassets;

#endif
