/* admin.h - the administrator's requests on admin.sock: create, destroy, resize, list,
 * info, creds, gpus, stats, cdi, migrate, balance. A change is written to the state dir
 * before it is answered (store.c), and a change the store refuses is undone. migrate and
 * balance are answered once their moves ended (mover.h). Single-threaded: the loop. */
#ifndef QA_ADMIN_H
#define QA_ADMIN_H

#include "arbiter/peer.h"
#include "arbiter/server.h"
#include "proto/msg.h"

/* Answers m, a checked admin request other than hello, from p (which has a session). */
void qa_admin_handle(qa_server_t *srv, qa_peer_t *p, const qp_msg_t *m);

#endif
