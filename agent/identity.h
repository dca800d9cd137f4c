/* SPDX-License-Identifier: MIT */
/* Where a process runs: its container and Kubernetes pod, from its cgroup
 * path, and the pod's names from the kubelet's container log links. */
#ifndef AION_IDENTITY_H
#define AION_IDENTITY_H

#include <stddef.h>

#include "strbuf.h"

#define IDENTITY_CID   65  /* 64 hex digits */
#define IDENTITY_UID   37  /* 8-4-4-4-12 */
#define IDENTITY_NAME  254 /* DNS subdomain */

struct identity {
	char container_id[IDENTITY_CID];
	char pod_uid[IDENTITY_UID];
	char k8s_namespace[IDENTITY_NAME];
	char k8s_pod[IDENTITY_NAME];
	char k8s_container[IDENTITY_NAME];
};

/* From the text of /proc/PID/cgroup (v1 or v2): the container id (the last
 * path segment that holds 64 hex digits: docker-ID.scope,
 * cri-containerd-ID.scope, crio-ID.scope, libpod-ID.scope, /docker/ID,
 * /kubepods/.../podUID/ID) and the pod uid (a kubepods pod segment:
 * kubepods-besteffort-podUID.slice with '_' for '-', or podUID). Fields not
 * found are left empty. Returns 1 when a container id was found, else 0. */
int identity__parse_cgroup(const char *text, struct identity *id);
/* A kubelet log link name "<pod>_<namespace>_<container>-<cid>.log": fills
 * the names when cid matches. 1 when it does, else 0. */
int identity__parse_k8s_log(const char *name, const char *cid, struct identity *id);
/* Look for cid's log link in dir (default /var/log/containers). 1 when
 * found, 0 when not (or no such directory). */
int identity__k8s_lookup(const char *dir, const char *cid, struct identity *id);
/* Everything about pid; 0 or -errno (the process is gone). */
int identity__of_pid(int pid, const char *k8s_dir, struct identity *id);
/* The labels after service_name: ,container_id="...",k8s_pod_uid="..." ...
 * (nothing when the process is not in a container). */
int identity__labels(const struct identity *id, struct strbuf *out);

#endif /* AION_IDENTITY_H */
