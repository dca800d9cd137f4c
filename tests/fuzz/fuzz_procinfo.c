// SPDX-License-Identifier: MIT
/* libFuzzer harness for the /proc parsers of agent/procinfo.c. A process
 * chooses its own comm (prctl, the name of the file it runs), which
 * /proc/PID/stat holds in parentheses and may itself hold spaces, ')' and
 * any byte; the exe link holds any file name. Input: byte 0 even: the rest
 * is the text of /proc/PID/stat; odd: the rest is the exe link's text, a
 * NUL, then the text of /proc/PID/comm (bits 1-7 of byte 0: the size of
 * the out buffer, 1 to 128). Checked: no crash, no read past the text; a
 * parsed ppid is >= 0; the name is NUL-terminated within the out buffer,
 * printable ASCII, and given whenever the link or comm names anything. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "procinfo.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct proc_stat st;
	char *text, out[129];
	size_t i, osz;
	int r;

	if (n < 1)
		return 0;
	text = malloc(n + 1);
	if (!text)
		return 0;
	memcpy(text, d + 1, n - 1);
	text[n - 1] = '\0';
	text[n] = '\0';
	if (!(d[0] & 1)) {
		r = procinfo__parse_stat(text, &st);
		CHECK(r == 0 || r == -EINVAL);
		r = procinfo__parse_ppid(text);
		CHECK(r >= 0 || r == -EINVAL);
	} else {
		const char *link = text, *comm = text + strlen(text) + (strlen(text) < n - 1);

		osz = 1 + (d[0] >> 1);
		memset(out, 'X', sizeof(out));
		r = procinfo__name(link, comm, out, osz);
		if (r == 0) {
			CHECK(memchr(out, 0, osz));
			for (i = 0; out[i]; i++)
				CHECK(out[i] >= 0x20 && out[i] <= 0x7e);
		} else {
			const char *base = strrchr(link, '/');

			CHECK(r == -ENOENT);
			base = base ? base + 1 : link;
			CHECK(comm[0] == '\0' || comm[0] == '\n');
			CHECK(!*base || !strcmp(base, " (deleted)"));
		}
		for (i = osz; i < sizeof(out); i++)
			CHECK(out[i] == 'X');
	}
	free(text);
	return 0;
}
