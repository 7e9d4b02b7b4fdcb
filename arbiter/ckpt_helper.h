/* ckpt_helper.h - the checkpoint helper's own side (ckpt.h): `qarbiter --checkpoint-helper
 * FD` runs this instead of the daemon. Single-threaded. */
#ifndef QA_CKPT_HELPER_H
#define QA_CKPT_HELPER_H

/* Loads the driver, says hello on fd, serves requests until fd closes or a signal asks
 * it to stop, then brings the processes of a move in flight home (ckpt.h). Returns the
 * process's exit status: 0, or 1 when the driver cannot move processes (the hello said
 * why). */
int qa_ckpt_helper_main(int fd);

#endif
