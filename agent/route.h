/* SPDX-License-Identifier: GPL-2.0 */
/* Request target -> low-cardinality http_route. */
#ifndef AION_ROUTE_H
#define AION_ROUTE_H

#include <stddef.h>

/* Out size that always fits the route of a 64-byte capture: an id segment
 * grows at most from 2 bytes ("1/") to 5 ("{id}/"). */
#define ROUTE_MAX 256

/* Normalise a request target as captured by the kernel (first <=64 bytes; may
 * hold a query string; truncated=1 when the capture was cut) into an
 * http_route. Writes at most out_sz bytes, NUL included (nothing if out_sz is
 * 0). Returns the length of the full route like snprintf: a result >= out_sz
 * means out holds only a prefix of it. */
size_t route__normalize(const char *path, size_t len, int truncated,
			char *out, size_t out_sz);

#endif /* AION_ROUTE_H */
