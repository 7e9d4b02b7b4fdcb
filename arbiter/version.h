/* version.h - qarbiter's version: in hello replies ("qarbiter/VERSION"), and the shim
 * bundle's directory (the Makefile reads it here). */
#ifndef QA_VERSION_H
#define QA_VERSION_H

#define QA_VERSION "0.1.0"

#endif
