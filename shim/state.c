/* state.c - defines the shim's one global (shim/state.h). */
#include "shim/state.h"

struct qs_state qs_g = {
    .env_once = PTHREAD_ONCE_INIT,
    .dev_lock = PTHREAD_MUTEX_INITIALIZER,
    .init_lock = PTHREAD_MUTEX_INITIALIZER,
    .pools_lock = PTHREAD_MUTEX_INITIALIZER,
    .vmm_lock = PTHREAD_MUTEX_INITIALIZER,
    /* until an agent starts, nothing is gated */
    .gate = {.end = QS_GATE_FREE,
             .lock = PTHREAD_MUTEX_INITIALIZER,
             .drain_lock = PTHREAD_MUTEX_INITIALIZER},
};
