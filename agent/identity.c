// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "identity.h"
#include "procinfo.h"

static int is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A run of exactly 64 lower-case hex digits in seg[0..n), bounded by the
 * segment's ends, '-' or '.'; copied to out. */
static int find_cid(const char *seg, size_t n, char *out)
{
	size_t i = 0, j;

	while (i < n) {
		if (!is_hex(seg[i])) {
			i++;
			continue;
		}
		for (j = i; j < n && is_hex(seg[j]); j++)
			;
		if (j - i == 64 && (i == 0 || seg[i - 1] == '-') &&
		    (j == n || seg[j] == '.')) {
			memcpy(out, seg + i, 64);
			out[64] = '\0';
			return 1;
		}
		i = j;
	}
	return 0;
}

/* "pod" + a uid (36 characters, '_' or '-' between the groups). */
static int find_pod_uid(const char *seg, size_t n, char *out)
{
	const char *p;
	size_t off, k;

	for (off = 0; off + 3 + 36 <= n; off++) {
		p = seg + off;
		if (memcmp(p, "pod", 3) || (off && p[-1] != '-'))
			continue;
		p += 3;
		for (k = 0; k < 36; k++) {
			int dash = k == 8 || k == 13 || k == 18 || k == 23;

			if (dash ? (p[k] != '-' && p[k] != '_') : !isxdigit((unsigned char)p[k]))
				break;
		}
		if (k < 36 || (off + 39 < n && seg[off + 39] != '.'))
			continue;
		for (k = 0; k < 36; k++)
			out[k] = p[k] == '_' ? '-' : (char)tolower((unsigned char)p[k]);
		out[36] = '\0';
		return 1;
	}
	return 0;
}

static void parse_path(const char *path, size_t len, struct identity *id)
{
	const char *seg = path, *end = path + len, *slash;
	int kube = 0;
	char cid[IDENTITY_CID], uid[IDENTITY_UID];

	while (seg < end) {
		slash = memchr(seg, '/', end - seg);
		if (!slash)
			slash = end;
		if (slash > seg) {
			size_t n = slash - seg;

			if (memmem(seg, n, "kubepods", 8))
				kube = 1;
			if (kube && find_pod_uid(seg, n, uid))
				memcpy(id->pod_uid, uid, sizeof(uid));
			if (find_cid(seg, n, cid))
				memcpy(id->container_id, cid, sizeof(cid));
		}
		seg = slash + 1;
	}
}

int identity__parse_cgroup(const char *text, struct identity *id)
{
	const char *line = text, *nl, *path;

	while (line && *line) {
		nl = strchr(line, '\n');
		if (!nl)
			nl = line + strlen(line);
		/* hierarchy-ID:controllers:path */
		path = memchr(line, ':', nl - line);
		if (path)
			path = memchr(path + 1, ':', nl - path - 1);
		if (path) {
			struct identity t = {};

			path++;
			parse_path(path, nl - path, &t);
			if (t.container_id[0]) {
				memcpy(id->container_id, t.container_id, sizeof(t.container_id));
				if (t.pod_uid[0])
					memcpy(id->pod_uid, t.pod_uid, sizeof(t.pod_uid));
				return 1;
			}
			if (t.pod_uid[0] && !id->pod_uid[0])
				memcpy(id->pod_uid, t.pod_uid, sizeof(t.pod_uid));
		}
		line = *nl ? nl + 1 : NULL;
	}
	return 0;
}

static int copy_part(char *dst, const char *s, size_t n)
{
	if (!n || n >= IDENTITY_NAME)
		return 0;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 1;
}

int identity__parse_k8s_log(const char *name, const char *cid, struct identity *id)
{
	size_t len = strlen(name), cl = strlen(cid);
	const char *u1, *u2, *stem_end;

	if (cl != 64 || len < cl + 6 || strcmp(name + len - 4, ".log"))
		return 0;
	stem_end = name + len - 4 - cl - 1;
	if (*stem_end != '-' || memcmp(stem_end + 1, cid, cl))
		return 0;
	u1 = memchr(name, '_', stem_end - name);
	if (!u1)
		return 0;
	u2 = memchr(u1 + 1, '_', stem_end - u1 - 1);
	if (!u2 || memchr(u2 + 1, '_', stem_end - u2 - 1))
		return 0;
	struct identity t = {};

	if (!copy_part(t.k8s_pod, name, u1 - name) ||
	    !copy_part(t.k8s_namespace, u1 + 1, u2 - u1 - 1) ||
	    !copy_part(t.k8s_container, u2 + 1, stem_end - u2 - 1))
		return 0;
	memcpy(id->k8s_pod, t.k8s_pod, sizeof(t.k8s_pod));
	memcpy(id->k8s_namespace, t.k8s_namespace, sizeof(t.k8s_namespace));
	memcpy(id->k8s_container, t.k8s_container, sizeof(t.k8s_container));
	return 1;
}

int identity__k8s_lookup(const char *dir, const char *cid, struct identity *id)
{
	DIR *d = opendir(dir ? dir : "/var/log/containers");
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d)))
		found = identity__parse_k8s_log(e->d_name, cid, id);
	closedir(d);
	return found;
}

int identity__of_pid(int pid, const char *k8s_dir, struct identity *id)
{
	char path[64], buf[8192];
	int r;

	memset(id, 0, sizeof(*id));
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	r = procinfo__read_file(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	if (identity__parse_cgroup(buf, id))
		identity__k8s_lookup(k8s_dir, id->container_id, id);
	return 0;
}

static void label(struct strbuf *out, const char *name, const char *v)
{
	if (!*v)
		return;
	strbuf__printf(out, ",%s=\"", name);
	strbuf__label_value(out, v);
	strbuf__puts(out, "\"");
}

int identity__labels(const struct identity *id, struct strbuf *out)
{
	label(out, "container_id", id->container_id);
	label(out, "k8s_pod_uid", id->pod_uid);
	label(out, "k8s_namespace_name", id->k8s_namespace);
	label(out, "k8s_pod_name", id->k8s_pod);
	label(out, "k8s_container_name", id->k8s_container);
	return out->oom ? -ENOMEM : 0;
}
