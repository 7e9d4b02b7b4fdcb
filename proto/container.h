/* container.h - where a container finds qvgpu: the paths inside a container that the
 * arbiter's CDI specs (arbiter/cdi.c), the runtime wrapper and preflight hook
 * (container/) and the shim agree on (docs/containers.md). Constants only. */
#ifndef QP_CONTAINER_H
#define QP_CONTAINER_H

/* The arbiter's tenant dir, mounted read-only: tenant.sock. Also the shim's default
 * QVGPU_SOCKET_DIR, so that a process whose environment was emptied finds it. */
#define QP_CTR_SOCKET_DIR "/run/qvgpu"
/* The vGPU's credentials, a read-only file mounted over an empty one the arbiter keeps
 * in its tenant dir: QVGPU_VGPU=, QVGPU_SECRET= and CUDA_VISIBLE_DEVICES= lines. The shim
 * reads it when QVGPU_VGPU is not in its environment. */
#define QP_CTR_VGPU_FILE_NAME "vgpu"
#define QP_CTR_VGPU_FILE QP_CTR_SOCKET_DIR "/" QP_CTR_VGPU_FILE_NAME
/* The shim bundle (a versioned install directory), mounted read-only. */
#define QP_CTR_BUNDLE_DIR "/opt/qvgpu"
#define QP_CTR_SHIM QP_CTR_BUNDLE_DIR "/libqshim.so"
/* The ld.so.preload mode mounts the bundle's file of that name over this one. */
#define QP_CTR_LD_SO_PRELOAD "/etc/ld.so.preload"

/* Files of the bundle (PREFIX/lib/qvgpu/VERSION on the host). */
#define QP_BUNDLE_SHIM "libqshim.so"
#define QP_BUNDLE_HOOK "qvgpu-container-hook"
#define QP_BUNDLE_PRELOAD "ld.so.preload"

/* CDI: the device kind, and the annotation and variable that name a vGPU to the
 * runtime wrapper. */
#define QP_CDI_KIND "qvgpu.io/vgpu"
#define QP_CDI_VERSION "0.5.0"
#define QP_ANNOTATION_VGPU "qvgpu.io/vgpu"
/* The arbiter's spec of vGPU ID is <CDI dir>/qvgpu-ID.json. */
#define QP_CDI_SPEC_PREFIX "qvgpu-"

#endif
