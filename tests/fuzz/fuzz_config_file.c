// SPDX-License-Identifier: MIT
/* libFuzzer harness for the config file as a file (config__load of
 * --config FILE): the input's bytes, written to a memfd and read through
 * its /proc/self/fd path (NUL bytes, no final newline, CRs, anything).
 * A harness of its own: config__load reads into a 1 MiB buffer, which
 * costs ASan an mmap and a memset per call, a hundred times a parse.
 * Checked: what fuzz_config.c checks of a parse, and, when the bytes hold
 * no NUL, the same result and message as config__parse of them; with a
 * NUL, a refusal. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define LLVMFuzzerTestOneInput fuzz_config_one
#include "fuzz_config.c"
#undef LLVMFuzzerTestOneInput

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static int fd = -1;
	struct config c = {}, c2 = {};
	char err[CONFIG_ERR] = "", err2[CONFIG_ERR] = "", path[64], *s;
	int rc;

	if (fd < 0)
		fd = memfd_create("fuzz_config_file", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(!ftruncate(fd, 0) && (!n || pwrite(fd, d, n, 0) == (ssize_t)n));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = config__load(&c, path, err, sizeof(err));
	if (rc)
		refusal(rc, err);
	well_formed(&c);
	if (memchr(d, 0, n)) {
		CHECK(rc == -EINVAL);
	} else {
		s = text_of(d, n);
		if (s) {
			CHECK(config__parse(&c2, s, path, err2, sizeof(err2)) == rc);
			CHECK(!strcmp(err, err2));
			config__free(&c2);
			free(s);
		}
	}
	config__free(&c);
	return 0;
}
