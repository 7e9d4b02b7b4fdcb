/* trust.h - whether a directory or file the arbiter reads or writes as root can have been
 * planted or swapped by someone else.
 *
 * The arbiter keeps secrets and quotas in its state dir and makes sockets in its socket
 * dir; a user who can write either could plant a vGPU file with a chosen secret and
 * quota, or a symlink that makes the arbiter overwrite another file. So a directory it
 * uses must belong to the arbiter's user (or root) and be writable by nobody else, and a
 * file it reads must be a regular file of the arbiter's user, writable by nobody else;
 * files are opened without following a symlink in their last component. Pure checks on
 * descriptors the caller opened; no state. */
#ifndef QA_TRUST_H
#define QA_TRUST_H

#include "proto/msg.h"

/* Checks the directory open as fd (path: for the message; what: "state dir", "socket
 * dir"...). Returns 0, or -EPERM with err as one line saying what is wrong and the fix. */
int qa_trust_dir(int fd, const char *what, const char *path, char err[QP_ERR_LEN]);
/* Checks the file open as fd (path: for the message): a regular file, owned by the
 * arbiter's effective user, writable by nobody else. Returns 0 or -EPERM with err. */
int qa_trust_file(int fd, const char *path, char err[QP_ERR_LEN]);

#endif
