// SPDX-License-Identifier: MIT
/* identity: container ids and pod uids from /proc/PID/cgroup lines as
 * Docker, containerd, CRI-O, podman and the kubelet (systemd and cgroupfs
 * drivers, cgroup v1 and v2) write them, and kubelet's log link names. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "identity.h"

#define UNUSED __attribute__((unused))

#define CID "3f1c2e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f10"
#define UID "0b9a8f7e-6d5c-4b3a-2f10-3f1c2e9d8b7a"
#define UID_ "0b9a8f7e_6d5c_4b3a_2f10_3f1c2e9d8b7a"

static void expect(const char *text, const char *cid, const char *uid)
{
	struct identity id = {};
	int found = identity__parse_cgroup(text, &id);

	assert_int_equal(found, *cid != 0);
	assert_string_equal(id.container_id, cid);
	assert_string_equal(id.pod_uid, uid);
}

static void test_docker_systemd_v2(void **state UNUSED)
{
	expect("0::/system.slice/docker-" CID ".scope\n", CID, "");
}

static void test_docker_cgroupfs_v1(void **state UNUSED)
{
	expect("12:pids:/docker/" CID "\n11:memory:/docker/" CID "\n0::/\n", CID, "");
}

static void test_containerd_kubepods_systemd(void **state UNUSED)
{
	expect("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
	       ".slice/cri-containerd-" CID ".scope\n", CID, UID);
}

static void test_guaranteed_pod_systemd(void **state UNUSED)
{
	expect("0::/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n", CID, UID);
}

static void test_crio_burstable(void **state UNUSED)
{
	expect("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
	       ".slice/crio-" CID ".scope\n", CID, UID);
}

static void test_kubepods_cgroupfs_v1(void **state UNUSED)
{
	expect("11:cpuset:/kubepods/burstable/pod" UID "/" CID "\n", CID, UID);
}

static void test_podman_rootless(void **state UNUSED)
{
	expect("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" CID
	       ".scope/container\n", CID, "");
}

static void test_host_processes_have_none(void **state UNUSED)
{
	expect("0::/user.slice/user-0.slice/session-1.scope\n", "", "");
	expect("0::/system.slice/nginx.service\n", "", "");
	expect("0::/\n", "", "");
	expect("", "", "");
	/* 63 or 65 hex digits are not an id; nor is one glued to letters. */
	expect("0::/docker/" "3f1c2e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1\n", "", "");
	expect("0::/docker/" CID "0\n", "", "");
	expect("0::/x" CID "\n", "", "");
	/* A pod segment outside kubepods is not a pod. */
	expect("0::/pod" UID "/x\n", "", "");
	/* Garbage: no colon, no newline at the end. */
	expect("garbage", "", "");
	expect("::::", "", "");
}

static void test_this_process(void **state UNUSED)
{
	struct identity id;

	/* The test runs on a host (or CI VM): it works and finds no
	 * container unless there is one. */
	assert_int_equal(identity__of_pid(getpid(), "/nonexistent", &id), 0);
	assert_int_equal(identity__of_pid(0x7ffffff0, NULL, &id) < 0, 1);
}

static void test_k8s_log_names(void **state UNUSED)
{
	struct identity id = {};

	assert_int_equal(identity__parse_k8s_log("web-7d9f8b6c5-x2x9k_shop_nginx-" CID ".log", CID, &id), 1);
	assert_string_equal(id.k8s_pod, "web-7d9f8b6c5-x2x9k");
	assert_string_equal(id.k8s_namespace, "shop");
	assert_string_equal(id.k8s_container, "nginx");
	memset(&id, 0, sizeof(id));
	/* Another container's link, a missing part, a wrong suffix. */
	assert_int_equal(identity__parse_k8s_log("web_shop_nginx-" CID ".log",
						 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &id), 0);
	assert_int_equal(identity__parse_k8s_log("web_nginx-" CID ".log", CID, &id), 0);
	assert_int_equal(identity__parse_k8s_log("web_shop_nginx-" CID ".txt", CID, &id), 0);
	assert_int_equal(identity__parse_k8s_log("a_b_c_d-" CID ".log", CID, &id), 0);
	assert_int_equal(identity__parse_k8s_log("_shop_nginx-" CID ".log", CID, &id), 0);
	assert_int_equal(identity__parse_k8s_log(CID ".log", CID, &id), 0);
	assert_string_equal(id.k8s_pod, "");
}

static void test_k8s_lookup_in_dir(void **state UNUSED)
{
	char dir[] = "/tmp/aion-k8s-XXXXXX", path[256];
	struct identity id = {};
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/other_ns_c-%s.log", dir,
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(identity__k8s_lookup(dir, CID, &id), 0);
	snprintf(path, sizeof(path), "%s/api-0_prod_app-%s.log", dir, CID);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(identity__k8s_lookup(dir, CID, &id), 1);
	assert_string_equal(id.k8s_pod, "api-0");
	assert_string_equal(id.k8s_namespace, "prod");
	assert_string_equal(id.k8s_container, "app");
	unlink(path);
	snprintf(path, sizeof(path), "%s/other_ns_c-%s.log", dir,
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	unlink(path);
	rmdir(dir);
	assert_int_equal(identity__k8s_lookup("/nonexistent-dir", CID, &id), 0);
}

static void test_labels(void **state UNUSED)
{
	struct identity id = {};
	struct strbuf sb;

	strbuf__init(&sb);
	assert_int_equal(identity__labels(&id, &sb), 0);
	assert_string_equal(sb.buf, "");
	strcpy(id.container_id, CID);
	strcpy(id.pod_uid, UID);
	strcpy(id.k8s_namespace, "ns");
	strcpy(id.k8s_pod, "p\"q");
	strcpy(id.k8s_container, "c");
	assert_int_equal(identity__labels(&id, &sb), 0);
	assert_string_equal(sb.buf, ",container_id=\"" CID "\",k8s_pod_uid=\"" UID "\",k8s_namespace_name=\"ns\""
			    ",k8s_pod_name=\"p\\\"q\",k8s_container_name=\"c\"");
	strbuf__free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docker_systemd_v2),
		cmocka_unit_test(test_docker_cgroupfs_v1),
		cmocka_unit_test(test_containerd_kubepods_systemd),
		cmocka_unit_test(test_guaranteed_pod_systemd),
		cmocka_unit_test(test_crio_burstable),
		cmocka_unit_test(test_kubepods_cgroupfs_v1),
		cmocka_unit_test(test_podman_rootless),
		cmocka_unit_test(test_host_processes_have_none),
		cmocka_unit_test(test_this_process),
		cmocka_unit_test(test_k8s_log_names),
		cmocka_unit_test(test_k8s_lookup_in_dir),
		cmocka_unit_test(test_labels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
