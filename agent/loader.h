/* SPDX-License-Identifier: MIT */
/* Loading the kernel side: filesystems, the skeleton, attachment. */
#ifndef AION_LOADER_H
#define AION_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct aion_bpf;
struct bpf_link;

struct loader_opts {
	bool trace_all;
	__u32 max_connections; /* 0: default */
	unsigned long ring_buffer_size; /* bytes of `events`, a power of two; 0: default */
	bool verbose;          /* pass libbpf's debug output through */
	bool no_tls;           /* leave the TLS-library programs out */
};

/* Check what the kernel side needs before trying; one line on failure. */
int loader__preflight(void);
/* Open, size, load and attach. NULL + errno, after one line on stderr. */
struct aion_bpf *loader__start(const struct loader_opts *o);
/* Words of the target bitmap (one bit per possible pid). */
__u32 loader__bitmap_words(void);
/* Detach and free everything; accepts NULL. */
void loader__stop(struct aion_bpf *skel);
/* Destroy n links (NULLs allowed) from a few threads at once: each close
 * waits for an RCU grace period. Sets v[i] to NULL. */
void loader__destroy_links(struct bpf_link **v, size_t n);

#endif /* AION_LOADER_H */
