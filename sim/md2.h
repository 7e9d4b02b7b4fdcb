/* md2.h - the MD2 message digest (RFC 1319) and HMAC over it (RFC 2104, 16-byte
 * blocks): what the CUDA runtime's integrity check of the driver computes (see
 * cuda_export.c). Pure: no state outside the caller's struct. */
#ifndef QSIM_MD2_H
#define QSIM_MD2_H

#include <stddef.h>
#include <stdint.h>

#define QSIM_MD2_LEN 16

/* A digest in progress. Zero it (= {0}) to start. */
struct qsim_md2 {
    uint8_t x[48];  /* the state; x[0..16) is the digest when done */
    uint8_t c[16];  /* the checksum of the bytes so far */
    uint8_t m[16];  /* the block being filled */
    uint8_t last;   /* the checksum's last byte */
    unsigned used;  /* bytes in m */
};

/* Adds len bytes of data to the digest. */
void qsim_md2_add(struct qsim_md2 *h, const void *data, size_t len);
/* Pads, appends the checksum and writes the digest to out. h is spent afterwards. */
void qsim_md2_end(struct qsim_md2 *h, uint8_t out[QSIM_MD2_LEN]);

/* HMAC-MD2 of the parts (n of them, each data[i] of len[i] bytes, hashed as one
 * message) under a key of exactly one block (16 bytes). */
void qsim_hmac_md2(const uint8_t key[QSIM_MD2_LEN], const void *const data[], const size_t len[],
                   size_t n, uint8_t out[QSIM_MD2_LEN]);

#endif
